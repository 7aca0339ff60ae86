"""The daily report posted to Linear where configured: once a day, durable, deduplicated.

Contract:
- With ``console.report_linear_issue`` and/or ``console.report_linear_team`` set,
  :func:`run_daily_reports` (an asyncio task of the daemon's lifespan) starts
  :func:`daily_report_to_linear` for each day once it has ended (and settled) in the
  budget's time zone, as the daily cost summary does
  (:class:`~edge_worker.costs.daily.DayRollover`), under the workflow id
  ``daily-report-<YYYY-MM-DD>``: DBOS runs an id once across restarts and daemons sharing
  the database.
- The workflow's first step renders the day's report (the markdown of
  ``edge-worker report --day D``). With an issue, a step posts it as a comment on it with
  a client-chosen id derived from the day and the issue (:func:`report_comment_id`); with
  a team, a step creates it as a Linear document in that team, titled
  :func:`report_document_title`, with a client-chosen id derived from the day and the team
  (:func:`report_document_id`). A step repeated after a crash finds its comment or
  document by that id instead of creating another.
- Each posting step is retried for about five minutes (Linear down, rate-limited); an
  issue or team Linear does not know then fails that step, the other step still runs, and
  the day's workflow fails (logged as a warning); the day is not tried again. The report
  stays on the console and ``edge-worker report``.
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
DOCUMENT_EVENT = "daily report document created on Linear"
CHECKED_EVENT = "daily report checked"
"""Debug line: this daemon saw the day's posting workflow end (here or elsewhere)."""


def report_workflow_id(day: date) -> str:
    """The id of ``day``'s posting workflow."""
    return f"{WORKFLOW_PREFIX}{day.isoformat()}"


def report_comment_id(day: date, issue_ref: str) -> str:
    """The client-chosen id of ``day``'s report comment on ``issue_ref``."""
    return stable_uuid4("daily-report", day.isoformat(), issue_ref)


def report_document_id(day: date, team_ref: str) -> str:
    """The client-chosen id of ``day``'s report document in ``team_ref``."""
    return stable_uuid4("daily-report-document", day.isoformat(), team_ref)


def report_document_title(day: date) -> str:
    """The title of ``day``'s report document."""
    return f"edge-worker daily report {day.isoformat()}"


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


async def post_document(linear: LinearClient, team_ref: str, day: date, markdown: str) -> str:
    """Create ``markdown`` as ``day``'s report document in ``team_ref`` (a key or an id;
    once: a repeat finds the document by its id); returns the document's id."""
    document = await linear.create_document(
        id=report_document_id(day, team_ref),
        title=report_document_title(day),
        content=markdown,
        team_id=await linear.team_id(team_ref),
        priority="low",
    )
    return document.id


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


@DBOS.step(retries_allowed=True, max_attempts=6, interval_seconds=10.0, backoff_rate=2.0)
async def create_report_document_step(day: str, team_ref: str, markdown: str) -> str:
    """Create the report document (see :func:`post_document`)."""
    from edge_worker.orchestration.steps import adapters

    created = await post_document(adapters().linear, team_ref, date.fromisoformat(day), markdown)
    log.info(DOCUMENT_EVENT, day=day, team=team_ref, document=created)
    return created


@DBOS.workflow()
async def daily_report_to_linear(
    day: str, issue_ref: str | None, team_ref: str | None = None
) -> list[str]:
    """Post ``day``'s report on ``issue_ref`` and/or as a document in ``team_ref``, each
    its own step (one failing does not skip the other; the first failure is raised after
    both); returns the ids created. Start it with :func:`report_workflow_id`."""
    markdown = await render_report_step(day)
    created: list[str] = []
    failures: list[Exception] = []
    if issue_ref:
        try:
            created.append(await post_report_comment_step(day, issue_ref, markdown))
        except Exception as exc:
            failures.append(exc)
    if team_ref:
        try:
            created.append(await create_report_document_step(day, team_ref, markdown))
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
    return created


async def _post_day(
    rollover: DayRollover, day: date, issue_ref: str | None, team_ref: str | None, wait: float
) -> None:
    try:
        with SetWorkflowID(report_workflow_id(day)):
            handle = await DBOS.start_workflow_async(
                daily_report_to_linear, day.isoformat(), issue_ref, team_ref
            )
    except Exception as exc:  # the database did not answer: try again at the next check
        log.warning("daily report not started", day=str(day), error=type(exc).__name__)
        return
    try:
        async with asyncio.timeout(wait):  # not wait_for: see dispatch._loop
            await handle.get_result()
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
    """Post each ended day's report on the configured issue and/or team; returns at once
    when neither is configured, else runs until cancelled. DBOS must be launched."""
    issue_ref = settings.console.report_linear_issue or None
    team_ref = settings.console.report_linear_team or None
    if issue_ref is None and team_ref is None:
        return
    rollover = DayRollover(settings.budget.timezone)
    while True:
        day = rollover.due(clock())
        if day is not None:
            await _post_day(rollover, day, issue_ref, team_ref, wait=interval)
        await sleep(interval)
