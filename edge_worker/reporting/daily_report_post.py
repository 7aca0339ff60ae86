"""The daily report posted to Linear where configured: once a day, durable, deduplicated.

Contract:
- With ``console.report_linear_issue`` set, :func:`run_daily_reports` (an asyncio task of
  the daemon's lifespan) starts :func:`daily_report_to_linear` for each day once it has
  ended (and settled) in the budget's time zone, as the daily cost summary does
  (:class:`~edge_worker.costs.daily.DayRollover`), under the workflow id
  ``daily-report-<YYYY-MM-DD>``: DBOS runs an id once across restarts and daemons sharing
  the database.
- The workflow's first step renders the day's report (the markdown of
  ``edge-worker report --day D``); its second posts it as a comment on the configured
  issue with a client-chosen id derived from the day and the issue
  (:func:`report_comment_id`), so a step repeated after a crash finds the comment instead
  of posting another.
- Posting is retried for about five minutes (Linear down, rate-limited); an issue Linear
  does not know then fails the day's workflow (logged as a warning) and the day is not
  tried again; the report stays on the console and ``edge-worker report``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker import services
from edge_worker.costs.daily import DayRollover
from edge_worker.costs.ledger import Clock, utc_now
from edge_worker.ids import stable_uuid4
from edge_worker.linear.client import LinearClient
from edge_worker.reporting.daily_report import build_daily_report, render_markdown
from edge_worker.reporting.daily_report_data import read_day_facts
from edge_worker.settings import Settings

log = structlog.get_logger(__name__)

CHECK_SECONDS = 60.0
WORKFLOW_PREFIX = "daily-report-"
POSTED_EVENT = "daily report posted to Linear"
CHECKED_EVENT = "daily report checked"
"""Debug line: this daemon saw the day's posting workflow end (here or elsewhere)."""


def report_workflow_id(day: date) -> str:
    """The id of ``day``'s posting workflow."""
    return f"{WORKFLOW_PREFIX}{day.isoformat()}"


def report_comment_id(day: date, issue_ref: str) -> str:
    """The client-chosen id of ``day``'s report comment on ``issue_ref``."""
    return stable_uuid4("daily-report", day.isoformat(), issue_ref)


def report_markdown(settings: Settings, engine: sa.Engine, day: date) -> str:
    """``day``'s report as ``edge-worker report --day D`` prints it."""
    facts = read_day_facts(engine, day, settings.budget.timezone, settings.budget.per_day_usd)
    return render_markdown(build_daily_report(facts))


async def post_report(linear: LinearClient, issue_ref: str, day: date, markdown: str) -> str:
    """Comment ``markdown`` on ``issue_ref`` as ``day``'s report (once: a repeat finds the
    comment by its id); returns the comment's id."""
    issue = await linear.issue(issue_ref)
    comment = await linear.create_comment(
        id=report_comment_id(day, issue_ref), issue_id=issue.id, body=markdown, priority="low"
    )
    return comment.id


@DBOS.step(retries_allowed=True, max_attempts=5, interval_seconds=2.0, backoff_rate=2.0)
async def render_report_step(day: str) -> str:
    """The day's report in markdown, from the database."""
    installed = services.current()
    return await asyncio.to_thread(
        report_markdown, installed.settings, installed.engine, date.fromisoformat(day)
    )


@DBOS.step(retries_allowed=True, max_attempts=6, interval_seconds=10.0, backoff_rate=2.0)
async def post_report_comment_step(day: str, issue_ref: str, markdown: str) -> str:
    """Post the report comment (see :func:`post_report`)."""
    from edge_worker.orchestration.steps import adapters

    posted = await post_report(adapters().linear, issue_ref, date.fromisoformat(day), markdown)
    log.info(POSTED_EVENT, day=day, issue=issue_ref)
    return posted


@DBOS.workflow()
async def daily_report_to_linear(day: str, issue_ref: str) -> str:
    """Post ``day``'s report on ``issue_ref``; start it with :func:`report_workflow_id`."""
    markdown = await render_report_step(day)
    return await post_report_comment_step(day, issue_ref, markdown)


async def _post_day(rollover: DayRollover, day: date, issue_ref: str, wait: float) -> None:
    try:
        with SetWorkflowID(report_workflow_id(day)):
            handle = await DBOS.start_workflow_async(
                daily_report_to_linear, day.isoformat(), issue_ref
            )
    except Exception as exc:  # the database did not answer: try again at the next check
        log.warning("daily report not started", day=str(day), error=type(exc).__name__)
        return
    try:
        await asyncio.wait_for(handle.get_result(), timeout=wait)
    except TimeoutError:
        return  # still running here or on another daemon: look again at the next check
    except Exception as exc:
        log.warning("daily report not posted to Linear", day=str(day), error=type(exc).__name__)
    rollover.done(day)
    log.debug(CHECKED_EVENT, day=str(day))


async def run_daily_reports(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    interval: float = CHECK_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Post each ended day's report on the configured issue; returns at once when none is
    configured, else runs until cancelled. DBOS must be launched."""
    issue_ref = settings.console.report_linear_issue
    if not issue_ref:
        return
    rollover = DayRollover(settings.budget.timezone)
    while True:
        day = rollover.due(clock())
        if day is not None:
            await _post_day(rollover, day, issue_ref, wait=interval)
        await sleep(interval)
