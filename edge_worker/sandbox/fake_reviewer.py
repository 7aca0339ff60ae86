"""A stand-in peer reviewer CLI speaking Claude Code's ``stream-json`` (standard library
only, so any user can run it with the system interpreter).

Flags as the reviewer runner passes them (``-p``, ``--output-format``, ``--verbose``,
``--permission-mode``, ``--disallowedTools``, ``--model``, ``--append-system-prompt``);
an unknown flag exits 2. Behaviour is scripted by ``FAKE_REVIEWER_DIR`` (a directory the
reviewer may write to): ``answers.json`` holds ``{"answers": [...], "cost_usd": 0.05}``,
answered in call order (the last one repeats). Each call first *tries to write* into its
working directory (a new ``REVIEW.md`` and an existing file), as a careless reviewer
would, then appends to ``calls.jsonl`` what it was given and whether the write worked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path


def install(bin_dir: Path, state_dir: Path, answers: list[str], cost_usd: float = 0.05) -> Path:
    """Write an executable ``reviewer`` wrapper into ``bin_dir`` and its script into
    ``state_dir``; both directories are opened to every user (the reviewer may run as an
    unprivileged one). Returns the wrapper's path."""
    interpreter = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    for directory in (bin_dir, state_dir):
        directory.mkdir(parents=True, exist_ok=True)
    bin_dir.chmod(0o755)
    state_dir.chmod(0o777)
    (state_dir / "answers.json").write_text(
        json.dumps({"answers": answers, "cost_usd": cost_usd}), encoding="utf-8"
    )
    (state_dir / "answers.json").chmod(0o644)
    wrapper = bin_dir / "reviewer"
    wrapper.write_text(
        f"#!/bin/sh\nFAKE_REVIEWER_DIR='{state_dir}' "
        f"exec {interpreter} '{Path(__file__)}' \"$@\"\n",
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


def calls(state_dir: Path) -> list[dict[str, object]]:
    """Every call the fake reviewer recorded, oldest first."""
    path = state_dir / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake-reviewer", add_help=False)
    parser.add_argument("-p", dest="prompt", required=True)
    parser.add_argument("--output-format", choices=["stream-json"], required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--permission-mode", required=True)
    parser.add_argument("--disallowedTools")
    parser.add_argument("--model")
    parser.add_argument("--append-system-prompt", dest="system_prompt")
    return parser.parse_args(argv)


def try_to_write(cwd: Path) -> list[str]:
    """What the write attempts did: ``written <name>`` or ``refused <name>: <error>``."""
    done = []
    targets = [cwd / "REVIEW.md"] + [p for p in sorted(cwd.rglob("*.py"))[:1]]
    for target in targets:
        try:
            with target.open("a", encoding="utf-8") as handle:
                handle.write("# the reviewer was here\n")
            done.append(f"written {target.name}")
        except OSError as exc:
            done.append(f"refused {target.name}: {exc.strerror}")
    return done


def emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    started = time.time()
    args = parse_args(argv)
    state = Path(os.environ["FAKE_REVIEWER_DIR"])
    script = json.loads((state / "answers.json").read_text(encoding="utf-8"))
    calls_file = state / "calls.jsonl"
    calls = calls_file.read_text(encoding="utf-8").splitlines() if calls_file.exists() else []
    answers = script["answers"]
    answer = answers[min(len(calls), len(answers) - 1)]
    cwd = Path.cwd()
    writes = try_to_write(cwd)
    record = {
        "cwd": str(cwd),
        "uid": os.getuid(),
        "permission_mode": args.permission_mode,
        "model": args.model,
        "prompt": args.prompt,
        "system_prompt": args.system_prompt,
        "writes": writes,
        "started": started,
    }
    session = str(uuid.uuid4())
    model = args.model or "fake-reviewer-model"
    emit({"type": "system", "subtype": "init", "session_id": session, "model": model})
    emit(
        {
            "type": "assistant",
            "session_id": session,
            "message": {
                "id": "msg_review",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": answer}],
                "usage": {"input_tokens": 900, "output_tokens": 120},
            },
        }
    )
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 1,
            "session_id": session,
            "total_cost_usd": float(script.get("cost_usd", 0.05)),
            "usage": {"input_tokens": 900, "output_tokens": 120},
            "result": answer,
        }
    )
    record["ended"] = time.time()
    with calls_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
