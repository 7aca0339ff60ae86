"""Verification of local work: run the sub-task's commands in its worktree.

Contract:
- :func:`run_local_verification` runs each command with ``bash -lc`` in ``workdir``, one
  after another, each under its own timeout, with the scrubbed environment of
  :func:`~edge_worker.executors.process.scrubbed_env` (plus ``pass_env``), in its own
  process group (killed with everything it started when it times out).
- Each check records the exit code, the last ``tail_chars`` characters of its combined
  stdout and stderr, and its duration. A check that times out has no exit code and says so
  in ``reason``: it fails, it never passes.
- What the agent claimed is never consulted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from edge_worker.executors.base import Evidence, VerificationCommand, VerificationReport
from edge_worker.executors.process import (
    ProcessSpec,
    StopReason,
    SupervisedProcess,
    scrubbed_env,
)

log = structlog.get_logger(__name__)

DEFAULT_TAIL_CHARS = 2000


async def run_check(
    workdir: Path,
    check: VerificationCommand,
    *,
    timeout_seconds: float,
    kill_grace_seconds: float = 2.0,
    pass_env: Iterable[str] = (),
    tail_chars: int = DEFAULT_TAIL_CHARS,
) -> Evidence:
    """Run one verification command and return what was observed."""
    spec = ProcessSpec(
        argv=["bash", "-lc", check.command],
        cwd=workdir,
        env=scrubbed_env(pass_env),
        timeout_seconds=timeout_seconds,
        kill_grace_seconds=kill_grace_seconds,
        run_id=f"verify:{workdir.name}",
        merge_stderr=True,
    )
    output: list[str] = []
    kept = 0

    async def keep_tail(line: str) -> None:
        nonlocal kept
        output.append(line)
        kept += len(line) + 1
        while len(output) > 1 and kept - len(output[0]) - 1 >= tail_chars:
            kept -= len(output.pop(0)) + 1

    started = time.monotonic()
    try:
        process = await SupervisedProcess.spawn(spec)
    except OSError as exc:
        return Evidence(
            command=check.command,
            expect_exit=check.expect_exit,
            reason=f"could not start the command: {exc}",
            duration_seconds=time.monotonic() - started,
        )
    outcome = await process.run(keep_tail)
    tail = "\n".join(output)[-tail_chars:]
    reason = None
    exit_code = outcome.exit_code
    if outcome.stopped is StopReason.TIMED_OUT:
        exit_code = None
        reason = f"timed out after {timeout_seconds:g} s"
    elif outcome.stopped is StopReason.CANCELLED:
        exit_code = None
        reason = "cancelled"
    evidence = Evidence(
        command=check.command,
        expect_exit=check.expect_exit,
        exit_code=exit_code,
        output_tail=tail,
        duration_seconds=outcome.duration_seconds,
        reason=reason,
    )
    log.info(
        "verification.check",
        command=check.command,
        exit_code=exit_code,
        passed=evidence.passed,
        seconds=round(outcome.duration_seconds, 3),
    )
    return evidence


async def run_local_verification(
    workdir: Path,
    commands: list[VerificationCommand],
    *,
    timeout_seconds: float = 600.0,
    kill_grace_seconds: float = 2.0,
    pass_env: Iterable[str] = (),
    tail_chars: int = DEFAULT_TAIL_CHARS,
) -> VerificationReport:
    """Run every command in ``workdir`` and report each check.

    Local verification spends no model tokens, so its cost is a known zero, not "unpriced".
    """
    pass_env = list(pass_env)
    checks = [
        await run_check(
            workdir,
            check,
            timeout_seconds=timeout_seconds,
            kill_grace_seconds=kill_grace_seconds,
            pass_env=pass_env,
            tail_chars=tail_chars,
        )
        for check in commands
    ]
    return VerificationReport(checks=checks, cost_usd=0.0)
