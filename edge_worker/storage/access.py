"""Whether the daemon may work in Linear at all: the ``ew_app_access`` table.

When Linear revokes the app (``OAuthApp`` revoked webhook) every daemon on the database
stops its work and refuses new work until an operator says the app is installed again.

Contract:
- :func:`mark_revoked` records the revocation (idempotent; the first time is kept).
- :func:`is_revoked` says whether it is recorded; :func:`revocation` is the current
  :class:`Revocation` (with how many stored triggers were refused, unless asked not to
  count them), or ``None`` while the app may work.
- A trigger refused while revoked stays in ``ew_webhook_events``, stamped with
  :data:`REFUSED_WORKFLOW_ID` instead of a workflow: nothing is lost.
  :func:`reinstate` clears the revocation and puts those triggers back in the outbox, so
  the dispatcher turns them into work (their workflow ids derive from their dedupe keys,
  so one that already ran is not run again).
- :func:`active_work` lists the issues being worked on with their workflow, and
  :func:`issue_teams` the team each issue belongs to as its stored webhooks said.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edge_worker.storage.db import METADATA
from edge_worker.storage.events import requeue, webhook_events
from edge_worker.storage.work import ACTIVE_STATES, work_items

REFUSED_WORKFLOW_ID = "refused:app-revoked"
_LINEAR = "linear"

app_access = sa.Table(
    "ew_app_access",
    METADATA,
    sa.Column("app", sa.String(50), primary_key=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("oauth_client_id", sa.String(200), nullable=True),
)


REVOKED_TEXT = (
    "Linear revoked the app at {at}: all work was stopped and new work is refused "
    "({kept}). Reinstall the app in Linear, then run `edge-worker reinstate`."
)


@dataclass(frozen=True)
class Revocation:
    """The app's revocation as recorded, and the triggers refused since."""

    revoked_at: datetime
    reason: str
    oauth_client_id: str | None
    refused_triggers: int | None
    """``None`` when not counted (the count reads the whole event table)."""

    def describe(self) -> str:
        """One line for ``/readyz``, ``edge-worker status`` and the log."""
        at = self.revoked_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        kept = (
            "stored triggers are kept"
            if self.refused_triggers is None
            else f"{self.refused_triggers} stored trigger(s) kept"
        )
        return REVOKED_TEXT.format(at=at, kept=kept)


def mark_revoked(conn: sa.Connection, *, reason: str, oauth_client_id: str | None) -> None:
    """Record that Linear revoked the app (a second call keeps the first record)."""
    if conn.execute(sa.select(app_access.c.app).where(app_access.c.app == _LINEAR)).first():
        return
    try:
        with conn.begin_nested():
            conn.execute(
                sa.insert(app_access).values(
                    app=_LINEAR,
                    revoked_at=datetime.now(UTC),
                    reason=reason[:500],
                    oauth_client_id=oauth_client_id,
                )
            )
    except sa.exc.IntegrityError:
        pass  # another daemon recorded it first


def is_revoked(conn: sa.Connection) -> bool:
    """True while the app's revocation is recorded (one primary-key read)."""
    found = conn.execute(sa.select(app_access.c.app).where(app_access.c.app == _LINEAR))
    return found.first() is not None


def revocation(conn: sa.Connection, *, count_refused: bool = True) -> Revocation | None:
    """The recorded revocation, or ``None`` while the app may work; ``count_refused``
    counts the triggers refused since (a scan of the event table: not for probes)."""
    row = conn.execute(sa.select(app_access).where(app_access.c.app == _LINEAR)).first()
    if row is None:
        return None
    refused = (
        conn.execute(
            sa.select(sa.func.count())
            .select_from(webhook_events)
            .where(webhook_events.c.workflow_id == REFUSED_WORKFLOW_ID)
        ).scalar_one()
        if count_refused
        else None
    )
    revoked_at = row.revoked_at
    if isinstance(revoked_at, datetime) and revoked_at.tzinfo is None:
        revoked_at = revoked_at.replace(tzinfo=UTC)
    return Revocation(
        revoked_at, row.reason, row.oauth_client_id, None if refused is None else int(refused)
    )


def reinstate(conn: sa.Connection) -> int:
    """Clear the revocation and requeue the refused triggers; returns how many."""
    conn.execute(sa.delete(app_access).where(app_access.c.app == _LINEAR))
    return requeue(conn, REFUSED_WORKFLOW_ID)


def active_work(conn: sa.Connection) -> list[tuple[str, str]]:
    """``(issue_id, workflow_id)`` of every issue being worked on."""
    rows = conn.execute(
        sa.select(work_items.c.issue_id, work_items.c.workflow_id).where(
            work_items.c.state.in_(ACTIVE_STATES)
        )
    )
    return [(str(issue), str(workflow)) for issue, workflow in rows]


def issue_teams(conn: sa.Connection, issue_ids: Iterable[str]) -> dict[str, str]:
    """The team of each of ``issue_ids``, from the ``team_id`` its stored webhooks carry."""
    wanted = list(issue_ids)
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(webhook_events.c.issue_id, webhook_events.c.detail)
        .where(webhook_events.c.issue_id.in_(wanted))
        .where(webhook_events.c.detail.is_not(None))
        .order_by(webhook_events.c.seq)
    )
    teams: dict[str, str] = {}
    for issue_id, detail in rows:
        team = _team_in(detail)
        if team:
            teams[str(issue_id)] = team
    return teams


def _team_in(detail: Any) -> str | None:
    try:
        parsed = json.loads(detail) if isinstance(detail, str) else detail
    except ValueError:
        return None
    team = parsed.get("team_id") if isinstance(parsed, dict) else None
    return team if isinstance(team, str) and team else None
