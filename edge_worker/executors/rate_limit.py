"""Client-side rate limits for Codegen, shared by every concurrent run of an organisation.

Contract:
- :class:`SlidingWindow` admits at most ``limit`` calls in any ``window`` seconds. A call
  holds its slot while in flight and for ``window`` seconds after it *completes*: the server
  received the request somewhere between our send and its answer, so counting from the
  completion keeps us within the server's window whatever the latency.
- Waiters are served first come, first served; :meth:`SlidingWindow.pause` (a 429's
  ``Retry-After``) holds every caller back until the pause ends.
- :class:`OrgRateLimiter` has one window for run creations (``creates_per_minute`` per 60 s)
  and one for every other call (``calls_per_30_seconds`` per 30 s).
- :func:`shared_rate_limiter` returns the one limiter of an organisation in this process,
  so every executor and run in the process shares it.
- Time is injectable (``clock`` and ``sleep``) so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
CallKind = Literal["create", "call"]

CREATE_WINDOW_SECONDS = 60.0
CALL_WINDOW_SECONDS = 30.0


class SlidingWindow:
    """At most ``limit`` calls in any ``window`` seconds, counted from each call's completion."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a sliding window needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._completed: deque[float] = deque()
        self._in_flight = 0
        self._paused_until = 0.0
        self._queue = asyncio.Lock()
        self._released = asyncio.Event()

    def _wait_time(self) -> float | None:
        """Seconds until a slot frees, 0.0 if one is free now, None if only a completion helps."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        while self._completed and self._completed[0] + self.window <= now:
            self._completed.popleft()
        if len(self._completed) + self._in_flight < self.limit:
            return 0.0
        if not self._completed:
            return None
        return self._completed[0] + self.window - now

    async def acquire(self) -> None:
        """Wait for a slot and take it; pair with :meth:`release` when the call is done."""
        async with self._queue:
            while True:
                wait = self._wait_time()
                if wait == 0.0:
                    self._in_flight += 1
                    return
                if wait is None:
                    self._released.clear()
                    await self._released.wait()
                else:
                    await self._sleep(wait)

    def release(self) -> None:
        """Mark a call done: its slot stays taken for ``window`` seconds from now."""
        self._in_flight -= 1
        self._completed.append(self._clock())
        self._released.set()

    def pause(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` from now (never shortens an existing pause)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
        self._released.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """``async with window.slot():`` around exactly one request."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()


class OrgRateLimiter:
    """Codegen's two limits for one organisation."""

    def __init__(
        self,
        creates_per_minute: int,
        calls_per_30_seconds: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.creates = SlidingWindow(
            creates_per_minute, CREATE_WINDOW_SECONDS, clock=clock, sleep=sleep
        )
        self.calls = SlidingWindow(
            calls_per_30_seconds, CALL_WINDOW_SECONDS, clock=clock, sleep=sleep
        )

    def window(self, kind: CallKind) -> SlidingWindow:
        return self.creates if kind == "create" else self.calls

    @asynccontextmanager
    async def reserve(self, kind: CallKind) -> AsyncIterator[None]:
        """``async with limiter.reserve("create"):`` around one request of that kind."""
        async with self.window(kind).slot():
            yield

    def pause(self, kind: CallKind, seconds: float) -> None:
        """Honour a 429: hold back every call of ``kind`` for ``seconds``."""
        self.window(kind).pause(seconds)


# One registry per event loop: the limiters' locks belong to the loop that uses them.
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], OrgRateLimiter]]
_SHARED = weakref.WeakKeyDictionary()


def shared_rate_limiter(
    base_url: str,
    org_id: int,
    *,
    creates_per_minute: int,
    calls_per_30_seconds: int,
) -> OrgRateLimiter:
    """The process-wide limiter of ``org_id`` at ``base_url`` (created on first use).

    Call it from the running event loop that will use the limiter: limiters are kept per
    loop because their locks belong to one loop. The limits of the first call win.
    """
    per_loop = _SHARED.setdefault(asyncio.get_running_loop(), {})
    key = (base_url.rstrip("/"), org_id)
    limiter = per_loop.get(key)
    if limiter is None:
        limiter = OrgRateLimiter(creates_per_minute, calls_per_30_seconds)
        per_loop[key] = limiter
    return limiter
