"""The durable steps of an orchestration: every call out of the process, made safe to repeat.

Each step is a DBOS step: once it returns, its result is checkpointed and a recovered
workflow gets the recorded result instead of calling out again. A step interrupted by a
crash runs again, so each is idempotent by construction: Linear entities carry
client-chosen ids (``stable_uuid4``), comments are found by their hidden marker, cost
entries have deterministic ids, Codegen runs are looked up by their metadata before
another is created, and worktrees are reused. Steps take and return JSON-able data.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.costs.ledger import CostEntry, EntryKind, cost_entry_id
from edge_worker.costs.metrics import observe_cost
from edge_worker.costs.money import Total
from edge_worker.executors.base import (
    ExecutorUnavailable,
    RunHandle,
    Task,
    VerificationCommand,
    VerificationReport,
)
from edge_worker.linear.errors import LinearError
from edge_worker.linear.models import ExternalUrl, PlanStep
from edge_worker.orchestration.activity_batch import ActivityBatch
from edge_worker.orchestration.attachment_steps import ensure_files
from edge_worker.orchestration.context import PlanningContext
from edge_worker.orchestration.existing import subtask_issue_id
from edge_worker.orchestration.plan import Subtask
from edge_worker.orchestration.planner import PlannerUnavailable, PlanningFailed
from edge_worker.orchestration.wiring import Adapters, installed_adapters
from edge_worker.reporting.markers import marker
from edge_worker.reporting.report import ReportModel, render_report, render_subtask_result
from edge_worker.reporting.subissue import render_subissue_description
from edge_worker.storage import activity_log, issue_links, work
from edge_worker.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

REPORT_PURPOSE = "report"
RESULT_PURPOSE = "result"


def total_json(total: Total) -> dict[str, int]:
    """A :class:`Total` as checkpointable data (``Total(**data)`` reads it back)."""
    return {
        "micros": total.micros,
        "priced": total.priced,
        "unpriced": total.unpriced,
        "uncertain": total.uncertain,
    }


def adapters() -> Adapters:
    """The process's adapters (installed by the daemon at start-up)."""
    return installed_adapters()


async def _log_line(issue_id: str, kind: str, body: str, **extra: Any) -> None:
    """Keep what was said for the console's *Issue* page (never raises)."""
    engine = services.current().engine
    await asyncio.to_thread(
        activity_log.record, engine, issue_id=issue_id, kind=kind, body=body, **extra
    )


async def _record_cost(entry: CostEntry) -> None:
    ledger = adapters().ledger
    if await asyncio.to_thread(ledger.record, entry):
        observe_cost(entry.executor, entry.model, entry.usd)


@DBOS.step()
async def now_step() -> float:
    """Wall-clock time, recorded so a recovered workflow sees the same value."""
    return time.time()


@DBOS.step()
async def set_state_step(issue_id: str, workflow_id: str, state: str, **extra: Any) -> None:
    """Move the issue's work item (``edge-worker status``) to ``state``."""

    def update() -> None:
        with services.current().engine.begin() as conn:
            work.set_state(conn, issue_id, workflow_id, state, **extra)

    await asyncio.to_thread(update)


LEAVE_STATE_TYPES = frozenset({"started", "completed", "canceled"})
"""Issue states the daemon never moves an issue out of when it starts work."""


@DBOS.step()
async def acknowledge_step(
    issue_id: str,
    session_id: str | None,
    workflow_id: str,
    *,
    start: bool = True,
    delegate_to: str | None = None,
) -> dict[str, Any]:
    """Read the issue, (``start``) move it to its team's first started state, and make
    ``delegate_to`` its delegate when it has none (work started from a mention).

    A session's first ``thought`` was posted already (by the dispatcher, or the trigger
    workflow), so nothing is said here. An issue that is started, completed or canceled
    stays where it is, and so does one refused before any work (``start=False``: the
    day's budget is spent). Returns a snapshot of the issue and its team's states.
    """
    a = adapters()
    issue = await a.linear.issue(issue_id)
    states = await a.linear.team_states(issue.team.id)
    started = [s for s in states if s.type == "started"]
    state_id = None
    if start and started and issue.state.type not in LEAVE_STATE_TYPES:
        state_id = started[0].id
    delegate = delegate_to if delegate_to and issue.delegate_id is None else None
    if state_id or delegate:
        await a.linear.update_issue(issue.id, state_id=state_id, delegate_id=delegate)
    if issue.url:
        await asyncio.to_thread(_remember_url, issue.id, issue.url)
    return {
        "issue": issue.model_dump(mode="json"),
        "states": [s.model_dump(mode="json") for s in states],
    }


