"""View models of the console's pages, built from records (sans-I/O).

Contract: each ``*_view`` function takes records (and the configured limits) and returns
plain data the templates print as is: money already formatted by
:meth:`Total.format` (so a total with unpriced parts says so and nothing unpriced reads
``$0.00``), ages by :func:`format_age` (as ``edge-worker status`` prints them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from edge_worker.console.records import (
    CheckRecord,
    IssueRecord,
    PlannedTask,
    QueueRecord,
    RunRecord,
)
from edge_worker.console.svg import GraphNode, plan_graph
from edge_worker.costs.money import Total, format_usd
from edge_worker.linear.limits import RateLimitSnapshot
from edge_worker.status import format_age
from edge_worker.storage.activity_log import ActivityLine

WAIT_PLANNER = "the planner"
WAIT_HUMAN = "a human answer"
WAIT_QUEUE = "a queue slot ({count} run(s) queued)"
WAIT_EXECUTOR = "executor: {names}"
WAIT_ISSUE_BUDGET = 'the issue budget (reply "continue" on Linear to raise it once)'
WAIT_DAY_BUDGET = "the day's budget"
WAIT_SCHEDULER = "the scheduler"
WAIT_LINEAR = "Linear's rate limit (until {until} UTC)"
LINEAR_HEADROOM = "{remaining:,} of {limit:,} Linear requests left, renewed at {reset} UTC"
LINEAR_UNKNOWN = "Linear has not reported its rate limit yet (no request since start)."
PROGRESS_SHOWN = 40
"""How many of a run's latest progress lines the Issue page shows."""
NOT_RUN = "not_run"
"""The state shown for a sub-task of a finished issue that never started."""


@dataclass(frozen=True)
class Budget:
    """Spend against a limit, ready to draw as a bar."""

    spent: str
    limit: str | None
    percent: int | None
    """Priced spend as a percentage of the limit (capped at 100 for the bar's width)."""
    over: bool
    unpriced: int


def budget(total: Total, limit: Decimal | None) -> Budget:
    """``total`` against ``limit`` (``None``: no limit)."""
    if limit is None:
        return Budget(total.format(), None, None, False, total.unpriced)
    ratio = total.usd / limit if limit else Decimal(0)
    return Budget(
        spent=total.format(),
        limit=format_usd(limit),
        percent=min(100, int(ratio * 100)),
        over=ratio >= 1,
        unpriced=total.unpriced,
    )


@dataclass(frozen=True)
class LinearLimit:
    """Linear's rate limit as the daemon last saw it."""

    text: str
    limited_until: str | None
    """``HH:MM`` when the requests or the complexity budget are used up, else ``None``."""


def linear_limit(snapshot: RateLimitSnapshot | None, now: datetime) -> LinearLimit:
    """Linear's headroom from the last response's ``X-RateLimit-*`` headers."""
    if snapshot is None or snapshot.requests_remaining is None:
        return LinearLimit(LINEAR_UNKNOWN, None)

    def clock(epoch: float | None) -> str:
        return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%H:%M")

    until = None
    for remaining, reset in (
        (snapshot.requests_remaining, snapshot.requests_reset_at),
        (snapshot.complexity_remaining, snapshot.complexity_reset_at),
    ):
        if remaining is not None and remaining <= 0 and reset and reset > now.timestamp():
            until = clock(reset)
    text = LINEAR_HEADROOM.format(
        remaining=snapshot.requests_remaining,
        limit=snapshot.requests_limit or 0,
        reset=clock(snapshot.requests_reset_at),
    )
    return LinearLimit(text, until)


def waiting_on(
    record: IssueRecord,
    *,
    queued: int,
    issue_limit: Decimal | None,
    day_over: bool,
    linear_until: str | None = None,
) -> str:
    """What the issue waits on now, in words an operator acts on."""
    if record.state in ("starting", "planning"):
        return WAIT_PLANNER
    if record.state == "waiting":
        return WAIT_HUMAN
    if record.running_on:
        counts = Counter(record.running_on)
        names = ", ".join(f"{n} ({c} runs)" if c > 1 else n for n, c in sorted(counts.items()))
        return WAIT_EXECUTOR.format(names=names)
    if linear_until is not None:
        return WAIT_LINEAR.format(until=linear_until)
    if queued:
        return WAIT_QUEUE.format(count=queued)
    if day_over:
        return WAIT_DAY_BUDGET
    if issue_limit is not None and record.spend.usd >= issue_limit:
        return WAIT_ISSUE_BUDGET
    return WAIT_SCHEDULER


