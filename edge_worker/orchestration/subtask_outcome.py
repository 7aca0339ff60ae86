"""What a sub-task's run amounts to: its status, its cost as data, and its outcome on error.

Contract (pure helpers of :mod:`subtask_run`, plus one error path that only calls steps):
- :func:`run_status` turns a finished run and its verification report into the sub-task's
  status (``passed``, ``failed``, ``over_budget``, ``timed_out``, ``cancelled``);
  :func:`resumable` and :func:`interrupted` say whether a run may get another iteration
  and whether the daemon's own restart cut it short.
- :func:`end_state` is the Linear state a sub-issue moves to when its sub-task ends.
- :func:`subtask_error` is the ``failed`` outcome of a run no step recovered from, with
  its sub-issue and tracking updated as far as they still can be.
"""

from __future__ import annotations

import contextlib
from typing import Any

import structlog

from edge_worker.costs.money import Total
from edge_worker.executors.base import Evidence, RunStatus
from edge_worker.executors.local_cli import INTERRUPTED_REASON
from edge_worker.orchestration import steps, texts
from edge_worker.orchestration.workflow_config import join_notes
from edge_worker.reporting.report import verification_summary

log = structlog.get_logger(__name__)


def cost_json(total: Total) -> dict[str, int]:
    """The cost ``total`` as the JSON an outcome carries (``steps.total_json``)."""
    return steps.total_json(total)


async def subtask_error(spec: dict[str, Any], workflow_id: str, exc: Exception) -> dict[str, Any]:
    """The outcome of a sub-task whose run could not go on (an error no step recovered)."""
    key, issue_id = spec["key"], spec["issue_id"]
    summary = texts.SUBTASK_ERROR
    spent = Total()
    with contextlib.suppress(Exception):
        spent = Total(**await steps.subtask_total_step(issue_id, key))
    outcome = {
        "key": key,
        "status": "failed",
        "executor": spec["executor"],
        "iterations": int(spec.get("iterations_before") or 0),
        "cost": cost_json(spent),
        "duration_seconds": None,
        "pr_url": None,
        "branch": None,
        "verification": verification_summary([]),
        "summary": summary,
        "note": join_notes(spec.get("note"), summary),
    }
    if spec.get("sub_issue_id"):
        with contextlib.suppress(Exception):
            await steps.finish_subissue_step(
                spec["sub_issue_id"],
                {
                    "status": "failed",
                    "summary": summary,
                    "cost": outcome["cost"],
                    "iterations": 0,
                    "checks": [],
                    "executor": spec["executor"],
                    "note": spec.get("note"),
                },
                spec.get("reset_state_id"),
            )
    with contextlib.suppress(Exception):
        await steps.track_subtask_step(issue_id, key, workflow_id, "failed", spec["executor"])
    return outcome


def end_state(spec: dict[str, Any], status: str) -> str | None:
    """Where a sub-issue goes when its sub-task ends: done when it passed; back to the
    unstarted (or configured) state when it failed or could not go on, so boards do not
    show it moving; left alone when the work was stopped."""
    if status == "passed":
        return spec.get("done_state_id")
    if status in ("failed", "timed_out", "over_budget"):
        return spec.get("reset_state_id")
    return None


def run_status(result: dict[str, Any], report: dict[str, Any]) -> str:
    """The sub-task's status from its run's ``result`` and verification ``report``: the
    run's own end when it was cut short, else passed only when every check passed."""
    run = RunStatus(result["status"])
    if run is RunStatus.OVER_BUDGET:
        return "over_budget"
    if run is RunStatus.TIMED_OUT:
        return "timed_out"
    if run is RunStatus.CANCELLED:
        return "cancelled"
    checks = report["checks"]
    if not checks:  # only a non-code task: plan validation gives every code task its checks
        return "passed" if run is RunStatus.SUCCEEDED else "failed"
    if all(Evidence.model_validate(c).passed for c in checks):
        return "passed"
    return "failed"


def resumable(result: dict[str, Any]) -> bool:
    """Whether the run ended so that its session may get another iteration."""
    return RunStatus(result["status"]) in (RunStatus.SUCCEEDED, RunStatus.FAILED)


def interrupted(result: dict[str, Any]) -> bool:
    """A local run cut short by the daemon's own restart: its session goes on, or (when it
    died before announcing one) a new session starts in the same worktree."""
    return result.get("error") == INTERRUPTED_REASON
