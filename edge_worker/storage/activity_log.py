"""What the daemon said on Linear, and the agents' progress lines: the ``ew_activity_log``.

Nothing else keeps these: a ``say`` step returns nothing (DBOS records step outputs, not
inputs), progress goes to Linear merged and paced, and the agents' transcripts live on the
host that ran them. The console's *Issue* page reads this table, from any daemon sharing
the database, and its change feed watches ``max(seq)`` so a new line shows within a second.

Contract:
- :func:`record` inserts one line; an ``entry_id`` already recorded (a repeated step) is
  left as it was, so a line is kept once. It never raises: a line the database cannot take
  is logged and dropped, because the log must not fail the work it describes. A comment
  edited in place (the report) is recorded with ``replace``: its latest text is kept.
- :func:`record_many` inserts new lines (:class:`NewLine`, each with a fresh entry id) in
  one transaction, in order; like :func:`record` it never raises (a batch the database
  cannot take is logged and dropped).
- :func:`for_issue` is an issue's lines, oldest first, at most ``limit`` of the newest.
- Lines of a sub-task run carry the run's workflow id (``run_workflow_id``); what was said
  to the issue as a whole carries ``None``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog

from edge_worker.storage.db import METADATA

log = structlog.get_logger(__name__)

MAX_BODY_CHARS = 2000

activity_log = sa.Table(
    "ew_activity_log",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.String(200), nullable=False, unique=True),
    sa.Column("issue_id", sa.String(100), nullable=False, index=True),
    sa.Column("run_workflow_id", sa.String(300), nullable=True),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ActivityLine:
    """One line of the log."""

    at: datetime
    kind: str
    """``thought``, ``action``, ``elicitation``, ``response``, ``error`` or ``comment``."""
    body: str
    run_workflow_id: str | None


@dataclass(frozen=True)
class NewLine:
    """A line to keep with a fresh entry id (see :func:`record_many`)."""

    issue_id: str
    kind: str
    body: str
    run_workflow_id: str | None = None
    at: datetime | None = None


def _values(line: NewLine, entry_id: str | None = None) -> dict[str, object]:
    return {
        "entry_id": entry_id or uuid.uuid4().hex,
        "issue_id": line.issue_id,
        "run_workflow_id": line.run_workflow_id,
        "kind": line.kind,
        "body": line.body[:MAX_BODY_CHARS],
        "at": line.at or datetime.now(UTC),
    }


def record(
    engine: sa.Engine,
    *,
    issue_id: str,
    kind: str,
    body: str,
    entry_id: str | None = None,
    run_workflow_id: str | None = None,
    at: datetime | None = None,
    replace: bool = False,
) -> None:
    """Keep one line (see the module contract); ``entry_id`` defaults to a fresh one.

    ``replace`` (a comment edited in place, like the report) replaces an earlier line of
    the same ``entry_id``: the new text, at its new time, becomes the newest line."""
    values = _values(NewLine(issue_id, kind, body, run_workflow_id, at), entry_id)
    try:
        with engine.begin() as conn:
            exists = conn.execute(
                sa.select(activity_log.c.seq).where(activity_log.c.entry_id == values["entry_id"])
            ).first()
            if exists is not None and replace:
                conn.execute(sa.delete(activity_log).where(activity_log.c.seq == exists[0]))
            if exists is None or replace:
                conn.execute(sa.insert(activity_log).values(**values))
    except sa.exc.IntegrityError:
        pass  # recorded meanwhile by a repeat of the same step
    except sa.exc.SQLAlchemyError as exc:
        log.warning("activity line not recorded", kind=kind, error=type(exc).__name__)


def record_many(engine: sa.Engine, lines: Sequence[NewLine]) -> None:
    """Keep ``lines`` in one transaction, in order (see the module contract)."""
    if not lines:
        return
    try:
        with engine.begin() as conn:
            for line in lines:  # one statement a line: the ``seq`` order is the lines' order
                conn.execute(sa.insert(activity_log).values(**_values(line)))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("activity lines not recorded", lines=len(lines), error=type(exc).__name__)


def for_issue(conn: sa.Connection, issue_id: str, limit: int = 500) -> list[ActivityLine]:
    """The issue's newest ``limit`` lines, oldest first."""
    rows = conn.execute(
        sa.select(activity_log)
        .where(activity_log.c.issue_id == issue_id)
        .order_by(activity_log.c.seq.desc())
        .limit(limit)
    ).all()
    return [
        ActivityLine(
            at=row.at.replace(tzinfo=UTC) if row.at.tzinfo is None else row.at,
            kind=str(row.kind),
            body=str(row.body),
            run_workflow_id=row.run_workflow_id,
        )
        for row in reversed(rows)
    ]


def latest_seq(conn: sa.Connection) -> int:
    """The newest line's number (0 for none): what the console's change feed watches."""
    return int(conn.execute(sa.select(sa.func.max(activity_log.c.seq))).scalar() or 0)
