"""A followed run's progress lines, kept in the activity log one transaction per batch.

Contract: :class:`ActivityBatch` ``add`` queues a line (stamped with the time it came) and,
unless a write is in flight, starts one; a write takes every line queued so far and keeps
them in one transaction (:func:`~edge_worker.storage.activity_log.record_many`); lines that
come while it runs go in the next. One write at a time, lines in the order they came, so
the console shows them in that order. ``drain`` returns once every line added before it
was written (or dropped and logged, as ``record_many`` drops what the database refuses).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa

from edge_worker.storage import activity_log
from edge_worker.storage.activity_log import NewLine


class ActivityBatch:
    """Group-commits the activity lines of one run as they come."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._pending: list[NewLine] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, issue_id: str, kind: str, body: str, run_workflow_id: str | None) -> None:
        """Queue one line; it is written with whatever else comes before the next write."""
        self._pending.append(NewLine(issue_id, kind, body, run_workflow_id, datetime.now(UTC)))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def drain(self) -> None:
        """Wait until every line added so far is written (the write survives a cancel)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await asyncio.to_thread(activity_log.record_many, self._engine, batch)