def _remember_url(issue_id: str, url: str) -> None:
    with services.current().engine.begin() as conn:
        issue_links.remember(conn, issue_id, url)


@DBOS.step()
async def post_report_step(model: dict[str, Any]) -> None:
    """Create or edit the issue's one report comment (found by its hidden marker)."""
    report = _report_from_json(model)
    body = render_report(report)
    await adapters().linear.upsert_marked_comment(
        issue_id=report.issue_id, purpose=REPORT_PURPOSE, body=body
    )
    entry = f"{REPORT_PURPOSE}-{report.issue_id}"
    shown = body.replace(marker(REPORT_PURPOSE, report.issue_id), "").strip()
    await _log_line(report.issue_id, "comment", shown, entry_id=entry, replace=True)


def _report_from_json(model: dict[str, Any]) -> ReportModel:
    from edge_worker.reporting.report import SubtaskRow

    rows = [SubtaskRow(**{**row, "cost": Total(**row["cost"])}) for row in model.pop("rows")]
    total = Total(**model.pop("total"))
    today = Total(**model.pop("today_spend"))
    planning = model.pop("planning_cost")
    limit = model.pop("daily_limit")
    return ReportModel(
        rows=rows,
        total=total,
        today_spend=today,
        planning_cost=Total(**planning) if planning else None,
        daily_limit=Decimal(limit) if limit is not None else None,
        **model,
    )


@DBOS.step()
async def say_step(
    issue_id: str,
    session_id: str | None,
    kind: str,
    body: str,
    activity_id: str,
    *,
    options: list[str] | None = None,
    final: bool = False,
) -> None:
    """Tell the user something: an activity of ``kind`` in app mode, a comment otherwise.

    ``kind`` is ``thought``, ``elicitation``, ``response`` or ``error``; the comment's id
    (or the activity's) is ``activity_id``, so a repeated step says it once. An
    elicitation with ``options`` is a ``select`` (in a comment, the options are listed).
    ``final`` (after a stop) drops the session's progress not yet sent, so the terminal
    activity is the only one.
    """
    a = adapters()
    if session_id:
        if kind == "response":
            await a.coalescer.respond(session_id, body, id=activity_id, discard_pending=final)
        elif kind == "error":
            await a.coalescer.fail(session_id, body, id=activity_id, discard_pending=final)
        elif kind == "elicitation":
            await a.coalescer.elicit(session_id, body, id=activity_id, options=options)
        else:
            await a.linear.create_activity(
                session_id=session_id, content={"type": kind, "body": body}, id=activity_id
            )
            a.coalescer.resume(session_id)
    elif kind != "response":  # user mode: the report comment already says it
        if options:
            body += "\n\n" + "\n".join(f"- `{option}`" for option in options)
        await a.linear.create_comment(id=activity_id, issue_id=issue_id, body=body)
    else:
        return
    await _log_line(issue_id, kind, body, entry_id=activity_id)


@DBOS.step()
async def add_session_links_step(session_id: str, links: list[dict[str, str]]) -> None:
    """Add links (the report, a Codegen run, a pull request) to the session's
    ``externalUrls``; adding one that is there already changes nothing."""
    await adapters().linear.update_session(
        session_id,
        added_external_urls=[ExternalUrl.model_validate(link) for link in links],
        priority="low",
    )


@DBOS.step()
async def rank_repositories_step(issue_id: str, session_id: str | None) -> list[str]:
    """The configured repositories' ids, the likeliest for the issue first: ranked by
    Linear's ``issueRepositorySuggestions`` when repositories name their ``full_name``
    (configuration order otherwise, and when Linear cannot say)."""
    a = adapters()
    repositories = services.current().settings.repositories
    ids = [r.id for r in repositories]
    candidates = {r.full_name: r.id for r in repositories if r.full_name}
    if not candidates:
        return ids
    try:
        suggestions = await a.linear.repository_suggestions(
            issue_id, [(r.hostname, r.full_name) for r in repositories if r.full_name], session_id
        )
    except LinearError as exc:
        log.warning("repository suggestions unavailable", error=str(exc))
        return ids
    confidence = {candidates[name]: score for name, score in suggestions if name in candidates}
    return sorted(ids, key=lambda rid: (-confidence.get(rid, -1.0), ids.index(rid)))


