"""The console's audit log: every control anyone tried, who, when, and what came of it.

Contract: ``ew_console_audit`` is created by :func:`ensure_table` on first use (the
console owns it). :func:`claim` writes an accepted action with its one-time ``nonce``
before the action is carried out; a second action with the same nonce (a replayed form)
violates the unique index and :func:`claim` returns ``False``. Refused attempts are
written with no nonce. Nothing is ever deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

AUDIT_METADATA = sa.MetaData()

AUDIT = sa.Table(
    "ew_console_audit",
    AUDIT_METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("nonce", sa.String(64), nullable=True, unique=True),
)


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    reason: str | None


def ensure_table(engine: sa.Engine) -> None:
    """Create the audit table when it does not exist."""
    AUDIT_METADATA.create_all(engine)


def refused(engine: sa.Engine, *, actor: str, action: str, target: str, reason: str) -> None:
    """Record an attempt that was refused."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(AUDIT).values(
                at=datetime.now(UTC),
                actor=actor[:200],
                action=action,
                target=target[:200],
                outcome="refused",
                reason=reason[:500],
            )
        )


def claim(engine: sa.Engine, *, actor: str, action: str, target: str, nonce: str) -> int | None:
    """Record an accepted action; its row id, or ``None`` when ``nonce`` was used before."""
    try:
        with engine.begin() as conn:
            result = conn.execute(
                sa.insert(AUDIT)
                .values(
                    at=datetime.now(UTC),
                    actor=actor[:200],
                    action=action,
                    target=target[:200],
                    outcome="accepted",
                    nonce=nonce[:64],
                )
                .returning(AUDIT.c.id)
            )
            return int(result.scalar_one())
    except sa.exc.IntegrityError:
        return None


def settle(engine: sa.Engine, entry_id: int, outcome: str, reason: str | None = None) -> None:
    """Record how an accepted action ended (``done`` or ``failed``)."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(AUDIT)
            .where(AUDIT.c.id == entry_id)
            .values(outcome=outcome, reason=None if reason is None else reason[:500])
        )


def recent(engine: sa.Engine, *, target: str | None = None, limit: int = 20) -> list[AuditEntry]:
    """The latest entries, newest first (of one ``target`` when given)."""
    query = sa.select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AUDIT.c.target == target)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        AuditEntry(
            at=row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
            actor=row.actor,
            action=row.action,
            target=row.target,
            outcome=row.outcome,
            reason=row.reason,
        )
        for row in rows
    ]
