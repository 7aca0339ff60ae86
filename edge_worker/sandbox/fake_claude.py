#!/usr/bin/env python3
"""A stand-in for the ``claude`` CLI in print mode with ``--output-format stream-json``.

Accepts the real CLI's flags (``-p``, ``--output-format``, ``--verbose``, ``--model``,
``--max-turns``, ``--max-budget-usd``, ``--permission-mode``, ``--allowedTools``,
``--disallowedTools``, ``--append-system-prompt``, ``--resume``, ``--mcp-config`` (files
checked and kept in the call record as ``mcp_configs``), ``--strict-mcp-config``), rejects
unknown ones,
and prints the documented lines: ``system``/``init``, ``assistant`` (text and
``tool_use``), ``user`` (``tool_result``), then one ``result`` with ``subtype``,
``is_error``, ``total_cost_usd``, ``usage``, ``num_turns``, ``session_id`` and ``result``
(or ``errors``). Exit code 0 on success, 1 on an error result, like the real CLI. What it
does is scripted by ``FAKE_AGENT_SCENARIO``: see :mod:`edge_worker.sandbox.fake_agent_kit`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# Runs as a script: make the package importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_worker.sandbox import fake_agent_kit as kit

TOOLS = ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "TodoWrite", "WebFetch"]
DEFAULT_MODEL = "claude-sonnet-4-5-20250929"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="claude", allow_abbrev=False)
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("-p", "--print", action="store_true", dest="print_mode")
    parser.add_argument("--output-format", choices=["text", "json", "stream-json"], default="text")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--model")
    parser.add_argument("--max-turns", type=int)
    parser.add_argument("--max-budget-usd", type=float)
    parser.add_argument(
        "--permission-mode",
        choices=["acceptEdits", "bypassPermissions", "default", "dontAsk", "plan"],
    )
    parser.add_argument("--allowedTools", "--allowed-tools", nargs="+", dest="allowed_tools")
    parser.add_argument(
        "--disallowedTools", "--disallowed-tools", nargs="+", dest="disallowed_tools"
    )
    parser.add_argument("--append-system-prompt")
    parser.add_argument("--add-dir", action="append", dest="add_dirs", default=[])
    parser.add_argument("-r", "--resume")
    parser.add_argument("--mcp-config", nargs="+", dest="mcp_configs", default=[])
    parser.add_argument("--strict-mcp-config", action="store_true")
    args = parser.parse_args(argv)
    for path in args.mcp_configs:
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parser.error(f"Invalid MCP configuration: {path}: {exc}")
        if not isinstance(config, dict) or not isinstance(config.get("mcpServers"), dict):
            parser.error(f"Invalid MCP configuration: {path}: no mcpServers object")
    if not args.print_mode:
        parser.error("this stand-in only supports print mode (-p)")
    if args.output_format == "stream-json" and not args.verbose:
        sys.stderr.write(
            "Error: When using --print, --output-format=stream-json requires --verbose\n"
        )
        raise SystemExit(1)
    if not args.prompt:
        sys.stderr.write("Error: Input must be provided either through stdin or as a prompt\n")
        raise SystemExit(1)
    return args


class Session:
    """One invocation's printing, with running totals."""

    def __init__(self, session_id: str, model: str, delay: float, ledger: dict[str, Any]) -> None:
        self.session_id = session_id
        self.model = model
        self.delay = delay
        self.ledger = ledger  # this session's totals over earlier invocations (state file)
        self.turns = 0
        self.cost = 0.0
        self.usage = {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }

    def line(self, event: dict[str, Any]) -> None:
        event.setdefault("session_id", self.session_id)
        event.setdefault("uuid", str(uuid.uuid4()))
        kit.emit(event, self.delay)

    def assistant(self, content: list[dict[str, Any]], usage: dict[str, int]) -> None:
        self.line(
            {
                "type": "assistant",
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": content,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "service_tier": "standard"},
                },
                "parent_tool_use_id": None,
            }
        )

    def tool_result(self, tool_use_id: str, text: str) -> None:
        self.line(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {"tool_use_id": tool_use_id, "type": "tool_result", "content": text}
                    ],
                },
                "parent_tool_use_id": None,
            }
        )

    def result(self, subtype: str, text: str | None, errors: list[str], started: float) -> None:
        is_error = subtype != "success"
        event: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "duration_api_ms": int((time.monotonic() - started) * 800),
            "num_turns": self.turns,
            "session_id": self.session_id,
            # Like the real CLI after --resume: total_cost_usd and modelUsage add up the
            # whole session, usage and model_usage_since_last_result this invocation only.
            "total_cost_usd": round(self.ledger["cost"] + self.cost, 6),
            "usage": {**self.usage, "server_tool_use": {"web_search_requests": 0}},
            "modelUsage": {self.model: self.model_usage(cumulative=True)},
            "model_usage_since_last_result": {self.model: self.model_usage(cumulative=False)},
            "permission_denials": [],
        }
        if is_error:
            event["errors"] = errors
        else:
            event["result"] = text
        self.line(event)
        self.ledger["cost"] += self.cost
        for key, value in self.usage.items():
            self.ledger[key] = self.ledger.get(key, 0) + value

    def model_usage(self, *, cumulative: bool) -> dict[str, Any]:
        def total(key: str) -> int:
            return self.usage[key] + (int(self.ledger.get(key, 0)) if cumulative else 0)

        return {
            "inputTokens": total("input_tokens"),
            "outputTokens": total("output_tokens"),
            "cacheReadInputTokens": total("cache_read_input_tokens"),
            "cacheCreationInputTokens": total("cache_creation_input_tokens"),
            "costUSD": round(self.cost + (self.ledger["cost"] if cumulative else 0.0), 6),
        }