@DBOS.step()
async def comment_step(issue_id: str, comment_id: str, body: str) -> None:
    """Comment on an issue (the client-chosen id makes a repeat find, not duplicate, it)."""
    await adapters().linear.create_comment(id=comment_id, issue_id=issue_id, body=body)
    await _log_line(issue_id, "comment", body, entry_id=comment_id)


@DBOS.step()
async def plan_step(
    context: dict[str, Any], workflow_id: str, issue_id: str, identifier: str, round_: int
) -> dict[str, Any]:
    """Run the planner; every model call goes into the ledger, valid plan or not."""
    a = adapters()
    ctx = PlanningContext.model_validate(context)
    try:
        outcome = await a.planner.plan(ctx)
    except PlanningFailed as failed:
        await _record_planner_calls(failed.calls, workflow_id, issue_id, identifier, round_)
        return {"error": "\n".join(f"- {p}" for p in failed.problems)}
    except PlannerUnavailable as exc:
        return {"error": str(exc), "unavailable": True}
    await _record_planner_calls(outcome.calls, workflow_id, issue_id, identifier, round_)
    return {"plan": outcome.plan.model_dump(mode="json"), "cost_usd": outcome.cost_usd}


async def _record_planner_calls(
    calls: list[Any], workflow_id: str, issue_id: str, identifier: str, round_: int
) -> None:
    for call in calls:
        await _record_cost(
            CostEntry(
                entry_id=cost_entry_id(workflow_id, f"plan-{round_}", call.attempt),
                issue_id=issue_id,
                issue_identifier=identifier,
                kind="planner",
                executor=f"planner:{call.backend}",
                attempt=call.attempt,
                model=call.model,
                usage=call.usage,
                usd=call.cost_usd,
            )
        )


@DBOS.step()
async def create_subissue_step(
    parent_id: str,
    team_id: str,
    state_id: str | None,
    subtask: dict[str, Any],
    *,
    parent_url: str | None = None,
    report_url: str | None = None,
) -> dict[str, Any]:
    """Create the sub-issue for a sub-task (client-chosen id: a retry finds, not duplicates);
    its description links the parent issue and its report by their Linear URLs."""
    s = Subtask.model_validate(subtask)
    ref = await adapters().linear.create_issue(
        id=subtask_issue_id(parent_id, s.key),
        team_id=team_id,
        title=s.title,
        description=render_subissue_description(
            parent_id, s, parent_url=parent_url, report_url=report_url
        ),
        parent_id=parent_id,
        state_id=state_id,
    )
    return {"id": ref.id, "identifier": ref.identifier, "url": ref.url}


@DBOS.step()
async def publish_session_plan_step(session_id: str, steps: list[dict[str, str]]) -> None:
    """Show the plan on the agent session (app mode)."""
    await adapters().linear.update_session(
        session_id, plan=[PlanStep.model_validate(s) for s in steps], priority="low"
    )


@DBOS.step()
async def role_prompt_step(role: str) -> str:
    """The role's prompt (``<prompts_dir>/<role>.md``; empty when there is none), read once
    per dispatch and recorded, so a replay sees the text the run was given."""
    path = services.current().settings.prompts_dir / f"{role}.md"
    try:
        return await asyncio.to_thread(path.read_text)
    except OSError:
        return ""


@DBOS.step()
async def move_issue_step(issue_id: str, state_id: str) -> None:
    """Move an issue (parent or sub-issue) to a workflow state."""
    await adapters().linear.update_issue(issue_id, state_id=state_id)


@DBOS.step()
async def money_step(issue_id: str) -> dict[str, Any]:
    """The issue's spend, today's spend (and today's date in the budget's time zone) and
    how many runs are in flight today."""
    ledger = adapters().ledger

    def read() -> dict[str, Any]:
        issue = ledger.issue_total(issue_id)
        day = ledger.day_total(ledger.today())
        with services.current().engine.connect() as conn:
            running = work.running_subtasks(conn)
        return {
            "issue": total_json(issue),
            "day": total_json(day),
            "day_running": running,
            "today": ledger.today().isoformat(),
        }

    return await asyncio.to_thread(read)


# --- executor steps ---------------------------------------------------------------------


