"""The alert outbox: one row per alert and channel, committed before anything is sent.

Contract:
- :func:`record` inserts the rows of an alert for each channel and commits; recording the
  same dedupe key again changes nothing (so a workflow step that repeats after a crash, or
  two daemons deciding the same thing, alert once).
- :func:`claim` hands a pending row to one sender for ``lease_seconds`` (a compare-and-set
  on the row), so daemons sharing a database do not both send it; a sender that died
  mid-send leaves the lease to run out, and the row is claimed again.
- :func:`mark_sent` / :func:`mark_failed` close a row; ``pending`` rows are exactly those
  neither sent nor given up. The row holds the rendered message, never a credential.
- The table is declared in :mod:`edge_worker.storage.alert_outbox` (storage imports
  nothing of ``alerts``); ``alert_outbox`` is re-exported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from edge_worker.alerts.events import AlertMessage
from edge_worker.storage.alert_outbox import alert_outbox as alert_outbox


@dataclass(frozen=True)
class PendingAlert:
    id: int
    channel: str
    message: AlertMessage
    attempts: int


def _now() -> datetime:
    return datetime.now(UTC)


def _encode(message: AlertMessage) -> str:
    return json.dumps(
        {
            "kind": message.kind,
            "title": message.title,
            "text": message.text,
            "link": message.link,
            "key": message.key,
        }
    )


def _decode(text: str) -> AlertMessage:
    data = json.loads(text)
    return AlertMessage(data["kind"], data["title"], data["text"], data["link"], data["key"])


def record(engine: sa.Engine, message: AlertMessage, channels: list[str]) -> int:
    """Commit one row per channel for ``message``; return how many rows were new."""
    added = 0
    now = _now()
    with engine.begin() as conn:
        existing = set(
            conn.scalars(
                sa.select(alert_outbox.c.channel).where(alert_outbox.c.dedupe_key == message.key)
            )
        )
        for channel in channels:
            if channel in existing:
                continue
            try:
                with conn.begin_nested():
                    conn.execute(
                        alert_outbox.insert().values(
                            dedupe_key=message.key,
                            channel=channel,
                            message=_encode(message),
                            created_at=now,
                            attempts=0,
                        )
                    )
                added += 1
            except sa.exc.IntegrityError:  # another daemon recorded it in between
                continue
    return added


def pending(engine: sa.Engine) -> list[PendingAlert]:
    """Rows neither sent nor given up, oldest first."""
    query = (
        sa.select(alert_outbox)
        .where(alert_outbox.c.sent_at.is_(None), alert_outbox.c.failed_reason.is_(None))
        .order_by(alert_outbox.c.id)
    )
    with engine.connect() as conn:
        return [
            PendingAlert(row.id, row.channel, _decode(row.message), row.attempts)
            for row in conn.execute(query)
        ]


def claim(engine: sa.Engine, row_id: int, lease_seconds: float) -> bool:
    """Take ``row_id`` for ``lease_seconds`` unless sent, given up or leased by another."""
    now = _now()
    with engine.begin() as conn:
        result = conn.execute(
            alert_outbox.update()
            .where(
                alert_outbox.c.id == row_id,
                alert_outbox.c.sent_at.is_(None),
                alert_outbox.c.failed_reason.is_(None),
                sa.or_(alert_outbox.c.lease_until.is_(None), alert_outbox.c.lease_until < now),
            )
            .values(lease_until=now + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1


def mark_sent(engine: sa.Engine, row_id: int, attempts: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            alert_outbox.update()
            .where(alert_outbox.c.id == row_id)
            .values(sent_at=_now(), attempts=attempts, lease_until=None)
        )


def mark_failed(engine: sa.Engine, row_id: int, attempts: int, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            alert_outbox.update()
            .where(alert_outbox.c.id == row_id)
            .values(failed_reason=reason[:300], attempts=attempts, lease_until=None)
        )


def release(engine: sa.Engine, row_id: int, attempts: int) -> None:
    """Give the row back (left pending) after a round of retries that did not succeed."""
    with engine.begin() as conn:
        conn.execute(
            alert_outbox.update()
            .where(alert_outbox.c.id == row_id)
            .values(attempts=attempts, lease_until=None)
        )