def per_turn_usage(run: dict[str, Any], turns: int) -> dict[str, int]:
    total = run.get("usage") or {
        "input_tokens": 1200,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 4000,
        "output_tokens": 250,
    }
    return {key: int(value) // max(turns, 1) for key, value in total.items()}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    unknown = f"No conversation found with session ID: {args.resume}"
    invocation = kit.begin("claude", argv, args.prompt, args.resume, unknown_session=unknown)
    if isinstance(invocation, int):
        return invocation
    invocation.call["mcp_configs"] = [
        json.loads(Path(path).read_text(encoding="utf-8")) for path in args.mcp_configs
    ]
    invocation.call["strict_mcp_config"] = args.strict_mcp_config
    kit.launch(invocation, argv)

    started = time.monotonic()
    run, cwd, state = invocation.run, invocation.cwd, invocation.state
    model = args.model or str(invocation.scenario.get("model") or DEFAULT_MODEL)
    ledger = invocation.session
    ledger.setdefault("cost", 0.0)
    session = Session(invocation.session_id, model, invocation.delay, ledger)
    kit.print_junk(run)
    session.line(
        {
            "type": "system",
            "subtype": "init",
            "cwd": str(cwd),
            "tools": TOOLS,
            "mcp_servers": [],
            "model": model,
            "permissionMode": args.permission_mode or "default",
            "slash_commands": [],
            "apiKeySource": "none",
            "output_style": "default",
        }
    )
    kit.fail_if_scripted(run, argv, started=True)
    exit_code = work(args, run, cwd, session, started)
    kit.save_state(invocation.state_file, state)  # the session's totals, for a later --resume
    return exit_code


def work(
    args: argparse.Namespace,
    run: dict[str, Any],
    cwd: Path,
    session: Session,
    started: float,
) -> int:
    edits = run.get("edits") or []
    turns = int(run.get("turns", len(edits) + 1))
    if "cost_per_turn" in run:
        cost_per_turn = float(run["cost_per_turn"])
    else:
        cost_per_turn = float(run.get("cost_usd", 0.0123)) / max(turns, 1)
    usage = per_turn_usage(run, turns)
    written = kit.apply_edits(cwd, run)
    session.assistant([{"type": "text", "text": "Looking at the task."}], usage)
    kit.misbehave(run)
    for turn in range(turns):
        if args.max_turns is not None and session.turns >= args.max_turns:
            session.result(
                "error_max_turns",
                None,
                [f"Reached maximum number of turns ({args.max_turns})"],
                started,
            )
            return 1
        session.turns += 1
        session.cost += cost_per_turn
        for key, value in usage.items():
            session.usage[key] += value
        if turn < len(written):
            tool_id = f"toolu_{uuid.uuid4().hex[:24]}"
            session.assistant(
                [
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Write",
                        "input": {"file_path": str(written[turn]), "content": "…"},
                    }
                ],
                usage,
            )
            session.tool_result(tool_id, f"File created successfully at: {written[turn]}")
        elif turn < turns - 1:
            session.assistant([{"type": "text", "text": f"Working (turn {turn + 1})."}], usage)
        kit.print_junk(run)
        if args.max_budget_usd is not None and session.cost >= args.max_budget_usd:
            session.result(
                "error_max_budget_usd",
                None,
                [f"Reached maximum budget (${args.max_budget_usd:g})"],
                started,
            )
            return 1
    kit.commit(cwd, run)
    text = kit.final_text(run)
    outcome = str(run.get("outcome", "success"))
    if outcome != "success":
        errors = kit.scripted_errors(run)
        session.result(outcome, None, errors, started)
        return int(run.get("exit_code", 1))
    session.assistant([{"type": "text", "text": text}], usage)
    session.result("success", text, [], started)
    return int(run.get("exit_code", 0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
