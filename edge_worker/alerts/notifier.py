"""The notifier: decide (commit to the outbox), then deliver with retries and rate limits.

Contract:
- :meth:`Notifier.decide` renders the event and commits it to the outbox for every
  configured channel; it is safe to repeat (the dedupe key makes it once). Nothing is
  sent yet: a crash after it returns still sends, on the next :meth:`Notifier.deliver`.
- :meth:`Notifier.alert` is ``decide`` then ``deliver``.
- :meth:`Notifier.deliver` sends every pending row it can claim: each send is retried
  with exponential backoff (``stamina``) on retryable failures up to ``retry_attempts``;
  a refused send (4xx other than 429) is given up and logged; a row still failing stays
  pending for the next delivery. Each channel admits at most ``per_minute`` sends a minute.
- Logs name the channel, the alert kind and key, never a URL, token or secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import sqlalchemy as sa
import stamina
import structlog

from edge_worker.alerts import outbox
from edge_worker.alerts.channels import Channel, ChannelError, build_request, send
from edge_worker.alerts.events import AlertEvent, render
from edge_worker.executors.rate_limit import SlidingWindow

log = structlog.get_logger(__name__)

LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retries and rate limit of every channel."""

    per_minute: int = 20
    window_seconds: float = 60.0
    """The rate-limit window (``per_minute`` sends in any such window)."""
    retry_attempts: int = 5
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 30.0


class _Retryable(Exception):
    def __init__(self, error: ChannelError) -> None:
        super().__init__(str(error))
        self.error = error


class Notifier:
    """Alerts to the configured channels, through the outbox in ``engine``."""

    def __init__(
        self,
        engine: sa.Engine,
        channels: list[Channel],
        client: httpx.AsyncClient,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.channels = {channel.name: channel for channel in channels}
        self.client = client
        self.policy = policy or DeliveryPolicy()
        self._windows = {
            name: SlidingWindow(self.policy.per_minute, self.policy.window_seconds)
            for name in self.channels
        }

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def decide(self, event: AlertEvent) -> int:
        """Commit ``event`` to the outbox for each channel; the number of new rows."""
        if not self.channels:
            return 0
        added = outbox.record(self.engine, render(event), sorted(self.channels))
        if added:
            log.info("alert_decided", kind=event.kind.value, key=event.dedupe_key)
        return added

    async def alert(self, event: AlertEvent) -> int:
        """Decide, then deliver; the number of messages sent."""
        self.decide(event)
        return await self.deliver()

    async def deliver(self) -> int:
        """Send every pending alert this process can claim; the number sent."""
        sent = 0
        for row in outbox.pending(self.engine):
            channel = self.channels.get(row.channel)
            if channel is None:  # a channel removed from the settings since
                continue
            if not outbox.claim(self.engine, row.id, LEASE_SECONDS):
                continue
            if await self._send_row(channel, row):
                sent += 1
        return sent

    async def _send_row(self, channel: Channel, row: outbox.PendingAlert) -> bool:
        attempts = row.attempts
        request = build_request(channel, row.message, int(time.time()))
        policy = self.policy
        try:
            async for attempt in stamina.retry_context(
                on=_Retryable,
                attempts=policy.retry_attempts,
                timeout=None,
                wait_initial=policy.retry_initial_seconds,
                wait_max=policy.retry_max_seconds,
                wait_jitter=policy.retry_initial_seconds,
            ):
                with attempt:
                    attempts += 1
                    async with self._windows[channel.name].slot():
                        try:
                            await send(self.client, channel, request)
                        except ChannelError as exc:
                            if exc.retryable:
                                raise _Retryable(exc) from None
                            raise
        except ChannelError as exc:
            outbox.mark_failed(self.engine, row.id, attempts, str(exc))
            log.warning("alert_refused", channel=channel.name, key=row.message.key, error=str(exc))
            return False
        except _Retryable as exc:
            outbox.release(self.engine, row.id, attempts)
            log.warning(
                "alert_not_sent_yet", channel=channel.name, key=row.message.key, error=str(exc)
            )
            return False
        outbox.mark_sent(self.engine, row.id, attempts)
        log.info("alert_sent", channel=channel.name, key=row.message.key, attempts=attempts)
        return True
