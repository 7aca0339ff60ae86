#!/usr/bin/env python3
"""A stand-in for the ``gemini`` CLI's headless mode.

Accepts ``gemini [-o|--output-format text|json|stream-json] [--approval-mode MODE]
[-m|--model M] [--allowed-tools a,b] [-r|--resume SESSION] [--skip-trust]
-p|--prompt PROMPT`` (also ``--prompt=PROMPT``), rejects unknown options (exit 42, the
CLI's input error), and with ``--output-format stream-json`` prints the documented JSONL
events: ``init{session_id, model}``, ``message`` (the user's, then the assistant's in
``delta`` chunks), ``tool_use`` / ``tool_result`` (a ``write_file`` per scripted edit),
then ``result{status, stats}`` with per-model token ``stats`` of this invocation, or
``error{severity, message}`` and ``result{status: "error", error}`` (exit 1).

Like the real CLI it refuses an untrusted folder unless ``GEMINI_CLI_TRUST_WORKSPACE=true``
(exit 55), reads the settings file named by ``GEMINI_CLI_SYSTEM_SETTINGS_PATH`` (kept in
the call record as ``settings``), and stops at ``model.maxSessionTurns`` when the run's
scripted ``turns`` exceed it (exit 53). ``--resume`` of an unknown session fails (exit 1).
Scripted by ``FAKE_AGENT_SCENARIO``: see :mod:`edge_worker.sandbox.fake_agent_kit`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Runs as a script: make the package importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_worker.sandbox import fake_agent_kit as kit

DEFAULT_MODEL = "gemini-2.5-pro"
DEFAULT_USAGE = {"input_tokens": 18000, "cached": 12000, "output_tokens": 400, "thoughts": 250}
"""One run's own usage when the scenario names none (fields it names override these)."""
APPROVAL_MODES = ("default", "auto_edit", "yolo", "plan")
OUTPUT_FORMATS = ("text", "json", "stream-json")
_VALUED = {"--output-format": "output_format", "-o": "output_format"}
_VALUED |= {"--approval-mode": "approval_mode", "--model": "model", "-m": "model"}
_VALUED |= {"--allowed-tools": "allowed_tools", "--resume": "resume", "-r": "resume"}
_VALUED |= {"--prompt": "prompt", "-p": "prompt"}
_FLAGS = {"--skip-trust": "skip_trust", "--yolo": "yolo", "-y": "yolo"}
INPUT_ERROR, TURN_LIMIT, UNTRUSTED = 42, 53, 55


def usage_error(message: str) -> int:
    sys.stderr.write(f"{message}\nUsage: gemini [options] [query..]\n")
    return INPUT_ERROR


def parse(argv: list[str]) -> dict[str, Any] | int:
    """The options in ``argv``; an exit code on a usage error."""
    options: dict[str, Any] = {"output_format": "text", "resume": None, "prompt": None}
    index = 0
    while index < len(argv):
        token = argv[index]
        name, _, inline = token.partition("=")
        if name in _VALUED and inline:
            options[_VALUED[name]] = inline
            index += 1
        elif token in _VALUED:
            if index + 1 >= len(argv):
                return usage_error(f"Not enough arguments following: {token.lstrip('-')}")
            options[_VALUED[token]] = argv[index + 1]
            index += 2
        elif token in _FLAGS:
            options[_FLAGS[token]] = True
            index += 1
        else:
            return usage_error(f"Unknown argument: {token}")
    if options["output_format"] not in OUTPUT_FORMATS:
        return usage_error(f"Invalid values: output-format {options['output_format']}")
    if options.get("approval_mode") not in (None, *APPROVAL_MODES):
        return usage_error(f"Invalid values: approval-mode {options['approval_mode']}")
    if not options["prompt"]:
        return usage_error("No input provided via --prompt")
    return options


