"""``edge-worker costs [--day DATE] [--issue ID] [--json]``: the ledger in a terminal.

Contract: :func:`run_costs_command` reads the ledger at ``settings.resolved_database_url``
without writing anything (a missing SQLite file or table reads as "no entries"), and
prints either a table (one line per issue / sub-task / executor / model, then totals that
name their unpriced parts) or JSON. Without ``--day`` or ``--issue`` it shows today (in
``settings.budget.timezone``); ``--issue`` alone shows every day of that issue. Exit codes:
0 shown, 1 the database could not be read, 2 bad arguments.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from edge_worker.costs.ledger import (
    COST_ENTRIES,
    Clock,
    Ledger,
    LedgerRow,
    aware_now,
    utc_now,
    zone_for,
)
from edge_worker.costs.money import plural
from edge_worker.costs.summary import CostLine, group_rows, issue_totals, rows_total
from edge_worker.settings import Settings
from edge_worker.storage.db import create_engine_for

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2

HEADING = "Costs for {scope} (time zone {timezone})"
NO_ENTRIES = "No cost entries for {scope}."
TOTAL_LINE = "Total: {total} over {entries}"
ISSUE_TOTAL_LINE = "{issue}: {total}"
UNPRICED_HEADING = "Unpriced parts (cost unknown, not zero):"
UNPRICED_LINE = "  {issue} {subtask}: {executor}/{model}, {count}"
BAD_DAY = "error: --day must be a date like 2025-01-31, 'today' or 'yesterday', not {value!r}"
BAD_TIMEZONE = "error: EDGE_WORKER_BUDGET__TIMEZONE: {problem}"
UNREADABLE = "error: cannot read the cost ledger at {url}: {problem}"

VERIFICATION_LABEL = "(verification)"
COLUMNS = ("ISSUE", "SUB-TASK", "EXECUTOR", "MODEL", "ATTEMPTS", "INPUT", "CACHED", "OUTPUT", "USD")
RIGHT_ALIGNED = frozenset({"ATTEMPTS", "INPUT", "CACHED", "OUTPUT", "USD"})


def parse_day(value: str, today: date) -> date:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` as a date; ``ValueError`` otherwise."""
    lowered = value.strip().lower()
    if lowered == "today":
        return today
    if lowered == "yesterday":
        return today - timedelta(days=1)
    return date.fromisoformat(value.strip())


def _database_missing(url: str) -> bool:
    if not url.startswith("sqlite:///"):
        return False
    path = url.removeprefix("sqlite:///")
    return path not in ("", ":memory:") and not Path(path).exists()


def read_rows(
    url: str, timezone: str, clock: Clock, day: date | None, issue: str | None
) -> list[LedgerRow]:
    """The ledger's entries at ``url`` for ``day``/``issue``, creating nothing.

    A SQLite file or a ``cost_entries`` table that does not exist yet reads as no entries.
    """
    if _database_missing(url):
        return []
    engine = create_engine_for(url)
    try:
        if not sa.inspect(engine).has_table(COST_ENTRIES.name):
            return []
        return Ledger(engine, timezone, clock).entries(day=day, issue=issue)
    finally:
        engine.dispose()


def run_costs_command(
    settings: Settings,
    *,
    day: str | None,
    issue: str | None,
    as_json: bool,
    out: TextIO,
    err: TextIO | None = None,
    clock: Clock = utc_now,
) -> int:
    """Print the ledger's entries for ``day`` and/or ``issue``; return the exit code.

    Errors go to ``err`` (default: standard error) so ``--json`` output stays parseable.
    """
    err = err or sys.stderr
    timezone = settings.budget.timezone
    try:
        zone = zone_for(timezone)
    except ValueError as exc:
        print(BAD_TIMEZONE.format(problem=exc), file=err)
        return EXIT_USAGE
    today = aware_now(clock).astimezone(zone).date()
    chosen_day: date | None = today if day is None and issue is None else None
    if day is not None:
        try:
            chosen_day = parse_day(day, today)
        except ValueError:
            print(BAD_DAY.format(value=day), file=err)
            return EXIT_USAGE
    url = settings.resolved_database_url
    try:
        rows = read_rows(url, timezone, clock, chosen_day, issue)
    except sa.exc.SQLAlchemyError as exc:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        print(UNREADABLE.format(url=shown, problem=exc.__class__.__name__), file=err)
        return EXIT_UNREADABLE
    if as_json:
        json.dump(_as_json(rows, chosen_day, issue, zone.key), out, indent=2)
        out.write("\n")
    else:
        out.write(render_table(rows, _scope(chosen_day, issue), zone.key))
    return EXIT_OK


