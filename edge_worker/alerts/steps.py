"""The alerts as DBOS steps, for the workflows (and a plain coroutine for the rest).

Contract:
- :func:`alert_step` decides and delivers one alert given as :meth:`AlertEvent.as_json`
  data. As a step it runs to completion once per workflow position; a daemon that dies
  inside it runs it again on recovery, and the outbox's dedupe key makes that one alert.
- :func:`send_alert` does the same outside a workflow (the dispatcher's revocation).
- :func:`deliver_pending_forever` is the daemon's background sender of what is left.
- Neither ever raises: an alert that cannot be sent is logged (without secrets) and left
  pending in the outbox; no alert setting means nothing happens.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.alerts.config import channels_from_settings, policy_from_settings
from edge_worker.alerts.events import AlertEvent
from edge_worker.alerts.notifier import Notifier

log = structlog.get_logger(__name__)

TIMEOUT_SECONDS = 10.0


async def send_alert(event: AlertEvent) -> int:
    """Decide and deliver ``event`` with the installed services; the number sent."""
    try:
        current = services.current()
        channels = channels_from_settings(current.settings.alerts)
        if not channels:
            return 0
        policy = policy_from_settings(current.settings.alerts)
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            return await Notifier(current.engine, channels, client, policy).alert(event)
    except Exception as exc:  # an alert never stops the work it reports on
        log.warning("alert_failed", kind=event.kind.value, error=type(exc).__name__)
        return 0


@DBOS.step()
async def alert_step(event: dict[str, Any]) -> int:
    """Decide and deliver the alert ``event`` (``AlertEvent.as_json`` data)."""
    return await send_alert(AlertEvent.from_json(event))


async def deliver_pending_forever(interval_seconds: float = 60.0) -> None:
    """Send what the outbox still holds (alerts decided by a process that died before
    sending, or refused by a channel that was down) now and every ``interval_seconds``;
    returns at once when no channel is configured. Cancel it to stop."""
    current = services.current()
    try:
        channels = channels_from_settings(current.settings.alerts)
    except Exception as exc:
        log.warning("alert_channels_unusable", error=str(exc))
        return
    if not channels:
        return
    policy = policy_from_settings(current.settings.alerts)
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
        notifier = Notifier(current.engine, channels, client, policy)
        while True:
            try:
                await notifier.deliver()
            except Exception as exc:  # the database away for a moment: try again later
                log.warning("alert_delivery_failed", error=type(exc).__name__)
            await asyncio.sleep(interval_seconds)
