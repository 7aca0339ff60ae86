"""Recovery from known agent failures inside the sub-task workflow.

Contract:
- :func:`decide_recovery_step` (a DBOS step: it reads the clock) matches what a failed
  run's CLI said (its error, not the agent's summary) against
  :mod:`edge_worker.executors.recovery` and returns the recovery as plain data,
  or ``None``; it logs ``recovery_decided`` (pattern, action, wait), never the run's text.
- :func:`recover` applies recoveries to a sub-task's failed run until the run no longer
  fails with a known pattern: ``relaunch`` (the corrected flags join the task's command
  line) and ``wait`` (a durable ``DBOS.sleep``, so a daemon restarted meanwhile sleeps only
  what is left) resume the run in its session (or a new one in the same worktree) and
  follow it again; ``switch`` and ``escalate`` stop here and are left for the caller. Each
  recovery is appended to ``run.recoveries`` and its reason to ``run.note`` (the note shows
  in the report row and the sub-issue's comment). Bounds live in the pattern table.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.executors.base import RunStatus
from edge_worker.executors.recovery import decide, failure_text
from edge_worker.orchestration import steps
from edge_worker.orchestration.wiring import worktree_root

log = structlog.get_logger(__name__)

CONTINUE_AFTER_RECOVERY = (
    "The previous attempt stopped on a temporary problem that has been dealt with. "
    "Continue the task where you left off."
)


class RecoverableRun(Protocol):
    """What :func:`recover` needs of the sub-task run (``subtask_run._SubtaskRun``)."""

    executor: str
    spec: dict[str, Any]
    task: dict[str, Any]
    handle: dict[str, Any]
    result: dict[str, Any]
    note: str | None
    recoveries: list[dict[str, Any]]
    switch_reason: str | None
    escalated: bool

    def cost(self, step: str, attempt: int, kind: str) -> dict[str, Any]: ...

    async def _set_handle(self, handle: dict[str, Any]) -> None: ...

    async def publish_run(self, handle: dict[str, Any], charge: dict[str, Any]) -> None: ...


@DBOS.step()
async def decide_recovery_step(
    executor: str, result: dict[str, Any], task: dict[str, Any], used: dict[str, int]
) -> dict[str, Any] | None:
    """The recovery for a failed run, as stored data; ``None`` when nothing is known."""
    settings = services.current().settings
    text = failure_text(result)
    roots = [str(worktree_root(settings))]
    if task.get("repository_path"):
        roots.append(str(task["repository_path"]))
    recovery = decide(
        executor,
        text,
        now=datetime.now(UTC),
        used=used,
        allowed_roots=roots,
        max_wait_seconds=settings.recovery.max_wait_seconds,
        overload_wait_seconds=settings.recovery.overload_wait_seconds,
    )
    if recovery is None:
        return None
    log.info(
        "recovery_decided",
        executor=executor,
        pattern=recovery.pattern,
        action=recovery.action.value,
        times=recovery.times,
        wait_seconds=recovery.wait_seconds,
    )
    return recovery.as_json()


def _join(first: str | None, second: str) -> str:
    return f"{first} {second}" if first else second


async def recover(run: RecoverableRun) -> None:
    """Apply known-failure recoveries to ``run``'s failed result (see the module doc)."""
    if not services.current().settings.recovery.enabled:
        return
    while RunStatus(run.result["status"]) is RunStatus.FAILED:
        used = dict(Counter(str(r["pattern"]) for r in run.recoveries))
        recovery = await decide_recovery_step(run.executor, run.result, run.task, used)
        if recovery is None:
            return
        run.recoveries.append(recovery)
        run.note = _join(run.note, str(recovery["reason"]))
        action = recovery["action"]
        if action == "switch":
            run.switch_reason = str(recovery["reason"])
            return
        if action == "escalate":
            run.escalated = True
            return
        if float(recovery["wait_seconds"]) > 0:
            await DBOS.sleep_async(float(recovery["wait_seconds"]))
        if recovery["extra_args"]:
            flags = [*run.task.get("extra_args", []), *recovery["extra_args"]]
            run.task = {**run.task, "extra_args": flags}
        charge = run.cost("recover", len(run.recoveries), "resume")
        handle = await steps.resume_run_step(
            run.executor, run.handle, run.task, CONTINUE_AFTER_RECOVERY, charge
        )
        await run.publish_run(handle, charge)
        run.result = await steps.follow_run_step(
            run.executor, run.handle, run.spec.get("session_id"), charge
        )
        session = run.result.get("session_id")
        if session and session != run.handle.get("session_id"):
            await run._set_handle({**run.handle, "session_id": session})
