#!/usr/bin/env bash
# Installs the real agent CLIs the test_real_cli_* tests drive, pinned, from npm, into a
# cache outside the clone keyed by package and version (fast when already there).
# Prints one line per CLI: "<name> <path of its executable>".
# EDGE_WORKER_NPM_CACHE overrides the cache directory (default /var/cache/edge-worker/npm,
# or ~/.cache/edge-worker/npm when that cannot be created).
set -euo pipefail

CODEX_PACKAGE="@openai/codex@0.169.0"
CLAUDE_CODE_PACKAGE="@anthropic-ai/claude-code@2.1.332"
GEMINI_PACKAGE="@google/gemini-cli@0.61.0"

cache="${EDGE_WORKER_NPM_CACHE:-/var/cache/edge-worker/npm}"
if [[ -z "${EDGE_WORKER_NPM_CACHE:-}" ]] && ! mkdir -p "$cache" 2>/dev/null; then
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/edge-worker/npm"
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one installer at a time (parallel test workers share the cache)

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
install gemini "$GEMINI_PACKAGE" gemini
