"""Time as an injectable dependency, so waits can be tested without waiting.

Contract: a :class:`Clock` has ``time()`` (seconds since the epoch, as ``time.time``) and
``async sleep(seconds)``. :class:`SystemClock` is the real one. :class:`ManualClock` is
the testing switch: its time only moves when told to, and it records every sleep.

- ``ManualClock(auto_advance=True)``: ``sleep(s)`` moves time forward by ``s`` and returns
  at once. Use it to check *how long* code decided to wait (``clock.sleeps``).
- ``ManualClock()``: ``sleep(s)`` blocks until ``advance()`` moves time past its deadline.
  Use it to check *what happens while* code waits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time and a way to wait."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (non-positive: return promptly)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when the test says so; see the module docstring."""

    def __init__(self, start: float = 1_700_000_000.0, *, auto_advance: bool = False) -> None:
        self._now = start
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        if self.auto_advance:
            self._now += seconds
            await asyncio.sleep(0)
            return
        if seconds == 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    @property
    def waiting(self) -> int:
        """How many sleepers are blocked right now."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper whose deadline passed.

        Sleepers wake in deadline order, with time set to each deadline as it is reached,
        and the event loop gets a turn after each so woken code observes its own moment.
        """
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            for _ in range(3):
                await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)
