"""The ``ew_issue_stops`` table: the latest stop asked for on each issue.

Triggers run concurrently, so a session's stop can be handled before the start it stops
has claimed the issue (after a restart, say). Single flight alone would then answer "nothing
to stop" and let the start go on. The stop is therefore recorded *before* the stop handler
looks for active work, and a start looks for a stop *after* its claim: whichever of the two
comes second sees the other.

Contract:
- :func:`record` keeps the stop with the highest outbox ``seq`` per issue (idempotent).
- :func:`stop_after` is the recorded stop that was received after the trigger with outbox
  ``seq`` (so it stops that trigger's work), or ``None``. A trigger without a ``seq``
  (enqueued by an older version) is never stopped this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from edge_worker.storage.db import METADATA

issue_stops = sa.Table(
    "ew_issue_stops",
    METADATA,
    sa.Column("issue_id", sa.String(100), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("dedupe_key", sa.String(500), nullable=False),
    sa.Column("session_id", sa.String(100), nullable=True),
    sa.Column("actor_name", sa.String(200), nullable=True),
    sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Stop:
    """A stop as recorded: which delivery asked for it, in which session, by whom."""

    seq: int
    dedupe_key: str
    session_id: str | None
    actor_name: str | None


def record(
    conn: sa.Connection,
    *,
    issue_id: str,
    seq: int,
    dedupe_key: str,
    session_id: str | None,
    actor_name: str | None,
) -> None:
    """Remember a stop on ``issue_id`` unless a later one (higher ``seq``) is recorded."""
    values = {
        "seq": seq,
        "dedupe_key": dedupe_key,
        "session_id": session_id,
        "actor_name": actor_name,
        "stopped_at": datetime.now(UTC),
    }
    updated = conn.execute(
        sa.update(issue_stops)
        .where(issue_stops.c.issue_id == issue_id)
        .where(issue_stops.c.seq < seq)
        .values(**values)
    )
    if updated.rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(issue_stops).values(issue_id=issue_id, **values))
    except sa.exc.IntegrityError:
        pass  # recorded already, by this stop or a later one


def stop_after(conn: sa.Connection, issue_id: str, seq: int | None) -> Stop | None:
    """The stop on ``issue_id`` received after outbox row ``seq``, if any."""
    if seq is None:
        return None
    row = conn.execute(
        sa.select(
            issue_stops.c.seq,
            issue_stops.c.dedupe_key,
            issue_stops.c.session_id,
            issue_stops.c.actor_name,
        )
        .where(issue_stops.c.issue_id == issue_id)
        .where(issue_stops.c.seq > seq)
    ).first()
    return None if row is None else Stop(int(row[0]), str(row[1]), row[2], row[3])
