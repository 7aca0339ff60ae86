"""Test helpers for the planner: a scripted stand-in for the ``claude`` CLI's print mode.

:func:`write_fake_claude` writes an executable script that records each invocation (argv,
stdin, cwd, environment) as one JSON line in ``<dir>/calls.jsonl`` and prints the next
scripted answer from ``<dir>/answers.json``: a ``result`` object printed as JSON, or
``{"hang": true}`` to ignore SIGTERM and sleep (for the timeout path). The directory is
found through ``FAKE_PLANNER_DIR``, which the backend must be told to pass through.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCRIPT = """#!{python}
import json, os, signal, sys, time
from pathlib import Path

home = Path(os.environ["FAKE_PLANNER_DIR"])
calls = home / "calls.jsonl"
stdin = sys.stdin.read()
with calls.open("a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin, "cwd": os.getcwd(),
                          "env": dict(os.environ), "pid": os.getpid()}}) + "\\n")
answers = json.loads((home / "answers.json").read_text())
index = len(calls.read_text().splitlines()) - 1
answer = answers[min(index, len(answers) - 1)]
if answer.get("hang"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
if answer.get("crash"):
    sys.stderr.write(answer["crash"])
    sys.exit(3)
print(json.dumps(answer))
sys.exit(1 if answer.get("is_error") else 0)
"""


def write_fake_claude(directory: Path, answers: list[dict[str, Any]]) -> Path:
    """Write the fake CLI and its answers into ``directory``; returns the script's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "answers.json").write_text(json.dumps(answers))
    script = directory / "claude"
    script.write_text(SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    return script


def recorded_calls(directory: Path) -> list[dict[str, Any]]:
    """The invocations the fake CLI recorded, in order."""
    path = directory / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def result(
    structured_output: object = None,
    *,
    session_id: str = "sess-1",
    cost: float | None = 0.0421,
    subtype: str = "success",
    is_error: bool = False,
    text: str = "",
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """A ``result`` object shaped like ``claude -p --output-format json`` prints it."""
    payload: dict[str, Any] = {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "duration_ms": 1234,
        "num_turns": 3,
        "result": text,
        "session_id": session_id,
        "total_cost_usd": cost,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": 9000,
            "output_tokens": 700,
        },
        "modelUsage": {
            "claude-haiku-4-5": {"costUSD": 0.001},
            "claude-sonnet-4-5-20250929": {"costUSD": 0.0411},
        },
    }
    if structured_output is not None:
        payload["structured_output"] = structured_output
    if errors is not None:
        payload["errors"] = errors
    return payload
