"""Agent-activity coalescing: keep a working session visible without spending the budget.

A session that posted every tool call as an activity would exhaust Linear's hourly
request budget in minutes. The coalescer sits between the executors and the client.

Contract (per agent session, all times from the injected clock):
- ``note_thought`` / ``note_action`` record progress and return at once; they never send
  themselves. Progress with an empty body is dropped, never sent.
- Pending progress goes out merged into ONE activity at most once per ``interval``: at
  once (in a background task) when nothing was sent for ``interval``, otherwise when the
  interval has elapsed (``flush_due``, called by ``run``). One item is sent as it is;
  several become one ``thought`` listing them. Progress is sent at ``priority="low"``.
- A session with nothing sent for ``heartbeat`` seconds gets an ephemeral heartbeat
  thought so Linear does not mark it stale (it goes stale after 30 minutes).
- ``respond`` / ``fail`` are terminal: they wait for any send in flight, flush pending
  progress (or, with ``discard_pending`` after a stop, drop it), then send the
  ``response`` / ``error``; progress noted afterwards is dropped, so the terminal activity
  is always the last. ``elicit`` flushes the same way but keeps the session open; with
  ``options`` it is a ``select``. These three await their request and raise what the
  client raises.
- A session awaiting input (after ``elicit``) gets no heartbeat: a heartbeat thought would
  flip it back to active. Progress noted for it, or ``resume``, ends the wait.
- A failed background send is logged and dropped (the client has already retried).
- With ``still_working`` (a gate: is the session's work still going, asked of the shared
  database), a background send or heartbeat first asks it; when the work ended, on any
  daemon, what is pending is dropped instead of said after the last word.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from edge_worker.linear.clock import Clock
from edge_worker.linear.errors import LinearError
from edge_worker.linear.limits import Priority
from edge_worker.settings import LinearSettings
from edge_worker.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SessionGate = Callable[[str], Awaitable[bool]]
"""Whether a session's work is still going (see the module contract)."""

HEARTBEAT_BODY = "Still working on this."
MAX_MERGED_ITEMS = 20
MAX_ITEM_CHARS = 300
MAX_FINISHED_REMEMBERED = 10_000
# Clock readings are floats near 1.7e9 whose sums carry rounding; a deadline reached
# within this margin counts as reached.
_EPSILON = 1e-3


class ActivitySink(Protocol):
    """What the coalescer needs from :class:`edge_worker.linear.client.LinearClient`."""

    async def create_activity(
        self,
        *,
        session_id: str,
        content: Mapping[str, Any],
        ephemeral: bool = False,
        id: str | None = None,
        priority: Priority = "normal",
        signal: str | None = None,
        signal_metadata: Mapping[str, Any] | None = None,
    ) -> str: ...


