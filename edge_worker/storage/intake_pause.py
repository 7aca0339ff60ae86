"""Whether new work may start: the ``ew_intake_pause`` table.

An operator pauses intake (from the console) to let work in flight finish, or to hold new
work during an incident, without losing a delivery. While paused, webhooks are still
verified, stored and answered; the dispatcher holds every trigger that would *start* work
(stamping it :data:`HELD_WORKFLOW_ID` instead of a workflow) and passes the rest
(follow-ups, stops, lifecycle events) as usual, so running work can still be steered.

Contract:
- :func:`pause` records who paused and when (idempotent: the first record is kept).
- :func:`paused` is the current :class:`Pause`, or ``None`` while intake runs; cheap
  enough for every dispatcher pass (one primary-key read).
- :func:`resume` clears the pause and puts the held triggers back in the outbox, returning
  how many; their workflow ids derive from their dedupe keys, so a start that another
  trigger of the same delegation already carried is not carried twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from edge_worker.storage.db import METADATA
from edge_worker.storage.events import requeue

HELD_WORKFLOW_ID = "held:intake-paused"
_INTAKE = "intake"

intake_pause = sa.Table(
    "ew_intake_pause",
    METADATA,
    sa.Column("scope", sa.String(50), primary_key=True),
    sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("paused_by", sa.String(200), nullable=False),
)


@dataclass(frozen=True)
class Pause:
    """Intake's pause as recorded."""

    paused_at: datetime
    paused_by: str

    def describe(self) -> str:
        """One line for the console and the log."""
        at = self.paused_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"Intake of new work paused by {self.paused_by} at {at}: deliveries are kept."


def pause(conn: sa.Connection, *, by: str) -> bool:
    """Pause intake; returns False when it already was (the first record is kept)."""
    if paused(conn) is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                sa.insert(intake_pause).values(
                    scope=_INTAKE, paused_at=datetime.now(UTC), paused_by=by[:200]
                )
            )
    except sa.exc.IntegrityError:
        return False  # another daemon or operator paused it first
    return True


def paused(conn: sa.Connection) -> Pause | None:
    """The recorded pause, or ``None`` while intake runs."""
    row = conn.execute(sa.select(intake_pause).where(intake_pause.c.scope == _INTAKE)).first()
    if row is None:
        return None
    at = row.paused_at
    if isinstance(at, datetime) and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Pause(at, row.paused_by)


def resume(conn: sa.Connection) -> int:
    """Clear the pause and requeue the held triggers; returns how many were requeued."""
    conn.execute(sa.delete(intake_pause).where(intake_pause.c.scope == _INTAKE))
    return requeue(conn, HELD_WORKFLOW_ID)
