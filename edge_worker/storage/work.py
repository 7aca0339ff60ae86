"""The ``ew_work_items`` table: one row per Linear issue the daemon works on.

It answers "is this issue being worked on, and by which workflow?" for single flight and
for routing follow-ups, and it is what ``edge-worker status`` lists. Workflows update it
from DBOS steps; a claim is an atomic insert-or-check so two deliveries (or two daemons)
cannot start the same issue twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edge_worker.storage.db import METADATA

ACTIVE_STATES = ("starting", "planning", "working", "waiting")
TERMINAL_STATES = ("done", "failed", "stopped", "over_budget", "timed_out", "recorded")

work_items = sa.Table(
    "ew_work_items",
    METADATA,
    sa.Column("issue_id", sa.String(100), primary_key=True),
    sa.Column("issue_identifier", sa.String(100), nullable=True),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("workflow_id", sa.String(300), nullable=False),
    sa.Column("session_id", sa.String(100), nullable=True),
    sa.Column("subtasks_total", sa.Integer, nullable=False, default=0),
    sa.Column("subtasks_done", sa.Integer, nullable=False, default=0),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
)


def active_workflow(conn: sa.Connection, issue_id: str) -> str | None:
    """The workflow working on ``issue_id`` now, or ``None``."""
    row = conn.execute(
        sa.select(work_items.c.workflow_id)
        .where(work_items.c.issue_id == issue_id)
        .where(work_items.c.state.in_(ACTIVE_STATES))
    ).first()
    return row[0] if row else None


def session_of(
    conn: sa.Connection, issue_id: str
) -> tuple[str, str | None, bool, datetime | None] | None:
    """The issue's last work: ``(workflow id, session id, still active, finished at)``,
    or ``None``."""
    row = conn.execute(
        sa.select(
            work_items.c.workflow_id,
            work_items.c.session_id,
            work_items.c.state,
            work_items.c.finished_at,
        ).where(work_items.c.issue_id == issue_id)
    ).first()
    if row is None:
        return None
    finished = row[3]
    if finished is not None and finished.tzinfo is None:  # SQLite drops the zone
        finished = finished.replace(tzinfo=UTC)
    return str(row[0]), row[1], row[2] in ACTIVE_STATES, finished


def attach_session(conn: sa.Connection, issue_id: str, session_id: str) -> str | None:
    """Make ``session_id`` the session of the issue's active work if it has none yet.

    Returns the session the active work carries after the call (``session_id`` when it
    was attached or was attached before), or ``None`` when nothing is active. Atomic: of
    two sessions racing for one piece of work, one wins and the other learns which.
    """
    conn.execute(
        sa.update(work_items)
        .where(work_items.c.issue_id == issue_id)
        .where(work_items.c.state.in_(ACTIVE_STATES))
        .where(work_items.c.session_id.is_(None))
        .values(session_id=session_id, updated_at=datetime.now(UTC))
    )
    row = conn.execute(
        sa.select(work_items.c.session_id)
        .where(work_items.c.issue_id == issue_id)
        .where(work_items.c.state.in_(ACTIVE_STATES))
    ).first()
    return None if row is None else row[0]


def claim(
    conn: sa.Connection,
    *,
    issue_id: str,
    identifier: str | None,
    workflow_id: str,
    session_id: str | None,
) -> str:
    """Make ``workflow_id`` the issue's active workflow unless another one is active.

    Returns the workflow id that owns the issue after the call (ours, or the one already
    active). Safe to repeat: claiming again with the same id returns it.
    """
    now = datetime.now(UTC)
    existing = conn.execute(
        sa.select(work_items.c.workflow_id, work_items.c.state)
        .where(work_items.c.issue_id == issue_id)
        .with_for_update()
    ).first()
    if existing is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    sa.insert(work_items).values(
                        issue_id=issue_id,
                        issue_identifier=identifier,
                        state="starting",
                        workflow_id=workflow_id,
                        session_id=session_id,
                        subtasks_total=0,
                        subtasks_done=0,
                        started_at=now,
                        updated_at=now,
                    )
                )
            return workflow_id
        except sa.exc.IntegrityError:
            return claim(
                conn,
                issue_id=issue_id,
                identifier=identifier,
                workflow_id=workflow_id,
                session_id=session_id,
            )
    owner, state = existing
    if owner == workflow_id or state in ACTIVE_STATES:
        return str(owner)
    conn.execute(
        sa.update(work_items)
        .where(work_items.c.issue_id == issue_id)
        .values(
            state="starting",
            workflow_id=workflow_id,
            session_id=session_id,
            issue_identifier=identifier,
            subtasks_total=0,
            subtasks_done=0,
            detail=None,
            started_at=now,
            updated_at=now,
            finished_at=None,
        )
    )
    return workflow_id


def set_state(
    conn: sa.Connection, issue_id: str, workflow_id: str, state: str, **extra: Any
) -> None:
    """Move the issue's row to ``state`` if ``workflow_id`` still owns it."""
    values: dict[str, Any] = {"state": state, "updated_at": datetime.now(UTC), **extra}
    if state in TERMINAL_STATES:
        values["finished_at"] = datetime.now(UTC)
    conn.execute(
        sa.update(work_items)
        .where(work_items.c.issue_id == issue_id)
        .where(work_items.c.workflow_id == workflow_id)
        .values(**values)
    )


