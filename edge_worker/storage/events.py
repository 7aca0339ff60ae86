"""Durable webhook intake: the ``webhook_events`` table and its group-committing writer.

Contract:
- ``IntakeWriter.submit(record)`` returns only after the record is committed (``accepted``
  / ``ignored``) or found to repeat an earlier one (``duplicate``: same ``Linear-Delivery``,
  or same semantic ``dedupe_key``); it raises :class:`StoreUnavailable` when the database
  cannot commit, so the caller answers 503 and Linear retries.
- Concurrent submissions are committed together in one transaction (group commit): one
  fsync serves a burst of deliveries, which is what lets durable intake keep up with the
  HTTP layer. A failed batch is retried row by row so one bad row cannot refuse the others.
- Rows with ``dispatched_at IS NULL`` and an acting decision are the outbox: the dispatcher
  turns each into a durable workflow and stamps it; on restart, whatever was committed but
  not dispatched is picked up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
import structlog

from edge_worker.storage.db import METADATA

log = structlog.get_logger(__name__)

Outcome = Literal["accepted", "duplicate", "ignored"]

webhook_events = sa.Table(
    "ew_webhook_events",
    METADATA,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(200), nullable=False, unique=True),
    sa.Column("dedupe_key", sa.String(500), nullable=True, unique=True),
    sa.Column("event_type", sa.String(100), nullable=True),
    sa.Column("action", sa.String(100), nullable=True),
    sa.Column("decision", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("issue_id", sa.String(100), nullable=True, index=True),
    sa.Column("issue_identifier", sa.String(100), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("workflow_id", sa.String(300), nullable=True),
)

sa.Index("ew_webhook_events_outbox", webhook_events.c.dispatched_at, webhook_events.c.decision)


# SQLAlchemy errors and the DB-API error bases of the two drivers the writer calls directly.
_STORE_ERRORS = (sa.exc.SQLAlchemyError, sqlite3.Error, psycopg.Error)


class StoreUnavailable(Exception):
    """The database could not commit the event."""


@dataclass(frozen=True)
class EventRecord:
    """One classified delivery, ready to store."""

    delivery_id: str
    decision: str
    reason: str
    dedupe_key: str | None = None
    event_type: str | None = None
    action: str | None = None
    issue_id: str | None = None
    issue_identifier: str | None = None
    detail: dict[str, Any] | None = None

    def row(self, received_at: object) -> tuple[Any, ...]:
        """The row's values in :data:`_COLUMNS` order (positional: cheaper to bind)."""
        return (
            self.delivery_id,
            self.dedupe_key,
            self.event_type,
            self.action,
            self.decision,
            self.reason[:500],
            self.issue_id,
            self.issue_identifier,
            json.dumps(self.detail) if self.detail is not None else None,
            received_at,
        )


_COLUMNS = (
    "delivery_id",
    "dedupe_key",
    "event_type",
    "action",
    "decision",
    "reason",
    "issue_id",
    "issue_identifier",
    "detail",
    "received_at",
)


def _insert_sql(dialect: str) -> str:
    """Driver-level INSERT that skips duplicates and tells a new row by RETURNING.

    The writer runs it on the raw DB-API cursor: at thousands of deliveries a second the
    SQL expression layer's per-row overhead, paid under the GIL, was the intake's ceiling.
    """
    names = ", ".join(_COLUMNS)
    values = ", ".join(["%s" if dialect == "postgresql" else "?"] * len(_COLUMNS))
    return (
        f"INSERT INTO {webhook_events.name} ({names}) VALUES ({values}) "
        "ON CONFLICT DO NOTHING RETURNING seq"
    )


_Item = tuple[EventRecord, asyncio.AbstractEventLoop, "asyncio.Future[Outcome]"]
_Result = tuple["asyncio.Future[Outcome]", Outcome | Exception]