@dataclass(frozen=True)
class IssueLine:
    """One issue as the Now and History tables show it."""

    issue_id: str
    identifier: str
    state: str
    done: int
    total: int
    executor_mix: str
    spend: Budget
    age: str
    waiting_on: str
    team: str
    finished: str
    linear_url: str | None = None


def _mix(record: IssueRecord) -> str:
    return ", ".join(f"{name}: {count}" for name, count in record.executors.items()) or "-"


def issue_line(
    record: IssueRecord,
    now: datetime,
    *,
    issue_limit: Decimal | None,
    queued: int = 0,
    day_over: bool = False,
    linear_until: str | None = None,
) -> IssueLine:
    """The table line of ``record`` at ``now``."""
    end = record.finished_at or now
    return IssueLine(
        issue_id=record.issue_id,
        identifier=record.identifier,
        state=record.state,
        done=record.done,
        total=record.subtasks_total,
        executor_mix=_mix(record),
        spend=budget(record.spend, issue_limit),
        age=format_age(max(0.0, (end - record.started_at).total_seconds())),
        waiting_on=(
            waiting_on(
                record,
                queued=queued,
                issue_limit=issue_limit,
                day_over=day_over,
                linear_until=linear_until,
            )
            if record.finished_at is None
            else "-"
        ),
        team=record.team,
        finished=record.finished_at.strftime("%Y-%m-%d %H:%M") if record.finished_at else "",
        linear_url=record.linear_url,
    )


@dataclass(frozen=True)
class NowView:
    """The *Now* page."""

    issues: list[IssueLine]
    queues: list[QueueRecord]
    today: str
    day: Budget
    linear: LinearLimit


def now_view(
    records: Sequence[IssueRecord],
    queues: Sequence[QueueRecord],
    queued_run_ids: Sequence[str],
    *,
    today: str,
    today_total: Total,
    day_limit: Decimal | None,
    issue_limit: Decimal | None,
    now: datetime,
    linear: RateLimitSnapshot | None = None,
) -> NowView:
    """The Now page from the issues in flight, the queues, today's spend and Linear's
    rate limit."""
    day = budget(today_total, day_limit)
    limit = linear_limit(linear, now)
    lines = [
        issue_line(
            record,
            now,
            issue_limit=issue_limit,
            queued=sum(1 for w in queued_run_ids if w.startswith(record.workflow_id + "-")),
            day_over=day.over,
            linear_until=limit.limited_until,
        )
        for record in records
    ]
    return NowView(issues=lines, queues=list(queues), today=today, day=day, linear=limit)


@dataclass(frozen=True)
class LogLine:
    """One line of the activity log or of a run's progress, as the Issue page prints it."""

    at: str
    """``HH:MM:SS`` UTC (the day too when not the page's day)."""
    kind: str
    body: str


def log_line(line: ActivityLine, now: datetime) -> LogLine:
    """``line`` with its time in UTC (its date too when it is not today's)."""
    moment = line.at.astimezone(UTC)
    fmt = "%H:%M:%S" if moment.date() == now.astimezone(UTC).date() else "%Y-%m-%d %H:%M:%S"
    return LogLine(at=moment.strftime(fmt), kind=line.kind, body=line.body)


@dataclass(frozen=True)
class RunLine:
    """One dispatch of a sub-task, as the Issue page lists it."""

    workflow_id: str
    attempt: int
    executor: str
    status: str
    iterations: str
    verification: str
    cost: str
    duration: str
    pr_url: str | None
    branch: str | None
    summary: str
    note: str | None
    evidence: tuple[CheckRecord, ...] = ()
    verifications: int = 0
    progress: tuple[LogLine, ...] = ()
    """The run's latest progress lines, oldest first."""
    progress_total: int = 0
    """How many progress lines the run has in all."""


