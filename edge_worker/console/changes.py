"""The change feed behind the console's live updates (server-sent events).

Contract: :class:`ChangeFeed` polls a cheap change token (``queries.change_token``: maxima
and counts of the daemon's tables, so it sees writes by any daemon sharing the database)
every ``interval`` seconds while at least one page listens, and wakes every listener when
it changes. :meth:`ChangeFeed.listen` yields the current token at once when it differs
from the ``last`` one the page saw (a reconnecting page sends it as ``Last-Event-ID``), so
a page that reconnects never misses that something changed; pages then fetch their
current content, so no individual event needs replaying.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable

import structlog

from edge_worker.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


def short(token: str) -> str:
    """A short, header-safe id for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class ChangeFeed:
    """One poller, many listeners (see the module contract)."""

    def __init__(self, read_token: Callable[[], str], interval: float = 0.25) -> None:
        self._read = read_token
        self._interval = interval
        self._current: str | None = None
        self._changed = asyncio.Event()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        """How many pages listen now."""
        return self._listeners

    async def current(self) -> str:
        """The current token's short id (read now when no poller keeps it fresh)."""
        if self._task is None or self._current is None:
            self._current = short(await asyncio.to_thread(self._read))
        return self._current

    async def _poll(self) -> None:
        while self._listeners:
            try:
                token = short(await asyncio.to_thread(self._read))
            except Exception as exc:  # a database hiccup: try again next round
                log.warning("console change feed could not read", error=type(exc).__name__)
            else:
                if token != self._current:
                    self._current = token
                    changed, self._changed = self._changed, asyncio.Event()
                    changed.set()
            await asyncio.sleep(self._interval)
        self._task = None

    async def listen(self, last: str | None) -> AsyncIterator[str]:
        """Tokens as they change, starting with the current one unless it is ``last``."""
        current = await self.current()
        self._listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        try:
            if current != last:
                last = current
                yield current
            while True:
                waiter = self._changed
                if self._current is not None and self._current != last:
                    last = self._current
                    yield last
                    continue
                await waiter.wait()
        finally:
            self._listeners -= 1

    async def close(self) -> None:
        """Stop polling (listeners end with their connections)."""
        self._listeners = 0
        if self._task is not None:
            await cancel_and_wait(self._task)