def load_settings() -> dict[str, Any]:
    path = os.environ.get("GEMINI_CLI_SYSTEM_SETTINGS_PATH")
    if not path or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def main(argv: list[str]) -> int:
    options = parse(argv)
    if isinstance(options, int):
        return options
    if os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") != "true" and not options.get("skip_trust"):
        sys.stderr.write("Gemini CLI is not running in a trusted directory.\n")
        return UNTRUSTED
    resume = options["resume"]
    unknown = f'Error resuming session: Invalid session identifier "{resume}".'
    invocation = kit.begin("gemini", argv, options["prompt"], resume, unknown_session=unknown)
    if isinstance(invocation, int):
        return invocation
    settings = load_settings()
    invocation.call["settings"] = settings
    kit.launch(invocation, argv, scripted_fail=False)
    run, session_id = invocation.run, invocation.session_id
    model = str(options.get("model") or invocation.scenario.get("model") or DEFAULT_MODEL)
    if options["output_format"] != "stream-json":
        sys.stdout.write("[fake gemini] only --output-format stream-json prints events\n")
    delay = invocation.delay
    kit.print_junk(run)
    kit.emit({"type": "init", "timestamp": kit.now(), "session_id": session_id, "model": model})
    kit.emit({"type": "message", "timestamp": kit.now(), "role": "user", "content": "…"}, delay)
    max_turns = (settings.get("model") or {}).get("maxSessionTurns")
    return work(run, invocation.cwd, model, delay, max_turns)


def work(run: dict[str, Any], cwd: Path, model: str, delay: float, max_turns: int | None) -> int:
    written = kit.apply_edits(cwd, run)
    kit.misbehave(run)
    for number, path in enumerate(written):
        tool_id = f"write_file-{number}"
        kit.emit(
            {
                "type": "tool_use",
                "timestamp": kit.now(),
                "tool_name": "write_file",
                "tool_id": tool_id,
                "parameters": {"file_path": str(path), "content": "…"},
            },
            delay,
        )
        kit.emit(
            {
                "type": "tool_result",
                "timestamp": kit.now(),
                "tool_id": tool_id,
                "status": "success",
                "output": "",
            },
            delay,
        )
    kit.print_junk(run)
    stats = _stats(model, {**DEFAULT_USAGE, **(run.get("usage") or {})}, len(written))
    turns = int(run.get("turns", 1))
    if isinstance(max_turns, int) and turns > max_turns:
        message = "Reached max session turns for this session."
        kit.emit({"type": "error", "timestamp": kit.now(), "severity": "error", "message": message})
        error = {"type": "FatalTurnLimitedError", "message": message}
        kit.emit({"type": "result", "timestamp": kit.now(), "status": "error", "error": error})
        return TURN_LIMIT
    outcome = str(run.get("outcome", "success"))
    if outcome != "success":
        message = "; ".join(kit.scripted_errors(run))
        kit.emit({"type": "error", "timestamp": kit.now(), "severity": "error", "message": message})
        error = {"type": "Error", "message": message}
        kit.emit(
            {
                "type": "result",
                "timestamp": kit.now(),
                "status": "error",
                "error": error,
                "stats": stats,
            }
        )
        return int(run.get("exit_code", 1))
    kit.commit(cwd, run)
    text = kit.final_text(run)
    middle = len(text) // 2
    for chunk in (text[:middle], text[middle:]):
        kit.emit(
            {
                "type": "message",
                "timestamp": kit.now(),
                "role": "assistant",
                "content": chunk,
                "delta": True,
            },
            delay,
        )
    kit.emit({"type": "result", "timestamp": kit.now(), "status": "success", "stats": stats})
    return int(run.get("exit_code", 0))


def _stats(model: str, usage: dict[str, Any], tool_calls: int) -> dict[str, Any]:
    prompt, cached = int(usage["input_tokens"]), int(usage["cached"])
    output, thoughts = int(usage["output_tokens"]), int(usage["thoughts"])
    per_model = {
        "total_tokens": prompt + output + thoughts,
        "input_tokens": prompt,
        "output_tokens": output,
        "cached": cached,
        "input": prompt - cached,
    }
    totals = {**per_model, "duration_ms": 1200, "tool_calls": tool_calls}
    return {**totals, "models": {model: per_model}}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
