"""The daily cost summary's I/O: a DBOS workflow per day and the check that starts it.

Contract:
- :func:`daily_cost_summary` is a DBOS workflow started with the id
  ``daily-cost-summary-<YYYY-MM-DD>`` (:func:`~edge_worker.costs.daily.summary_workflow_id`).
  DBOS runs a workflow id once: across restarts (a finished id is not run again, an
  interrupted one is resumed by the daemon with the same executor id) and across daemons
  sharing Postgres (only the daemon that created the id runs it). So each day's line is
  written once. Its first step reads the day's ledger rows and the daily limit; its second
  writes the line; the workflow returns the line's fields.
- :func:`run_daily_summaries` is the daemon's periodic check (an asyncio task of the app's
  lifespan): at start and every ``interval`` seconds it asks :class:`DayRollover` whether a
  day is due and, if so, starts (or joins) that day's workflow and waits for it, at most
  ``interval`` seconds at a time. A day is not asked for again once its workflow has ended,
  successfully or not (a failed one is logged as a warning; DBOS will not run its id again,
  and ``edge-worker costs --day`` still shows the day). Errors reaching the database are
  logged and the day is tried again at the next check.
- The clock is read only by the check, outside any workflow; the workflow reads the
  database only inside its step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker import services
from edge_worker.costs.budget import BudgetLimits
from edge_worker.costs.daily import SUMMARY_EVENT, DayRollover, summarise_day, summary_workflow_id
from edge_worker.costs.ledger import Clock, Ledger, utc_now

log = structlog.get_logger(__name__)

CHECK_SECONDS = 60.0
"""How often the daemon looks whether a day is due for its summary."""

CHECKED_EVENT = "daily cost summary checked"
"""Debug line: this daemon saw the day's summary workflow end (written here or elsewhere)."""

_ENDED_UNSUCCESSFULLY = frozenset({"ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})


@DBOS.step(retries_allowed=True, max_attempts=5, interval_seconds=2.0, backoff_rate=2.0)
async def read_daily_summary_step(day: str) -> dict[str, Any]:
    """The line's fields for ``day`` (ISO date in the budget time zone), from the ledger.

    Reads the same rows as ``edge-worker costs --day`` (``Ledger.entries(day=...)``) and the
    daily limit from the settings; retried when the database does not answer.
    """
    installed = services.current()
    budget = installed.settings.budget
    chosen = date.fromisoformat(day)

    def read() -> dict[str, Any]:
        ledger = Ledger(installed.engine, budget.timezone)
        rows = ledger.entries(day=chosen)
        limit = BudgetLimits.from_settings(budget).per_day
        return summarise_day(chosen, ledger.timezone, rows, limit).log_fields()

    return await asyncio.to_thread(read)


@DBOS.step()
async def write_daily_summary_step(fields: dict[str, Any]) -> None:
    """Write the summary line (once the step is recorded, a recovery does not repeat it)."""
    log.info(SUMMARY_EVENT, **fields)


@DBOS.workflow()
async def daily_cost_summary(day: str) -> dict[str, Any]:
    """Write ``day``'s cost summary line; start it with the id ``daily-cost-summary-<day>``."""
    fields = await read_daily_summary_step(day)
    await write_daily_summary_step(fields)
    return fields


async def _summarise(rollover: DayRollover, day: date, wait_seconds: float) -> None:
    """Start or join ``day``'s workflow, wait for it, and mark the day done once it ended."""
    workflow_id = summary_workflow_id(day)
    try:
        with SetWorkflowID(workflow_id):
            handle = await DBOS.start_workflow_async(daily_cost_summary, day.isoformat())
    except Exception:
        log.warning(
            "daily cost summary not started; trying again later", day=str(day), exc_info=True
        )
        return
    try:
        async with asyncio.timeout(wait_seconds):  # not wait_for: see dispatch._loop
            await handle.get_result()
    except TimeoutError:
        # Still running, here or on another daemon (one that is down resumes it when it
        # comes back, or after `edge-worker recover`): look again at the next check.
        log.debug("daily cost summary still running", day=str(day), workflow_id=workflow_id)
        return
    except Exception:
        status: str
        try:
            status = (await handle.get_status()).status
        except Exception:
            status = "unknown"
        if status not in _ENDED_UNSUCCESSFULLY:
            log.warning(
                "daily cost summary not confirmed; trying again later",
                day=str(day),
                exc_info=True,
            )
            return
        log.warning(
            "daily cost summary failed", day=str(day), workflow_id=workflow_id, status=status
        )
    rollover.done(day)
    log.debug(CHECKED_EVENT, day=str(day), workflow_id=workflow_id)


async def run_daily_summaries(
    timezone: str,
    *,
    clock: Clock = utc_now,
    interval: float = CHECK_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Write each day's summary line once the day has ended in ``timezone``; runs until
    cancelled. DBOS must be launched. ``clock`` and ``sleep`` are injectable for tests."""
    rollover = DayRollover(timezone)
    while True:
        day = rollover.due(clock())
        if day is not None:
            await _summarise(rollover, day, wait_seconds=interval)
        await sleep(interval)