@dataclass(frozen=True)
class TaskSection:
    """One sub-task: its plan entry, state, spend and runs."""

    key: str
    title: str
    role: str
    depends_on: tuple[str, ...]
    status: str
    executor: str | None
    spend: str
    runs: list[RunLine] = field(default_factory=list)


@dataclass(frozen=True)
class IssueView:
    """The *Issue* page."""

    line: IssueLine
    detail: str | None
    graph_svg: str
    tasks: list[TaskSection]
    planning_spend: str
    activity: list[LogLine] = field(default_factory=list)
    """What the daemon said on Linear about the issue (not the runs' progress), oldest
    first."""


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return format_age(float(seconds)) if seconds >= 60 else f"{seconds:.1f}s"


def run_line(run: RunRecord, now: datetime, progress: Sequence[ActivityLine] = ()) -> RunLine:
    """The Issue page's line for ``run`` (one still running shows its elapsed time) with
    the latest :data:`PROGRESS_SHOWN` of its ``progress`` lines."""
    outcome = run.outcome or {}
    cost = outcome.get("cost")
    if outcome:
        duration = _duration(outcome.get("duration_seconds"))
    elif run.created_at is not None and run.status in ("PENDING", "ENQUEUED"):
        duration = format_age((now - run.created_at).total_seconds()) + " so far"
    else:
        duration = "-"
    status = {"PENDING": "running", "ENQUEUED": "queued"}.get(run.status, run.status.lower())
    return RunLine(
        workflow_id=run.workflow_id,
        attempt=run.attempt,
        executor=run.executor,
        status=status if not outcome else str(outcome.get("status", status)),
        iterations=str(outcome.get("iterations", "-")),
        verification=str(outcome.get("verification") or "-"),
        cost=Total(**cost).format() if isinstance(cost, dict) else "-",
        duration=duration,
        pr_url=outcome.get("pr_url"),
        branch=outcome.get("branch"),
        summary=str(outcome.get("summary") or ""),
        note=outcome.get("note"),
        evidence=run.evidence,
        verifications=run.verifications,
        progress=tuple(log_line(p, now) for p in progress[-PROGRESS_SHOWN:]),
        progress_total=len(progress),
    )


def issue_view(
    record: IssueRecord,
    plan: Sequence[PlannedTask],
    runs: Sequence[RunRecord],
    subtask_states: dict[str, tuple[str, str | None]],
    subtask_spend: dict[str | None, Total],
    *,
    issue_limit: Decimal | None,
    now: datetime,
    activity: Sequence[ActivityLine] = (),
) -> IssueView:
    """The Issue page: the plan graph coloured by each sub-task's state, its runs with
    their progress, and the activity log.

    ``subtask_spend`` maps each sub-task key (``None``: the planner and other issue-wide
    entries) to what the ledger holds for it. ``activity`` is the issue's log: lines of a
    run (by its workflow id) go under that run, the others into the page's activity log.
    """
    per_run: dict[str, list[ActivityLine]] = {}
    said: list[ActivityLine] = []
    for entry in activity:
        if entry.run_workflow_id is None:
            said.append(entry)
        else:
            per_run.setdefault(entry.run_workflow_id, []).append(entry)
    by_key: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    tasks = []
    nodes = []
    never = NOT_RUN if record.finished_at is not None else "pending"
    for planned in plan:
        state, executor = subtask_states.get(planned.key, (never, None))
        tasks.append(
            TaskSection(
                key=planned.key,
                title=planned.title,
                role=planned.role,
                depends_on=planned.depends_on,
                status=state,
                executor=executor,
                spend=subtask_spend.get(planned.key, Total()).format(),
                runs=[
                    run_line(r, now, per_run.get(r.workflow_id, ()))
                    for r in by_key.get(planned.key, [])
                ],
            )
        )
        nodes.append(GraphNode(planned.key, planned.title, state, executor, planned.depends_on))
    return IssueView(
        line=issue_line(record, now, issue_limit=issue_limit),
        detail=record.detail,
        graph_svg=plan_graph(nodes),
        tasks=tasks,
        planning_spend=subtask_spend.get(None, Total()).format(),
        activity=[log_line(entry, now) for entry in said],
    )
