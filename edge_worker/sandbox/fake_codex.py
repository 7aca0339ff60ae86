#!/usr/bin/env python3
"""A stand-in for the ``codex`` CLI's non-interactive ``exec`` mode.

Accepts ``codex exec [--json] [--sandbox MODE] [-C DIR] [--model M] [--image=F1,F2]
[--skip-git-repo-check] [PROMPT]`` and ``codex exec [options] resume <THREAD_ID> [PROMPT]``
(exec's options before its ``resume`` subcommand), rejects unknown options (a
``CODEX_HOME``'s ``config.toml`` is parsed and kept in the call record as ``config``), and
with
``--json`` prints the documented JSONL events: ``thread.started{thread_id}``,
``turn.started``, ``item.started`` / ``item.completed`` (``command_execution``,
``file_change``, ``reasoning``, ``agent_message``), then ``turn.completed{usage}``, or
``error{message}`` and ``turn.failed{error{message}}`` (exit code 1). Scripted by
``FAKE_AGENT_SCENARIO``: see :mod:`edge_worker.sandbox.fake_agent_kit`.

Usage is reported like the real CLI (0.169.0): ``turn.completed.usage`` is the *thread's*
running total (this run's ``usage`` added to the thread's earlier runs, kept in the state
file), with ``cache_write_input_tokens`` and ``reasoning_output_tokens``. A run scripted
with ``"report": "turn"`` prints only its own usage instead, as a CLI whose semantics
changed would. A run scripted with ``"notice"`` prints it first as an ``item.completed``
of type ``error`` and carries on, as the real CLI does for a model it has no metadata for.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

# Runs as a script: make the package importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_worker.sandbox import fake_agent_kit as kit

SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_USAGE = {
    "input_tokens": 24763,
    "cached_input_tokens": 24448,
    "cache_write_input_tokens": 0,
    "output_tokens": 122,
    "reasoning_output_tokens": 64,
}
"""One run's own usage when the scenario names none (fields it names override these)."""
_VALUED = {"--sandbox": "sandbox", "-s": "sandbox", "-C": "cd", "--cd": "cd"}
_VALUED |= {"--model": "model", "-m": "model"}
_FLAGS = {"--json": "json", "--skip-git-repo-check": "skip_git_repo_check"}


def usage_error(message: str) -> int:
    sys.stderr.write(f"error: {message}\n\nUsage: codex exec [OPTIONS] [PROMPT] [COMMAND]\n")
    return 2


def parse(argv: list[str]) -> dict[str, Any] | int:
    """Options, ``resume`` and ``prompt`` from ``argv``; an exit code on a usage error."""
    if not argv or argv[0] != "exec":
        return usage_error("this stand-in only implements `codex exec`")
    options: dict[str, Any] = {"json": False, "resume": None, "prompt": None}
    rest = argv[1:]
    index = 0
    while index < len(rest):
        token = rest[index]
        if token in _VALUED:
            if index + 1 >= len(rest):
                return usage_error(f"a value is required for '{token}'")
            options[_VALUED[token]] = rest[index + 1]
            index += 2
        elif token.startswith("--image=") or token in ("-i", "--image"):
            value = token.split("=", 1)[1] if "=" in token else None
            if value is None:
                if index + 1 >= len(rest):
                    return usage_error(f"a value is required for '{token}'")
                value, index = rest[index + 1], index + 1
            for path in value.split(","):
                if not Path(path).is_file():
                    return usage_error(f"image not found: {path}")
            options.setdefault("images", []).extend(value.split(","))
            index += 1
        elif token in _FLAGS:
            options[_FLAGS[token]] = True
            index += 1
        elif token.startswith("-"):
            return usage_error(f"unexpected argument '{token}' found")
        elif token == "resume" and options["prompt"] is None:
            if index + 1 >= len(rest):
                return usage_error("resume needs a SESSION_ID (or --last)")
            options["resume"] = rest[index + 1]
            index += 2
        elif options["prompt"] is None:
            options["prompt"] = token
            index += 1
        else:
            return usage_error(f"unexpected argument '{token}' found")
    if options.get("sandbox") not in (None, *SANDBOX_MODES):
        return usage_error(f"invalid value '{options['sandbox']}' for '--sandbox <SANDBOX_MODE>'")
    if not options["prompt"]:
        return usage_error("no prompt provided")
    return options


