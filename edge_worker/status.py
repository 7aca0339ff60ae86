"""``edge-worker status``: the issues in progress and recently finished.

Reads the daemon's database directly (no daemon needed): one row per issue with its
identifier, state, sub-issues done/total, spend so far and age; as a table, or JSON for
scripts. A missing database reads as "nothing yet", not an error. When Linear revoked the
app, that is said first (on stderr with ``--json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import sqlalchemy as sa

from edge_worker.costs.ledger import Ledger
from edge_worker.settings import Settings
from edge_worker.storage.access import Revocation, revocation
from edge_worker.storage.db import create_engine_for, create_tables
from edge_worker.storage.work import ACTIVE_STATES, list_items, subtasks


@dataclass(frozen=True)
class StatusRow:
    """One issue as ``status`` shows it."""

    identifier: str
    state: str
    done: int
    total: int
    spend: str
    spend_usd: float
    unpriced: int
    age_seconds: float
    workflow_id: str

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _age(text: str | datetime, now: datetime) -> float:
    moment = text if isinstance(text, datetime) else datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def format_age(seconds: float) -> str:
    """``"45s"``, ``"12m"``, ``"3h"``, ``"2d"``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def collect(settings: Settings, *, limit: int = 50, now: datetime | None = None) -> list[StatusRow]:
    """The rows ``status`` prints: active issues first, then the most recently updated."""
    now = now or datetime.now(UTC)
    engine = create_engine_for(settings.resolved_database_url)
    try:
        create_tables(engine)
        ledger = Ledger(engine, settings.budget.timezone)
        with engine.connect() as conn:
            items = list_items(conn, limit)
            done_counts: dict[str, int] = dict(
                conn.execute(
                    sa.select(subtasks.c.issue_id, sa.func.count())
                    .where(subtasks.c.state == "passed")
                    .group_by(subtasks.c.issue_id)
                ).all()
            )
        rows = []
        for item in items:
            total = ledger.issue_total(item.issue_id)
            rows.append(
                StatusRow(
                    identifier=item.issue_identifier or item.issue_id,
                    state=item.state,
                    done=int(done_counts.get(item.issue_id, 0)),
                    total=int(item.subtasks_total or 0),
                    spend=total.format(),
                    spend_usd=float(total.usd),
                    unpriced=total.unpriced,
                    age_seconds=_age(item.started_at, now),
                    workflow_id=item.workflow_id,
                )
            )
    finally:
        engine.dispose()
    rows.sort(key=lambda r: (r.state not in ACTIVE_STATES,))
    return rows


def render_table(rows: list[StatusRow]) -> str:
    """A fixed-width table of ``rows``."""
    if not rows:
        return "No issues yet."
    header = ("ISSUE", "STATE", "SUB-ISSUES", "SPEND", "AGE")
    body = [
        (r.identifier, r.state, f"{r.done}/{r.total}", r.spend, format_age(r.age_seconds))
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    )


def app_revocation(settings: Settings) -> Revocation | None:
    """Whether Linear revoked the app (new work refused until ``edge-worker reinstate``)."""
    engine = create_engine_for(settings.resolved_database_url)
    try:
        create_tables(engine)
        with engine.connect() as conn:
            return revocation(conn)
    finally:
        engine.dispose()


def run_status_command(
    settings: Settings, *, as_json: bool, out: TextIO, err: TextIO | None = None
) -> int:
    """Print the status table (or JSON); returns the exit code.

    A revoked app is said first in the table; with ``--json`` (whose output stays the
    list of rows) it is said on ``err``.
    """
    rows = collect(settings)
    revoked = app_revocation(settings)
    if as_json:
        json.dump([r.to_json() for r in rows], out, indent=2)
        out.write("\n")
        if revoked is not None and err is not None:
            err.write(revoked.describe() + "\n")
    else:
        if revoked is not None:
            out.write(revoked.describe() + "\n\n")
        out.write(render_table(rows) + "\n")
    return 0