class IntakeWriter:
    """A single writer thread that group-commits submitted events."""

    def __init__(self, engine: sa.Engine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._dialect = engine.dialect.name
        self._insert = _insert_sql(self._dialect)
        self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._conn: Any = None  # the writer thread's own DB-API connection
        self._thread.start()

    def on_commit(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Set ``event`` (on ``loop``) after every commit that accepted an acting event."""
        self._listeners.append((loop, event))

    async def submit(self, record: EventRecord) -> Outcome:
        """Store ``record`` durably; see the module contract."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put((record, loop, future))
        return await future

    def close(self) -> None:
        """Finish what was submitted, then stop the writer thread."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit(batch)
                if stop:
                    return
        finally:
            if self._conn is not None:  # back to the pool, for the engine to dispose of
                with contextlib.suppress(*_STORE_ERRORS):
                    self._conn.close()

    def _commit(self, batch: list[_Item]) -> None:
        try:
            outcomes = self._write(batch)
        except _STORE_ERRORS as exc:
            self._drop_connection()
            if len(batch) > 1:
                for item in batch:  # isolate the failing row; the rest still commit
                    self._commit([item])
                return
            log.error("intake store cannot commit", error=type(exc).__name__)
            _record, loop, future = batch[0]
            failure: list[_Result] = [
                (future, StoreUnavailable(f"database error: {type(exc).__name__}"))
            ]
            loop.call_soon_threadsafe(_resolve_all, failure)
            return
        # One wake-up per event loop for the whole batch, not one per delivery: each
        # call_soon_threadsafe is a write to the loop's self-pipe and a read on the other side.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        for (_record, loop, future), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, results in by_loop.items():
            loop.call_soon_threadsafe(_resolve_all, results)
        if "accepted" in outcomes:
            for loop, event in self._listeners:
                loop.call_soon_threadsafe(event.set)

    def _connection(self) -> Any:
        """The writer's own DB-API connection, opened on first use and kept.

        Checking a connection out of the pool and back in (with its reset) for every batch
        cost more than the insert itself; after a database error the connection is dropped
        and the next batch opens a fresh one.
        """
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*_STORE_ERRORS):
                conn.invalidate()

    def _write(self, batch: list[_Item]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        raw = self._connection()
        cursor = raw.cursor()
        try:
            now = datetime.now(UTC)
            # On SQLite, stored the way SQLAlchemy stores a DateTime, so its reads parse it.
            received_at = now.strftime("%Y-%m-%d %H:%M:%S.%f") if self._dialect == "sqlite" else now
            for record, _loop, _future in batch:
                cursor.execute(self._insert, record.row(received_at))
                if cursor.fetchone() is None:
                    outcomes.append("duplicate")
                elif record.decision == "ignore":
                    outcomes.append("ignored")
                else:
                    outcomes.append("accepted")
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()
        return outcomes


def _resolve_all(results: list[_Result]) -> None:
    for future, value in results:
        if future.done():
            continue
        if isinstance(value, Exception):
            future.set_exception(value)
        else:
            future.set_result(value)


def pending_dispatch(conn: sa.Connection, limit: int = 100) -> list[sa.Row[Any]]:
    """Acting events committed but not yet turned into workflows, oldest first."""
    query = (
        sa.select(webhook_events)
        .where(webhook_events.c.dispatched_at.is_(None))
        .where(webhook_events.c.decision != "ignore")
        .order_by(webhook_events.c.seq)
        .limit(limit)
    )
    return list(conn.execute(query))


def mark_dispatched(conn: sa.Connection, seq: int, workflow_id: str) -> None:
    """Stamp an outbox row as turned into workflow ``workflow_id``."""
    conn.execute(
        sa.update(webhook_events)
        .where(webhook_events.c.seq == seq)
        .values(dispatched_at=datetime.now(UTC), workflow_id=workflow_id)
    )


def requeue(conn: sa.Connection, parked_as: str) -> int:
    """Put back in the outbox the rows stamped ``parked_as`` instead of a workflow (held
    while intake was paused, refused while access was revoked): the dispatcher picks them
    up again. Returns how many."""
    requeued = conn.execute(
        sa.update(webhook_events)
        .where(webhook_events.c.workflow_id == parked_as)
        .values(dispatched_at=None, workflow_id=None)
    )
    return int(requeued.rowcount or 0)
