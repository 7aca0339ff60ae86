"""The console's reads of the daemon's own tables (I/O; SQLAlchemy Core, synchronous).

Contract: every function takes an open connection and returns :mod:`records`; nothing here
writes. Money per issue is summed exactly as :meth:`Ledger.issue_total` sums it (priced
micro-dollars plus the count of unpriced parts), grouped in one query for many issues.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from edge_worker.console.records import IssueRecord
from edge_worker.costs.ledger import COST_ENTRIES
from edge_worker.costs.money import Total
from edge_worker.storage.activity_log import activity_log
from edge_worker.storage.issue_links import urls
from edge_worker.storage.work import ACTIVE_STATES, TERMINAL_STATES, subtasks, work_items


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` as an aware UTC datetime (SQLite hands back naive UTC ones)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def issue_spend(conn: sa.Connection, issue_ids: Sequence[str]) -> dict[str, Total]:
    """Everything spent on each of ``issue_ids`` (absent ids spent nothing)."""
    if not issue_ids:
        return {}
    usd = COST_ENTRIES.c.usd_micros
    query = (
        sa.select(
            COST_ENTRIES.c.issue_id,
            sa.func.coalesce(sa.func.sum(usd), 0),
            sa.func.count(usd),
            sa.func.count(),
        )
        .where(COST_ENTRIES.c.issue_id.in_(list(issue_ids)))
        .group_by(COST_ENTRIES.c.issue_id)
    )
    return {
        str(issue): Total(micros=int(micros), priced=int(priced), unpriced=int(n) - int(priced))
        for issue, micros, priced, n in conn.execute(query)
    }


def _subtask_facts(
    conn: sa.Connection, issue_ids: Sequence[str]
) -> dict[str, list[tuple[str, str | None]]]:
    if not issue_ids:
        return {}
    found: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    query = sa.select(subtasks.c.issue_id, subtasks.c.state, subtasks.c.executor).where(
        subtasks.c.issue_id.in_(list(issue_ids))
    )
    for issue, state, executor in conn.execute(query):
        found[str(issue)].append((str(state), executor))
    return found


def _records(conn: sa.Connection, rows: Sequence[Any]) -> list[IssueRecord]:
    ids = [str(row.issue_id) for row in rows]
    spend = issue_spend(conn, ids)
    facts = _subtask_facts(conn, ids)
    links = urls(conn, ids)
    records = []
    for row in rows:
        states: dict[str, int] = defaultdict(int)
        executors: dict[str, int] = defaultdict(int)
        running: list[str] = []
        for state, executor in facts.get(str(row.issue_id), []):
            states[state] += 1
            if executor:
                executors[executor] += 1
                if state == "running":
                    running.append(executor)
        started = aware(row.started_at)
        updated = aware(row.updated_at)
        assert started is not None and updated is not None
        records.append(
            IssueRecord(
                issue_id=str(row.issue_id),
                identifier=str(row.issue_identifier or row.issue_id),
                state=str(row.state),
                workflow_id=str(row.workflow_id),
                subtasks_total=int(row.subtasks_total or 0),
                started_at=started,
                updated_at=updated,
                finished_at=aware(row.finished_at),
                detail=row.detail,
                spend=spend.get(str(row.issue_id), Total()),
                subtask_states=dict(states),
                executors=dict(sorted(executors.items())),
                running_on=tuple(sorted(running)),
                linear_url=links.get(str(row.issue_id)),
            )
        )
    return records


def in_flight(conn: sa.Connection, limit: int = 500) -> list[IssueRecord]:
    """Issues being worked on now, the oldest first."""
    rows = conn.execute(
        sa.select(work_items)
        .where(work_items.c.state.in_(ACTIVE_STATES))
        .order_by(work_items.c.started_at)
        .limit(limit)
    ).all()
    return _records(conn, rows)


def one_issue(conn: sa.Connection, ref: str) -> IssueRecord | None:
    """The issue whose id or identifier is ``ref``, or ``None``."""
    row = conn.execute(
        sa.select(work_items).where(
            sa.or_(work_items.c.issue_id == ref, work_items.c.issue_identifier == ref)
        )
    ).first()
    return _records(conn, [row])[0] if row is not None else None


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants where ``day`` (in ``zone``) begins and ends."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def finished(
    conn: sa.Connection,
    *,
    zone: ZoneInfo,
    state: str | None = None,
    team: str | None = None,
    executor: str | None = None,
    day: date | None = None,
    limit: int = 100,
) -> list[IssueRecord]:
    """Finished issues, the most recently finished first, filtered as given."""
    query = sa.select(work_items).where(work_items.c.state.in_(TERMINAL_STATES))
    if state:
        query = query.where(work_items.c.state == state)
    if team:
        query = query.where(work_items.c.issue_identifier.like(f"{team}-%"))
    if executor:
        query = query.where(
            sa.exists()
            .where(subtasks.c.issue_id == work_items.c.issue_id)
            .where(subtasks.c.executor == executor)
        )
    if day is not None:
        start, end = day_bounds(day, zone)
        query = query.where(work_items.c.finished_at >= start, work_items.c.finished_at < end)
    query = query.order_by(work_items.c.finished_at.desc()).limit(limit)
    return _records(conn, conn.execute(query).all())


def history_choices(conn: sa.Connection) -> tuple[list[str], list[str]]:
    """The teams (identifier prefixes) and executors finished work has, for the filters."""
    identifiers = conn.execute(
        sa.select(work_items.c.issue_identifier)
        .where(work_items.c.state.in_(TERMINAL_STATES))
        .distinct()
    ).scalars()
    teams = sorted({str(i).rpartition("-")[0] for i in identifiers if i and "-" in str(i)})
    executors = sorted(
        str(e)
        for e in conn.execute(sa.select(subtasks.c.executor).distinct()).scalars()
        if e is not None
    )
    return teams, executors


def subtask_rows(conn: sa.Connection, issue_id: str) -> dict[str, tuple[str, str | None]]:
    """``{key: (state, executor)}`` of one issue's sub-tasks."""
    query = sa.select(subtasks.c.key, subtasks.c.state, subtasks.c.executor).where(
        subtasks.c.issue_id == issue_id
    )
    return {str(k): (str(s), e) for k, s, e in conn.execute(query)}