def list_items(conn: sa.Connection, limit: int = 50) -> list[sa.Row[Any]]:
    """Active items first, then the most recently finished."""
    return list(
        conn.execute(sa.select(work_items).order_by(work_items.c.updated_at.desc()).limit(limit))
    )


subtasks = sa.Table(
    "ew_subtasks",
    METADATA,
    sa.Column("issue_id", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("workflow_id", sa.String(300), nullable=False),
    sa.Column("state", sa.String(30), nullable=False),
    sa.Column("executor", sa.String(50), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def track_subtask(
    conn: sa.Connection,
    issue_id: str,
    key: str,
    workflow_id: str,
    state: str,
    executor: str | None,
) -> None:
    """Insert or update one sub-task's row."""
    now = datetime.now(UTC)
    updated = conn.execute(
        sa.update(subtasks)
        .where(subtasks.c.issue_id == issue_id)
        .where(subtasks.c.key == key)
        .values(workflow_id=workflow_id, state=state, executor=executor, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            sa.insert(subtasks).values(
                issue_id=issue_id,
                key=key,
                workflow_id=workflow_id,
                state=state,
                executor=executor,
                updated_at=now,
            )
        )


def running_subtasks(conn: sa.Connection, issue_id: str | None = None) -> int:
    """How many sub-task runs are in flight (all issues, or one)."""
    query = sa.select(sa.func.count()).select_from(subtasks).where(subtasks.c.state == "running")
    if issue_id is not None:
        query = query.where(subtasks.c.issue_id == issue_id)
    return int(conn.execute(query).scalar_one())


def session_still_working(conn: sa.Connection, session_id: str) -> bool:
    """False when the work a session carries has ended (it is in a terminal state); True
    while it runs, and for a session no work carries yet."""
    row = conn.execute(
        sa.select(work_items.c.state)
        .where(work_items.c.session_id == session_id)
        .order_by(work_items.c.updated_at.desc())
    ).first()
    return row is None or row[0] in ACTIVE_STATES


def subtask_state(conn: sa.Connection, issue_id: str, key: str, workflow_id: str) -> str | None:
    """The state the orchestration last gave sub-task ``key``'s run ``workflow_id``;
    ``"superseded"`` when the sub-task's row belongs to another run now, ``None`` when
    there is no row."""
    row = conn.execute(
        sa.select(subtasks.c.state, subtasks.c.workflow_id)
        .where(subtasks.c.issue_id == issue_id)
        .where(subtasks.c.key == key)
    ).first()
    if row is None:
        return None
    return str(row[0]) if row[1] == workflow_id else "superseded"
