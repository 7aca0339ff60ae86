"""Outages of a service the daemon depends on (Linear, Codegen), as alerts.

Contract:
- :class:`OutageTracker` (sans-I/O, clock injected) is told of each request's outcome:
  :meth:`~OutageTracker.failure` returns the ``service_unavailable`` alert once, when the
  failures have lasted ``threshold_seconds`` without a success in between, and ``None``
  otherwise; :meth:`~OutageTracker.success` ends the outage (the next one alerts again).
- The alert's occurrence is the outage's start floored to the threshold (at least a
  minute), so daemons sharing a database that saw the same outage mostly share one dedupe key.
- :func:`outage_reporter` adapts a tracker to a client's ``on_health(ok)`` callback: the
  alert is sent in the background (never delaying or failing the request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge_worker.alerts.events import AlertEvent, AlertKind

Clock = Callable[[], float]


class OutageTracker:
    """When ``service`` has failed for ``threshold_seconds``: one alert per outage."""

    def __init__(self, service: str, threshold_seconds: float, clock: Clock = time.time) -> None:
        self.service = service
        self.threshold = threshold_seconds
        self._clock = clock
        self._since: float | None = None
        self._alerted = False

    def success(self) -> None:
        self._since, self._alerted = None, False

    def failure(self) -> AlertEvent | None:
        now = self._clock()
        if self._since is None:
            self._since = now
        if self._alerted or now - self._since < self.threshold:
            return None
        self._alerted = True
        step = max(self.threshold, 60.0)
        window = int(self._since // step * step)
        started = datetime.fromtimestamp(window, UTC).strftime("%Y-%m-%dT%H:%MZ")
        minutes = max(1, int((now - self._since) // 60))
        return AlertEvent(
            AlertKind.SERVICE_UNAVAILABLE,
            subject=self.service,
            occurrence=started,
            facts={"minutes": str(minutes)},
        )


_background: set[asyncio.Task[int]] = set()


def outage_reporter(tracker: OutageTracker) -> Callable[[bool], None]:
    """``on_health(ok)`` for a client: track, and send the alert in the background."""
    from edge_worker.alerts.steps import send_alert

    def on_health(ok: bool) -> None:
        if ok:
            tracker.success()
            return
        event = tracker.failure()
        if event is None:
            return
        task = asyncio.get_running_loop().create_task(send_alert(event))
        _background.add(task)
        task.add_done_callback(_background.discard)

    return on_health