def main(argv: list[str]) -> int:
    options = parse(argv)
    if isinstance(options, int):
        return options
    if options.get("cd"):
        os.chdir(options["cd"])
    resume = options["resume"]
    unknown = f"Error: no rollout found for thread id {resume}"
    invocation = kit.begin("codex", argv, options["prompt"], resume, unknown_session=unknown)
    if isinstance(invocation, int):
        return invocation
    run, session = invocation.run, invocation.session
    home = os.environ.get("CODEX_HOME")
    if home:
        config = Path(home) / "config.toml"
        invocation.call["codex_home"] = home
        invocation.call["config"] = (
            tomllib.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
        )
    own = {**DEFAULT_USAGE, **(run.get("usage") or {})}
    before = session.get("usage") or dict.fromkeys(DEFAULT_USAGE, 0)
    session["usage"] = {name: before.get(name, 0) + own[name] for name in DEFAULT_USAGE}
    run["reported_usage"] = own if run.get("report") == "turn" else session["usage"]
    kit.launch(invocation, argv)

    if not options["json"]:
        sys.stdout.write("[fake codex] human-readable output; pass --json for events\n")
    delay = invocation.delay
    kit.print_junk(run)
    kit.emit({"type": "thread.started", "thread_id": invocation.session_id}, delay)
    kit.fail_if_scripted(run, argv, started=True)
    if run.get("notice"):
        notice = {"id": "item_notice", "type": "error", "message": str(run["notice"])}
        kit.emit({"type": "item.completed", "item": notice}, delay)
    kit.emit({"type": "turn.started"}, delay)
    return work(run, invocation.cwd, delay)


def work(run: dict[str, Any], cwd: Path, delay: float) -> int:
    items = iter(range(1000))
    kit.emit(
        {
            "type": "item.completed",
            "item": {"id": f"item_{next(items)}", "type": "reasoning", "text": "**Planning**"},
        },
        delay,
    )
    written = kit.apply_edits(cwd, run)
    kit.misbehave(run)
    for path in written:
        command = f"bash -lc 'cat > {path.name}'"
        item_id = f"item_{next(items)}"
        started = {"id": item_id, "type": "command_execution", "command": command}
        kit.emit(
            {
                "type": "item.started",
                "item": {
                    **started,
                    "aggregated_output": "",
                    "exit_code": None,
                    "status": "in_progress",
                },
            },
            delay,
        )
        kit.emit(
            {
                "type": "item.completed",
                "item": {**started, "aggregated_output": "", "exit_code": 0, "status": "completed"},
            },
            delay,
        )
    if written:
        changes = [{"path": str(path), "kind": "add"} for path in written]
        kit.emit(
            {
                "type": "item.completed",
                "item": {
                    "id": f"item_{next(items)}",
                    "type": "file_change",
                    "changes": changes,
                    "status": "completed",
                },
            },
            delay,
        )
    kit.print_junk(run)
    outcome = str(run.get("outcome", "success"))
    if outcome != "success":
        message = "; ".join(kit.scripted_errors(run))
        kit.emit({"type": "error", "message": message}, delay)
        if outcome == "turn_failed":
            kit.emit({"type": "turn.failed", "error": {"message": message}}, delay)
        return int(run.get("exit_code", 1))
    kit.commit(cwd, run)
    text = kit.final_text(run)
    kit.emit(
        {
            "type": "item.completed",
            "item": {"id": f"item_{next(items)}", "type": "agent_message", "text": text},
        },
        delay,
    )
    kit.emit({"type": "turn.completed", "usage": run["reported_usage"]}, delay)
    return int(run.get("exit_code", 0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