def _scope(day: date | None, issue: str | None) -> str:
    parts = []
    if issue is not None:
        parts.append(f"issue {issue}")
    if day is not None:
        parts.append(day.isoformat())
    return ", ".join(parts)


def _count(value: int) -> str:
    return f"{value:,}"


def _model_label(line: CostLine) -> str:
    """The model, or what the entries were when no model was involved: a verification
    run where the work lives (local commands cost nothing) reads as such, not as ``-``."""
    if line.model:
        return line.model
    return VERIFICATION_LABEL if line.kinds == {"verification"} else "-"


def _cells(line: CostLine) -> tuple[str, ...]:
    return (
        line.issue_identifier,
        line.subtask_label,
        line.executor,
        _model_label(line),
        str(len(line.attempts)),
        _count(line.usage.input_tokens),
        _count(line.usage.cached_input_tokens),
        _count(line.usage.output_tokens),
        line.total.format(),
    )


def render_table(rows: list[LedgerRow], scope: str, timezone: str) -> str:
    """The terminal table for ``rows`` with totals naming unpriced parts."""
    heading = HEADING.format(scope=scope, timezone=timezone)
    if not rows:
        return f"{heading}\n{NO_ENTRIES.format(scope=scope)}\n"
    lines = group_rows(rows)
    table = [COLUMNS, *(_cells(line) for line in lines)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]

    def fmt(row: tuple[str, ...]) -> str:
        cells = (
            cell.rjust(width) if name in RIGHT_ALIGNED else cell.ljust(width)
            for name, cell, width in zip(COLUMNS, row, widths, strict=True)
        )
        return "  ".join(cells).rstrip()

    text = [heading, "", *(fmt(row) for row in table), ""]
    per_issue = issue_totals(rows)
    if len(per_issue) > 1:
        text += [
            ISSUE_TOTAL_LINE.format(issue=item.issue_identifier, total=item.total.format())
            for item in per_issue
        ]
    total = rows_total(rows)
    text.append(
        TOTAL_LINE.format(total=total.format(), entries=plural(len(rows), "entry", "entries"))
    )
    unpriced = [line for line in lines if line.total.unpriced]
    if unpriced:
        text.append(UNPRICED_HEADING)
        text += [
            UNPRICED_LINE.format(
                issue=line.issue_identifier,
                subtask=line.subtask_label,
                executor=line.executor,
                model=line.model or "-",
                count=plural(line.total.unpriced, "run"),
            )
            for line in unpriced
        ]
    return "\n".join(text) + "\n"


def _as_json(
    rows: list[LedgerRow], day: date | None, issue: str | None, timezone: str
) -> dict[str, Any]:
    return {
        "timezone": timezone,
        "day": None if day is None else day.isoformat(),
        "issue": issue,
        "total": rows_total(rows).to_json(),
        "issues": [
            {"issue_id": item.issue_id, "issue_identifier": item.issue_identifier}
            | item.total.to_json()
            for item in issue_totals(rows)
        ],
        "lines": [
            {
                "issue_id": line.issue_id,
                "issue_identifier": line.issue_identifier,
                "subtask_key": line.subtask_key,
                "executor": line.executor,
                "model": line.model,
                "kinds": sorted(line.kinds),
                "attempts": len(line.attempts),
                "entries": line.entries,
                "input_tokens": line.usage.input_tokens,
                "cached_input_tokens": line.usage.cached_input_tokens,
                "cache_write_input_tokens": line.usage.cache_write_input_tokens,
                "output_tokens": line.usage.output_tokens,
                "reasoning_output_tokens": line.usage.reasoning_output_tokens,
            }
            | line.total.to_json()
            for line in group_rows(rows)
        ],
        "entries": [
            {
                "entry_id": row.entry_id,
                "created_at": row.created_at.isoformat(),
                "day": row.day.isoformat(),
                "issue_id": row.issue_id,
                "issue_identifier": row.issue_identifier,
                "subtask_key": row.subtask_key,
                "kind": row.kind,
                "executor": row.executor,
                "model": row.model,
                "attempt": row.attempt,
                "input_tokens": row.usage.input_tokens,
                "cached_input_tokens": row.usage.cached_input_tokens,
                "cache_write_input_tokens": row.usage.cache_write_input_tokens,
                "output_tokens": row.usage.output_tokens,
                "reasoning_output_tokens": row.usage.reasoning_output_tokens,
                "usd": row.usd,
                "uncertain": row.uncertain,
            }
            for row in rows
        ],
    }