@dataclass
class _Session:
    opened_at: float
    last_sent: float | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    awaiting: bool = False
    scheduled: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The background send holding the lock, and the progress batch it carries (with the
    # activity id it was given), so a terminal can take over a send stuck behind the budget.
    task: asyncio.Task[None] | None = None
    in_flight: tuple[str, dict[str, Any]] | None = None

    @property
    def quiet_since(self) -> float:
        return self.last_sent if self.last_sent is not None else self.opened_at


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_ITEM_CHARS else line[: MAX_ITEM_CHARS - 1] + "…"


def _describe(item: Mapping[str, Any]) -> str:
    if item["type"] == "action":
        text = f"{item['action']} `{item['parameter']}`" if item["parameter"] else item["action"]
        if item.get("result"):
            text += f" → {item['result']}"
        return _one_line(text)
    return _one_line(item["body"])


def merge_progress(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One activity content for ``items`` (non-empty): the item itself if alone, else a
    ``thought`` listing the latest :data:`MAX_MERGED_ITEMS` of them."""
    if not items:
        raise ValueError("nothing to merge")
    if len(items) == 1:
        return dict(items[0])
    shown = items[-MAX_MERGED_ITEMS:]
    lines = [f"- {_describe(item)}" for item in shown]
    if len(items) > len(shown):
        lines.insert(0, f"- … {len(items) - len(shown)} earlier steps")
    return {"type": "thought", "body": "\n".join(lines)}


class ActivityCoalescer:
    """Merges and paces agent activities per session; see the module contract."""

    def __init__(
        self,
        sink: ActivitySink,
        *,
        clock: Clock,
        interval: float = 10.0,
        heartbeat: float = 1200.0,
        heartbeat_body: str = HEARTBEAT_BODY,
        still_working: SessionGate | None = None,
    ) -> None:
        self._sink = sink
        self._still_working = still_working
        self._clock = clock
        self.interval = interval
        self.heartbeat = heartbeat
        self._heartbeat_body = heartbeat_body
        self._sessions: dict[str, _Session] = {}
        # Sessions that had their terminal activity: later progress for them is dropped.
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        sink: ActivitySink,
        settings: LinearSettings,
        *,
        clock: Clock,
        still_working: SessionGate | None = None,
    ) -> ActivityCoalescer:
        """A coalescer paced by ``activity_interval_seconds`` and ``heartbeat_seconds``."""
        return cls(
            sink,
            clock=clock,
            interval=settings.activity_interval_seconds,
            heartbeat=settings.heartbeat_seconds,
            still_working=still_working,
        )

    # -- noting progress ---------------------------------------------------------------

    def open(self, session_id: str) -> None:
        """Start heartbeats for a session (noting progress opens it too)."""
        self._session(session_id)

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            session = _Session(opened_at=self._clock.time())
            self._sessions[session_id] = session
        return session

    def note_thought(self, session_id: str, body: str) -> None:
        """Record a progress thought (dropped if ``body`` is blank)."""
        if not body.strip():
            return
        self._note(session_id, {"type": "thought", "body": body.strip()})

    def note_action(
        self, session_id: str, action: str, parameter: str = "", result: str | None = None
    ) -> None:
        """Record a progress action such as a tool call (dropped if ``action`` is blank)."""
        if not action.strip():
            return
        item: dict[str, Any] = {"type": "action", "action": action.strip(), "parameter": parameter}
        if result is not None and result.strip():
            item["result"] = result.strip()
        self._note(session_id, item)

    def _note(self, session_id: str, item: dict[str, Any]) -> None:
        session = self._sessions.get(session_id)
        if session_id in self._finished or (session is not None and session.closed):
            log.debug("linear.activity.after_terminal_dropped", session_id=session_id)
            return
        session = self._session(session_id)
        session.awaiting = False
        session.pending.append(item)
        if self._due(session, self._clock.time()):
            self._schedule(session_id, session)
        self._wake.set()

    def discard(self, session_id: str) -> None:
        """Drop the progress noted for ``session_id`` and not yet sent (its work ended
        elsewhere); the session stays open for what comes next."""
        session = self._sessions.get(session_id)
        if session is not None:
            session.pending = []

    def resume(self, session_id: str) -> None:
        """The session is active again (an activity was sent outside the coalescer)."""
        session = self._sessions.get(session_id)
        if session is not None and session.awaiting:
            session.awaiting = False
            session.last_sent = self._clock.time()
            self._wake.set()

    def awaiting_input(self, session_id: str) -> bool:
        """True while the session waits for the user's answer to an elicitation."""
        session = self._sessions.get(session_id)
        return session is not None and session.awaiting

    def pending(self, session_id: str) -> int:
        """How many progress items wait to be sent for ``session_id``."""
        session = self._sessions.get(session_id)
        return len(session.pending) if session else 0

    # -- sending -----------------------------------------------------------------------

    def _due(self, session: _Session, now: float) -> bool:
        if not session.pending:
            return False
        return session.last_sent is None or now - session.last_sent >= self.interval - _EPSILON

    def _heartbeat_due(self, session: _Session, now: float) -> bool:
        if session.awaiting:
            return False
        return not session.pending and now - session.quiet_since >= self.heartbeat - _EPSILON

    def _schedule(self, session_id: str, session: _Session) -> None:
        if session.scheduled or session.closed:
            return
        session.scheduled = True
        self._spawn(self._flush_session(session_id, session))

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self,
        session_id: str,
        session: _Session,
        content: dict[str, Any],
        *,
        priority: Priority,
        ephemeral: bool = False,
        id: str | None = None,
    ) -> None:
        session.last_sent = self._clock.time()
        await self._sink.create_activity(
            session_id=session_id, content=content, ephemeral=ephemeral, id=id, priority=priority
        )

    async def _send_pending(self, session_id: str, session: _Session, priority: Priority) -> None:
        if not session.pending:
            return
        items, session.pending = session.pending, []
        batch = (str(uuid.uuid4()), merge_progress(items))
        session.in_flight = batch
        await self._send(session_id, session, batch[1], priority=priority, id=batch[0])
        session.in_flight = None

    async def _flush_session(self, session_id: str, session: _Session) -> None:
        async with session.lock:
            session.task = asyncio.current_task()
            session.scheduled = False
            if session.closed:
                return
            now = self._clock.time()
            try:
                due = self._due(session, now)
                if (due or self._heartbeat_due(session, now)) and not await self._open(session_id):
                    # Its work ended on another daemon (a stop there said the last word):
                    # what this daemon still holds for it is dropped, not said after it.
                    log.info("linear.activity.work_ended_dropped", session_id=session_id)
                    session.pending = []
                    self._sessions.pop(session_id, None)
                    return
                if due:
                    await self._send_pending(session_id, session, "low")
                elif self._heartbeat_due(session, now):
                    content = {"type": "thought", "body": self._heartbeat_body}
                    await self._send(
                        session_id, session, content, priority="normal", ephemeral=True
                    )
            except LinearError as exc:
                session.in_flight = None
                log.warning("linear.activity.send_failed", session_id=session_id, error=str(exc))
            finally:
                session.task = None

    async def _open(self, session_id: str) -> bool:
        """Whether the session's work is still going (no gate: always)."""
        if self._still_working is None:
            return True
        try:
            return await self._still_working(session_id)
        except Exception as exc:  # the gate's database is away: err on saying it
            log.warning("linear.activity.gate_failed", session_id=session_id, error=str(exc))
            return True

    async def flush_due(self) -> None:
        """Send every session's due progress and heartbeats, and wait for those sends."""
        now = self._clock.time()
        for session_id, session in list(self._sessions.items()):
            if self._due(session, now) or self._heartbeat_due(session, now):
                self._schedule(session_id, session)
        await self.drain()

    async def drain(self) -> None:
        """Wait until no background send is in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _flush_then(
        self,
        session_id: str,
        content: dict[str, Any],
        *,
        close: bool,
        id: str | None,
        discard_pending: bool = False,
        signal: str | None = None,
        signal_metadata: Mapping[str, Any] | None = None,
    ) -> str:
        session = self._session(session_id)
        if close:
            session.closed = True
        if discard_pending:
            session.pending = []
        background = session.task
        if background is not None and not background.done():
            # A low-priority send may be waiting for the budget; the terminal must not
            # wait behind it. Take its batch over and resend it (same id: idempotent).
            background.cancel()
            await asyncio.wait({background})
        async with session.lock:
            try:
                if session.in_flight is not None and not discard_pending:
                    batch_id, batch = session.in_flight
                    await self._send(session_id, session, batch, priority="normal", id=batch_id)
                    session.in_flight = None
                await self._send_pending(session_id, session, "normal")
            except LinearError as exc:
                # The terminal activity matters more than the progress before it.
                log.warning("linear.activity.send_failed", session_id=session_id, error=str(exc))
            session.last_sent = self._clock.time()
            extra: dict[str, Any] = {}
            if signal is not None:
                extra = {"signal": signal, "signal_metadata": signal_metadata}
            activity_id = await self._sink.create_activity(
                session_id=session_id, content=content, id=id, priority="normal", **extra
            )
            session.awaiting = content["type"] == "elicitation"
        if close:
            self._sessions.pop(session_id, None)
            self._finished[session_id] = None
            while len(self._finished) > MAX_FINISHED_REMEMBERED:
                self._finished.popitem(last=False)
        return activity_id

    async def elicit(
        self,
        session_id: str,
        body: str,
        *,
        id: str | None = None,
        options: Sequence[str] | None = None,
    ) -> str:
        """Ask the user something now (after flushing pending progress); with ``options``
        a ``select`` whose choices are those values. No heartbeat until the answer."""
        signal, metadata = (None, None)
        if options:
            signal = "select"
            metadata = {"options": [{"label": o, "value": o} for o in options]}
        return await self._flush_then(
            session_id,
            _body("elicitation", body),
            close=False,
            id=id,
            signal=signal,
            signal_metadata=metadata,
        )

    async def respond(
        self, session_id: str, body: str, *, id: str | None = None, discard_pending: bool = False
    ) -> str:
        """Send the final ``response``: pending progress first (unless ``discard_pending``),
        then this, then nothing."""
        return await self._flush_then(
            session_id, _body("response", body), close=True, id=id, discard_pending=discard_pending
        )

    async def fail(
        self, session_id: str, body: str, *, id: str | None = None, discard_pending: bool = False
    ) -> str:
        """Send a terminal ``error``: pending progress first (unless ``discard_pending``),
        then this, then nothing."""
        return await self._flush_then(
            session_id, _body("error", body), close=True, id=id, discard_pending=discard_pending
        )

    # -- background loop -------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        deadlines = []
        for session in self._sessions.values():
            if session.closed or (session.awaiting and not session.pending):
                continue
            if session.pending:
                deadlines.append(
                    session.last_sent + self.interval if session.last_sent is not None else 0.0
                )
            else:
                deadlines.append(session.quiet_since + self.heartbeat)
        return min(deadlines) if deadlines else None

    async def run(self) -> None:
        """Flush due progress and heartbeats forever (until cancelled)."""
        while True:
            self._wake.clear()
            deadline = self._next_deadline()
            if deadline is None or deadline > self._clock.time():
                await self._sleep_or_wake(deadline)
            await self.flush_due()

    async def _sleep_or_wake(self, deadline: float | None) -> None:
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(self._wake.wait())]
        if deadline is not None:
            waiters.append(asyncio.create_task(self._sleep_until(deadline)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _sleep_until(self, deadline: float) -> None:
        # The remaining time is computed when the task starts, not when it is created.
        await self._clock.sleep(deadline - self._clock.time())

    def start(self) -> None:
        """Run :meth:`run` in a background task."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self.run())

    async def aclose(self) -> None:
        """Stop the background loop and abandon progress not yet sent (a send waiting
        for the budget is cancelled). Terminal activities are awaited by their callers."""
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await cancel_and_wait(runner)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await self.drain()


def _body(kind: str, body: str) -> dict[str, Any]:
    if not body.strip():
        raise ValueError(f"a {kind} activity needs a non-empty body")
    return {"type": kind, "body": body}
