#!/usr/bin/env bash
# Installs the real agent CLIs the test_real_cli_* tests drive, pinned, from npm, into a
# cache outside the clone keyed by package and version (fast when already there).
# Prints one line per CLI: "<name> <path of its executable>".
# EDGE_WORKER_NPM_CACHE overrides the cache directory.
set -euo pipefail

CODEX_PACKAGE="@openai/codex@0.169.0"
CLAUDE_CODE_PACKAGE="@anthropic-ai/claude-code@2.1.332"

cache="${EDGE_WORKER_NPM_CACHE:-/var/cache/edge-worker/npm}"

install() {  # install <name> <package@version> <bin name>
    local name="$1" package="$2" bin="$3"
    local dir="$cache/${package//\//+}"
    if [[ ! -e "$dir/.installed" ]]; then
        mkdir -p "$dir"
        # Claude Code's postinstall puts its native binary in place of bin/claude.exe.
        npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
            "$package" >&2
        touch "$dir/.installed"
    fi
    echo "$name $dir/node_modules/.bin/$bin"
}

install codex "$CODEX_PACKAGE" codex
install claude-code "$CLAUDE_CODE_PACKAGE" claude
