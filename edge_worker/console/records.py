"""Plain records the console's queries return and its views read (sans-I/O).

Every record is a frozen dataclass of plain values, so view code and the daily report can
be tested with hand-made records and the query code stays the only part that touches the
database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edge_worker.costs.money import Total


@dataclass(frozen=True)
class IssueRecord:
    """One row of ``ew_work_items`` with what the console adds to it."""

    issue_id: str
    identifier: str
    state: str
    workflow_id: str
    subtasks_total: int
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None
    spend: Total = field(default_factory=Total)
    subtask_states: dict[str, int] = field(default_factory=dict)
    """How many sub-tasks are in each state (``passed``, ``running``, ...)."""
    executors: dict[str, int] = field(default_factory=dict)
    """How many sub-tasks ran (or run) on each executor."""
    running_on: tuple[str, ...] = ()
    """The executors of the sub-tasks running now."""
    linear_url: str | None = None
    """The issue on Linear, when the daemon has read it (``ew_issue_links``)."""

    @property
    def done(self) -> int:
        """Sub-tasks that passed (what ``edge-worker status`` counts as done)."""
        return self.subtask_states.get("passed", 0)

    @property
    def team(self) -> str:
        """The team key: the identifier's prefix (``ENG`` of ``ENG-12``)."""
        head, sep, _ = self.identifier.rpartition("-")
        return head if sep else "-"


@dataclass(frozen=True)
class QueueRecord:
    """One DBOS queue: workflows waiting and running, and its limits."""

    name: str
    label: str
    waiting: int
    running: int
    limit: str


@dataclass(frozen=True)
class PlannedTask:
    """One sub-task of the plan as the planner wrote it."""

    key: str
    title: str
    role: str
    executor_hint: str
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class CheckRecord:
    """One verification check as the daemon observed it (not as the agent claimed)."""

    command: str
    expect_exit: int
    exit_code: int | None
    reason: str | None
    output_tail: str

    @property
    def passed(self) -> bool:
        return self.exit_code is not None and self.exit_code == self.expect_exit


@dataclass(frozen=True)
class RunRecord:
    """One ``run_subtask`` workflow: a dispatch of a sub-task to an executor."""

    workflow_id: str
    key: str
    attempt: int
    executor: str
    status: str
    """DBOS's status while it runs (``ENQUEUED``, ``PENDING``), the outcome's after."""
    created_at: datetime | None
    updated_at: datetime | None
    outcome: dict[str, Any] | None = None
    """What the run returned: iterations, cost, duration, verification, PR, branch..."""
    evidence: tuple[CheckRecord, ...] = ()
    """The checks of the run's latest verification (empty before the first one)."""
    verifications: int = 0
    """How many verifications the run has had so far."""
