"""Constants and small helpers shared by the workflow modules (the lowest of them).

Contract: the control topic every orchestration listens on, the waits and bounds of the
workflows, the executors' cost estimates (:func:`estimates_for`), and
:func:`join_notes`. Imports nothing of the other workflow modules, so each of them may
import it. A constant read by one module is patched there (``module.NAME``) only if that
module reads it through this one; they import the values by name.
"""

from __future__ import annotations

from edge_worker.orchestration.strategy import ExecutorEstimate
from edge_worker.settings import Settings

CONTROL_TOPIC = "control"
"""The topic of control messages to an orchestration: follow-ups, stops, sessions, edits
and its sub-tasks' ``subtask_done`` outcomes."""
POLL_SECONDS = 30.0
PROGRESS_UPDATE_SECONDS = 60.0
REPOSITORY_WAIT_SECONDS = 24 * 3600.0
BUDGET_WAIT_SECONDS = 24 * 3600.0
LOCAL_EXECUTORS = ("claude-code", "codex", "gemini")
INTERRUPTED_CONTINUES = 2
"""How many times a local run cut short by a restart is continued in the same session."""
ESTIMATES = {
    "codegen": ExecutorEstimate(expected_usd=None, success_rate=0.8),
    "claude-code": ExecutorEstimate(expected_usd=1.0, success_rate=0.8),
    "codex": ExecutorEstimate(expected_usd=0.5, success_rate=0.7),
    "gemini": ExecutorEstimate(expected_usd=0.6, success_rate=0.7),
}
STATUS_WORDS = {
    "skipped": "was skipped",
    "cancelled": "was stopped",
    "over_budget": "is over its budget",
}
HANDLE_WAIT_SECONDS = 10.0
FOLLOWING_EVENT = "following"
"""A sub-task workflow's event: ``{"handle": ..., "charge": ...}``, the run it follows (or is
about to) with that run's cost fields, one value so the two always belong together. The
orchestration that stops the sub-task waits for it, then abandons that run and charges
it: a paid run that will never be followed is still recorded."""
SESSION_WAIT_SECONDS = 5.0
"""How long work started by a delegation or inbox notification waits for the agent session
Linear opens for the same delegation, so the session carries it from the first word."""
DELEGATION_WINDOW_SECONDS = 60.0
"""A delegation's notification or ``delegateId`` update arriving this long after its
session's work ended is still part of that work, not a new start."""
OWNER_WAIT_SECONDS = 60.0
OWNER_POLL_SECONDS = 0.5


def estimates_for(settings: Settings) -> dict[str, ExecutorEstimate]:
    """What each executor is expected to cost: Codegen at its configured price per run."""
    codegen = ESTIMATES["codegen"]
    return {
        **ESTIMATES,
        "codegen": ExecutorEstimate(settings.codegen.cost_per_run_usd, codegen.success_rate),
    }


def join_notes(first: str | None, second: str | None) -> str | None:
    """The two notes joined with ``"; "``, either left out when empty; ``None`` if both are."""
    parts = [p for p in (first, second) if p]
    return "; ".join(parts) if parts else None
