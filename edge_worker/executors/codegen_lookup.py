"""Find a run that was already created for a sub-task attempt, so a retry never pays twice.

Codegen's list endpoint cannot filter by metadata, so :class:`RecentRuns` pages through the
organisation's runs (newest first) back to ``lookback_seconds`` ago.

Contract:
- ``await recent.find(metadata)`` returns the newest run whose identifying metadata matches,
  or None, from a listing that *started after* the call: a run created before the call is
  always seen (new runs only push older ones down the pages, so none is skipped).
- Concurrent callers share listings: callers that arrive while a listing runs all wait for
  the next one, so 500 concurrent starts cost a couple of listings, not 500.
- At most ``max_pages`` pages per listing; hitting the cap is logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import structlog

from edge_worker.executors.codegen_api import MAX_PAGE_SIZE, AgentRun, CodegenClient
from edge_worker.executors.codegen_runs import METADATA_KEYS, metadata_matches

log = structlog.get_logger(__name__)


def _created_epoch(run: AgentRun) -> float | None:
    if not run.created_at:
        return None
    try:
        when = dt.datetime.fromisoformat(run.created_at)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


class RecentRuns:
    """Coalesced listings of an organisation's recent runs, for idempotent creation."""

    def __init__(
        self,
        client: CodegenClient,
        *,
        lookback_seconds: float,
        max_pages: int = 50,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._lookback = lookback_seconds
        self._max_pages = max_pages
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()
        self._started = 0
        self._completed = 0
        self._runs: list[AgentRun] = []

    async def find(self, metadata: dict[str, Any]) -> AgentRun | None:
        """The newest run carrying ``metadata``'s identifying keys, or None."""
        runs = await self._fresh_listing()
        return next((run for run in runs if metadata_matches(run.metadata, metadata)), None)

    async def _fresh_listing(self) -> list[AgentRun]:
        requested_after = self._started
        async with self._lock:
            if self._completed > requested_after:
                return self._runs  # a listing that began after our call has finished
            self._started += 1
            number = self._started
            self._runs = await self._list_recent()
            self._completed = number
            return self._runs

    async def _list_recent(self) -> list[AgentRun]:
        horizon = self._wall_clock() - self._lookback
        runs: list[AgentRun] = []
        skip = 0
        for _ in range(self._max_pages):
            page = await self._client.list_runs(skip=skip, limit=MAX_PAGE_SIZE)
            runs.extend(run for run in page.items if _has_our_metadata(run))
            skip += len(page.items)
            if not page.items or skip >= page.total:
                return runs
            oldest = _created_epoch(page.items[-1])
            if oldest is not None and oldest < horizon:
                return runs
        log.warning("codegen.lookup_truncated", pages=self._max_pages, runs_seen=skip)
        return runs


def _has_our_metadata(run: AgentRun) -> bool:
    return bool(run.metadata) and all(key in (run.metadata or {}) for key in METADATA_KEYS)
