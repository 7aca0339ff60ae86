"""Where an orchestration stands, and what it may do next (sans-I/O).

The orchestration workflow keeps a :class:`Progress`: the plan and one
:class:`TaskRecord` per sub-task. Pure functions answer the scheduling questions (which
sub-tasks are ready, which must be skipped because a dependency failed, whether the work
is finished) and turn the progress into the report's model. Records are plain pydantic
data so a workflow can pass them through DBOS checkpoints unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from edge_worker.costs.money import Total
from edge_worker.orchestration.plan import Plan, Subtask
from edge_worker.reporting.report import ReportModel, ReportState, SubtaskRow

TaskStatus = Literal[
    "pending", "running", "passed", "failed", "skipped", "cancelled", "over_budget", "timed_out"
]
FINISHED: frozenset[str] = frozenset(
    {"passed", "failed", "skipped", "cancelled", "over_budget", "timed_out"}
)
STATUS_LABELS = {
    "pending": "⏳ pending",
    "running": "🔄 running",
    "passed": "✅ passed",
    "failed": "❌ failed",
    "skipped": "⏭️ skipped",
    "cancelled": "⏹️ stopped",
    "over_budget": "💸 over budget",
    "timed_out": "⌛ timed out",
}


class TaskRecord(BaseModel):
    """One sub-task's state as the orchestration knows it."""

    key: str
    title: str
    status: TaskStatus = "pending"
    sub_issue_id: str | None = None
    identifier: str | None = None
    url: str | None = None
    executor: str | None = None
    iterations: int = 0
    cost_micros: int = 0
    priced_parts: int = 0
    unpriced_parts: int = 0
    uncertain_parts: int = 0
    duration_seconds: float | None = None
    pr_url: str | None = None
    branch: str | None = None
    verification: str = "not verified"
    checks: list[dict[str, Any]] = []
    """Each verification command and its exit code (a per-issue pull request shows them)."""
    note: str | None = None
    workflow_id: str | None = None
    feedback: list[str] = []
    """Follow-ups for this sub-task not yet given to a run."""
    resume_from: dict[str, Any] | None = None
    """The handle of the finished run that feedback reopens (its session goes on)."""

    @property
    def cost(self) -> Total:
        return Total(self.cost_micros, self.priced_parts, self.unpriced_parts, self.uncertain_parts)


class Progress(BaseModel):
    """The plan and every sub-task's record."""

    plan: Plan
    tasks: dict[str, TaskRecord]

    @classmethod
    def start(cls, plan: Plan) -> Progress:
        return cls(
            plan=plan,
            tasks={s.key: TaskRecord(key=s.key, title=s.title) for s in plan.subtasks},
        )

    def add(self, subtasks: Iterable[Subtask]) -> list[Subtask]:
        """Add sub-tasks not in the plan yet (by key); returns those added."""
        added = [s for s in subtasks if s.key not in self.tasks]
        if added:
            self.plan = self.plan.model_copy(update={"subtasks": [*self.plan.subtasks, *added]})
            for s in added:
                self.tasks[s.key] = TaskRecord(key=s.key, title=s.title)
        return added

    def running(self) -> list[TaskRecord]:
        return [t for t in self.tasks.values() if t.status == "running"]

    def finished(self) -> bool:
        return all(t.status in FINISHED for t in self.tasks.values())


def ready(progress: Progress) -> list[Subtask]:
    """Pending sub-tasks whose dependencies all passed, in plan order."""
    return [
        s
        for s in progress.plan.subtasks
        if progress.tasks[s.key].status == "pending"
        and all(progress.tasks[d].status == "passed" for d in s.depends_on)
    ]


def blocked(progress: Progress) -> list[tuple[Subtask, str]]:
    """Pending sub-tasks that can never run, with the reason (a dependency did not pass).

    Transitive: a sub-task waiting on one that is blocked now is blocked too, so one call
    settles the whole graph (nothing is left pending behind a sub-task that will be
    skipped).
    """
    statuses = {key: record.status for key, record in progress.tasks.items()}
    out: list[tuple[Subtask, str]] = []
    changed = True
    while changed:
        changed = False
        for s in progress.plan.subtasks:
            if statuses[s.key] != "pending":
                continue
            for dep in s.depends_on:
                dep_status = statuses[dep]
                if dep_status in FINISHED and dep_status != "passed":
                    out.append((s, f"skipped: depends on `{dep}`, which {_verb(dep_status)}"))
                    statuses[s.key] = "skipped"
                    changed = True
                    break
    return out


def _verb(status: str) -> str:
    return {
        "failed": "failed",
        "skipped": "was skipped",
        "cancelled": "was stopped",
        "over_budget": "ran over budget",
        "timed_out": "timed out",
    }.get(status, status)


def overall_state(progress: Progress) -> ReportState:
    """``done`` when every sub-task passed, else the most telling failure."""
    statuses = {t.status for t in progress.tasks.values()}
    if statuses <= {"passed"}:
        return "done"
    if "over_budget" in statuses:
        return "over_budget"
    if "timed_out" in statuses:
        return "timed_out"
    return "failed"


def report_model(
    progress: Progress | None,
    *,
    issue_id: str,
    issue_identifier: str,
    state: ReportState,
    total: Total,
    today: Total,
    daily_limit: Decimal | None,
    planning_cost: Total | None,
    notes: Sequence[str] = (),
    stopped_by: str | None = None,
) -> ReportModel:
    """The report's model for the current progress."""
    rows: list[SubtaskRow] = []
    if progress is not None:
        for subtask in progress.plan.subtasks:
            record = progress.tasks[subtask.key]
            rows.append(
                SubtaskRow(
                    key=record.key,
                    title=record.title,
                    executor=record.executor or "-",
                    status=STATUS_LABELS[record.status],
                    identifier=record.identifier,
                    url=record.url,
                    verification=record.verification,
                    iterations=record.iterations,
                    cost=record.cost,
                    duration_seconds=record.duration_seconds,
                    pr_url=record.pr_url,
                    branch=record.branch,
                    note=record.note,
                )
            )
    return ReportModel(
        issue_id=issue_id,
        issue_identifier=issue_identifier,
        state=state,
        rows=rows,
        total=total,
        today_spend=today,
        daily_limit=daily_limit,
        stopped_by=stopped_by,
        notes=list(notes),
        planning_cost=planning_cost,
    )