def day_totals(conn: sa.Connection, first: date, last: date) -> dict[date, Total]:
    """Each day's total from ``first`` to ``last`` (days without entries are absent),
    summed as :meth:`Ledger.day_total` sums one day, in one grouped query."""
    usd = COST_ENTRIES.c.usd_micros
    query = (
        sa.select(
            COST_ENTRIES.c.day,
            sa.func.coalesce(sa.func.sum(usd), 0),
            sa.func.count(usd),
            sa.func.count(),
        )
        .where(COST_ENTRIES.c.day >= first, COST_ENTRIES.c.day <= last)
        .group_by(COST_ENTRIES.c.day)
    )
    return {
        day: Total(micros=int(micros), priced=int(priced), unpriced=int(n) - int(priced))
        for day, micros, priced, n in conn.execute(query)
    }


def change_token(conn: sa.Connection) -> str:
    """A string that changes whenever work, a sub-task, the ledger or the activity log
    changes.

    One cheap query (maxima and counts over indexed or small tables), run by the console's
    change feed a few times a second whatever the number of open pages.
    """
    query = sa.select(
        sa.select(sa.func.max(work_items.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(work_items).scalar_subquery(),
        sa.select(sa.func.max(subtasks.c.updated_at)).scalar_subquery(),
        sa.select(sa.func.count()).select_from(subtasks).scalar_subquery(),
        sa.select(sa.func.count()).select_from(COST_ENTRIES).scalar_subquery(),
        sa.select(sa.func.max(activity_log.c.seq)).scalar_subquery(),
    )
    values = conn.execute(query).one()
    return "|".join("" if v is None else str(v) for v in values)