@DBOS.step()
async def start_run_step(
    executor: str, task: dict[str, Any], charge: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Start a run; ``{"unavailable": reason}`` when the executor cannot take work.

    ``charge`` (the cost fields its follow will use) records a run billed on creation at
    once (see :func:`_charge_on_creation`)."""
    try:
        ready = await _with_files_here(Task.model_validate(task))
        handle = await adapters().executors[executor].start(ready)
    except ExecutorUnavailable as exc:
        return {"unavailable": exc.reason}
    await _charge_on_creation(executor, handle, charge)
    return {"handle": handle.model_dump(mode="json")}


async def _charge_on_creation(
    executor: str, handle: RunHandle, charge: dict[str, Any] | None
) -> None:
    """Record what a run cost the moment it exists, when its executor bills on creation
    (Codegen's per-run price: ``abandoned_charge``), under the entry id its follow uses.

    A stop cancels the sub-task's workflow as it pleases: a step that has created a run
    can lose its answer to the cancel (or to a kill) and the run is then never followed,
    yet it was paid for. The ledger keeps one entry per id, so the follow's (or a
    stop's) record of the same run changes nothing. Runs billed by use (local CLIs) are
    charged when followed.
    """
    price = getattr(adapters().executors[executor], "abandoned_charge", None)
    if charge is not None and price is not None:
        await _record_cost(CostEntry(**charge, executor=executor, model=None, usd=price(handle)))


async def _with_files_here(task: Task) -> Task:
    """``task`` with the issue's files present on this host (the sub-task may run on another
    daemon than the one that fetched them): missing ones are fetched again, or left out."""
    if not task.attachments:
        return task
    return task.model_copy(update={"attachments": await ensure_files(task.attachments)})


ENDED_CHECK_SECONDS = 2.0


async def _stop_when_ended(
    executor: str,
    run: RunHandle,
    cost: dict[str, Any],
    workflow_id: str,
    session_id: str | None,
    ended: asyncio.Event,
) -> None:
    """Stop ``run`` here once the orchestration ended its sub-task (see follow_run_step)."""
    engine = services.current().engine

    def state() -> str | None:
        with engine.connect() as conn:
            return work.subtask_state(conn, cost["issue_id"], cost["subtask_key"], workflow_id)

    while True:
        await asyncio.sleep(ENDED_CHECK_SECONDS)
        try:
            now = await asyncio.to_thread(state)
        except Exception as exc:  # the database is away: look again later
            log.warning("run.ended_check_failed", error=type(exc).__name__)
            continue
        if now in (None, "running"):
            continue
        ended.set()
        log.info("run stopped: its sub-task was ended by the orchestration", state=now)
        if session_id:
            adapters().coalescer.discard(session_id)
        await adapters().executors[executor].cancel(run)
        return


@DBOS.step()
async def follow_run_step(
    executor: str,
    handle: dict[str, Any],
    session_id: str | None,
    cost: dict[str, Any],
) -> dict[str, Any]:
    """Follow a run to its end and record what it cost (once, by entry id); its progress
    lines go to the activity log a transaction per batch (:class:`ActivityBatch`).

    The orchestration may end the sub-task from another daemon (a stop, the issue's time
    limit): it cannot reach this process's run, so while following, this step looks at
    the sub-task's recorded state every :data:`ENDED_CHECK_SECONDS` and, once it is no
    longer ``running`` for this run, stops the run here (killed, or abandoned on Codegen),
    drops the progress still to be said, and records what the run cost as usual.
    """
    a = adapters()
    workdir = handle.get("workdir")
    run_workflow_id = str(DBOS.workflow_id)
    ended = asyncio.Event()
    said = ActivityBatch(services.current().engine)

    async def on_progress(kind: str, text: str) -> None:
        if ended.is_set():
            return
        if workdir:  # Linear sees paths in the repository, never the daemon's own
            text = text.replace(str(workdir).rstrip("/") + "/", "").replace(str(workdir), ".")
        if text.strip():
            said.add(cost["issue_id"], kind, text, run_workflow_id)
        if session_id and text.strip():
            if kind == "action":
                a.coalescer.note_action(session_id, action=text[:200], parameter="")
            else:
                a.coalescer.note_thought(session_id, text[:500])

    run = RunHandle.model_validate(handle)
    watch = asyncio.create_task(
        _stop_when_ended(executor, run, cost, run_workflow_id, session_id, ended)
    )
    try:
        result = await a.executors[executor].follow(run, on_progress)
    finally:
        try:
            await cancel_and_wait(watch)
        finally:
            await said.drain()
    await _record_cost(
        CostEntry(
            **cost,
            executor=executor,
            model=result.model,
            usage=result.usage,
            usd=result.cost_usd,
            uncertain=result.cost_uncertain,
        )
    )
    return result.model_dump(mode="json")


@DBOS.step()
async def resume_run_step(
    executor: str,
    handle: dict[str, Any],
    task: dict[str, Any],
    feedback: str,
    charge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Continue the same executor session with feedback; returns the new handle.
    ``charge``: as for :func:`start_run_step`."""
    ready = await _with_files_here(Task.model_validate(task))
    new = (
        await adapters()
        .executors[executor]
        .resume(RunHandle.model_validate(handle), ready, feedback)
    )
    await _charge_on_creation(executor, new, charge)
    return new.model_dump(mode="json")


@DBOS.step()
async def verify_step(
    executor: str, handle: dict[str, Any], commands: list[dict[str, Any]], cost: dict[str, Any]
) -> dict[str, Any]:
    """Run the verification commands where the work lives; record what verifying cost."""
    report: VerificationReport = (
        await adapters()
        .executors[executor]
        .verify(
            RunHandle.model_validate(handle),
            [VerificationCommand.model_validate(c) for c in commands],
        )
    )
    if report.cost_usd is not None or report.usage.output_tokens or executor == "codegen":
        await _record_cost(
            CostEntry(
                **cost,
                executor=executor,
                model=report.model,
                usage=report.usage,
                usd=report.cost_usd,
            )
        )
    return report.model_dump(mode="json")


@DBOS.step()
async def cancel_run_step(
    executor: str, handle: dict[str, Any], cost: dict[str, Any] | None = None
) -> None:
    """Stop a run: local processes killed, remote runs abandoned and recorded.

    ``cost`` (the cost fields of the run being followed) charges an abandoned remote run
    here, under the entry id its follow step would use: the daemon following it may be
    another one, or the run may never have been followed at all. The ledger keeps one
    entry per id, so a follow that records it too changes nothing.
    """
    runner = adapters().executors[executor]
    run = RunHandle.model_validate(handle)
    await runner.cancel(run)
    charge = getattr(runner, "abandoned_charge", None)
    if cost is not None and charge is not None:
        await _record_cost(CostEntry(**cost, executor=executor, model=None, usd=charge(run)))


@DBOS.step()
async def release_run_step(executor: str, handle: dict[str, Any], succeeded: bool) -> None:
    """Remove a local worktree after success (the branch stays), keep it after failure."""
    runner = adapters().executors[executor]
    release = getattr(runner, "release", None)
    if release is not None:
        await release(RunHandle.model_validate(handle), succeeded=succeeded)


@DBOS.step()
async def subtask_total_step(issue_id: str, key: str) -> dict[str, Any]:
    """What one sub-task has cost so far (every attempt, resume and verification)."""
    ledger = adapters().ledger
    total = await asyncio.to_thread(ledger.subtask_total, issue_id, key)
    return total_json(total)


@DBOS.step()
async def finish_subissue_step(
    sub_issue_id: str, body_args: dict[str, Any], state_id: str | None
) -> None:
    """Post the sub-issue's result comment (edited in place on repeat) and move its state."""
    from edge_worker.executors.base import Evidence

    args = dict(body_args)
    args["checks"] = [Evidence.model_validate(c) for c in args.get("checks", [])]
    args["cost"] = Total(**args["cost"])
    body = render_subtask_result(issue_id=sub_issue_id, **args)
    a = adapters()
    await a.linear.upsert_marked_comment(
        issue_id=sub_issue_id, purpose=RESULT_PURPOSE, body=body, priority="low"
    )
    if state_id:
        await a.linear.update_issue(sub_issue_id, state_id=state_id, priority="low")


@DBOS.step()
async def track_subtask_step(
    issue_id: str, key: str, workflow_id: str, state: str, executor: str | None
) -> None:
    """Record a sub-task's state for budgets (runs in flight) and ``status``."""

    def update() -> None:
        with services.current().engine.begin() as conn:
            work.track_subtask(conn, issue_id, key, workflow_id, state, executor)

    await asyncio.to_thread(update)


def cost_fields(
    workflow_id: str,
    step: str,
    attempt: int,
    issue_id: str,
    identifier: str,
    key: str,
    kind: EntryKind,
) -> dict[str, Any]:
    """The identifying part of a cost entry, derived so a repeated step writes it once."""
    return {
        "entry_id": cost_entry_id(workflow_id, step, attempt),
        "issue_id": issue_id,
        "issue_identifier": identifier,
        "kind": kind,
        "attempt": attempt,
        "subtask_key": key,
    }
