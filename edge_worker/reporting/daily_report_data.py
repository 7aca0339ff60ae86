"""Reads one day's facts for the daily report from the daemon's database (I/O).

Contract: :func:`read_day_facts` reads, without writing, the issues whose work ended on
``day`` (in the budget time zone), the sub-tasks last updated that day in a final state,
and the day's ledger rows (``Ledger.entries(day=day)``, what ``edge-worker costs --day``
reads). :func:`run_report_command` prints the markdown; exit codes as ``costs``.
"""

from __future__ import annotations

import sys
from datetime import date
from decimal import Decimal
from typing import TextIO

import sqlalchemy as sa

from edge_worker.console.queries import aware, day_bounds, issue_spend
from edge_worker.costs.cli import (
    BAD_DAY,
    BAD_TIMEZONE,
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    UNREADABLE,
    _database_missing,
    parse_day,
)
from edge_worker.costs.ledger import COST_ENTRIES, Clock, Ledger, aware_now, utc_now, zone_for
from edge_worker.costs.money import Total
from edge_worker.reporting.daily_report import (
    DayFacts,
    EndedIssue,
    EndedSubtask,
    build_daily_report,
    render_markdown,
)
from edge_worker.settings import Settings
from edge_worker.storage.db import create_engine_for
from edge_worker.storage.work import TERMINAL_STATES, subtasks, work_items

SUBTASK_FINAL = ("passed", "failed", "skipped", "cancelled", "over_budget", "timed_out")


def read_day_facts(
    engine: sa.Engine, day: date, timezone: str, daily_limit: float | None
) -> DayFacts:
    """The facts of ``day`` (see the module contract)."""
    zone = zone_for(timezone)
    start, end = day_bounds(day, zone)
    inspector = sa.inspect(engine)
    issues: list[EndedIssue] = []
    ended_tasks: list[EndedSubtask] = []
    if inspector.has_table(work_items.name):
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_items)
                .where(work_items.c.state.in_(TERMINAL_STATES))
                .where(work_items.c.finished_at >= start, work_items.c.finished_at < end)
                .order_by(work_items.c.finished_at)
            ).all()
            spend = (
                issue_spend(conn, [str(r.issue_id) for r in rows])
                if inspector.has_table(COST_ENTRIES.name)
                else {}
            )
            identifiers = {
                str(r.issue_id): str(r.issue_identifier or r.issue_id)
                for r in conn.execute(
                    sa.select(work_items.c.issue_id, work_items.c.issue_identifier)
                )
            }
            tasks = conn.execute(
                sa.select(subtasks)
                .where(subtasks.c.state.in_(SUBTASK_FINAL))
                .where(subtasks.c.updated_at >= start, subtasks.c.updated_at < end)
                .order_by(subtasks.c.updated_at)
            ).all()
        for row in rows:
            started, finished = aware(row.started_at), aware(row.finished_at)
            assert started is not None and finished is not None
            issues.append(
                EndedIssue(
                    identifier=str(row.issue_identifier or row.issue_id),
                    state=str(row.state),
                    started_at=started,
                    finished_at=finished,
                    spend=spend.get(str(row.issue_id), Total()),
                )
            )
        ended_tasks = [
            EndedSubtask(
                identifier=identifiers.get(str(t.issue_id), str(t.issue_id)),
                key=str(t.key),
                executor=t.executor,
                state=str(t.state),
            )
            for t in tasks
        ]
    ledger = (
        Ledger(engine, timezone).entries(day=day) if inspector.has_table(COST_ENTRIES.name) else []
    )
    return DayFacts(
        day=day,
        timezone=zone.key,
        issues=issues,
        subtasks=ended_tasks,
        ledger=ledger,
        daily_limit=None if daily_limit is None else Decimal(str(daily_limit)),
    )


def run_report_command(
    settings: Settings,
    *,
    day: str | None,
    out: TextIO,
    err: TextIO | None = None,
    clock: Clock = utc_now,
) -> int:
    """Print the markdown daily report of ``day`` (default: yesterday); the exit code."""
    err = err or sys.stderr
    timezone = settings.budget.timezone
    try:
        zone = zone_for(timezone)
    except ValueError as exc:
        print(BAD_TIMEZONE.format(problem=exc), file=err)
        return EXIT_USAGE
    today = aware_now(clock).astimezone(zone).date()
    try:
        chosen = parse_day(day or "yesterday", today)
    except ValueError:
        print(BAD_DAY.format(value=day), file=err)
        return EXIT_USAGE
    url = settings.resolved_database_url
    if _database_missing(url):
        out.write(render_markdown(build_daily_report(DayFacts(chosen, zone.key, [], [], []))))
        return EXIT_OK
    engine = create_engine_for(url)
    try:
        facts = read_day_facts(engine, chosen, timezone, settings.budget.per_day_usd)
    except sa.exc.SQLAlchemyError as exc:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        print(UNREADABLE.format(url=shown, problem=exc.__class__.__name__), file=err)
        return EXIT_UNREADABLE
    finally:
        engine.dispose()
    out.write(render_markdown(build_daily_report(facts)))
    return EXIT_OK
