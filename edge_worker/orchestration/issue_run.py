"""The ``orchestrate_issue`` workflow: the work on one issue, acknowledgement to final report.

Contract:
- ``orchestrate_issue`` (id ``issue-<issue id>-<hash>``, started by :mod:`triggers`)
  acknowledges the issue, refuses new work over the daily budget, routes it to a
  repository (asking in the session when none matches), fetches attachments, plans,
  seeks approval when the policy asks, creates sub-issues and runs the sub-tasks
  (:mod:`issue_execute`); a trigger with ``continue_from`` continues finished work from
  its ``history`` event instead.
- Every run ends with a terminal update: an unexpected error ends the work ``failed``
  (or ``stopped`` when a stop was being carried out), never "working".
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import structlog
from dbos import DBOS

from edge_worker.alerts import hooks as alerts
from edge_worker.costs.money import Total, format_usd
from edge_worker.orchestration import agent_choice, approval, approval_flow, edits, steps, texts
from edge_worker.orchestration.attachment_steps import fetch_attachments_step
from edge_worker.orchestration.budget_waits import warn_day_once
from edge_worker.orchestration.context import Comment as ContextComment
from edge_worker.orchestration.existing import reuse_note
from edge_worker.orchestration.issue_dispatch import create_subissues
from edge_worker.orchestration.issue_execute import execute
from edge_worker.orchestration.issue_finish import finish
from edge_worker.orchestration.issue_messages import follow_up
from edge_worker.orchestration.issue_state import (
    Orchestration,
    adopt_session,
    available_executors,
    drain_messages,
    planning_context,
    publish_plan,
    recv,
    subissues_at_start,
)
from edge_worker.orchestration.plan import Plan
from edge_worker.orchestration.progress import Progress
from edge_worker.orchestration.routing import repo_tags, route_repository
from edge_worker.orchestration.workflow_config import (
    CONTROL_TOPIC,
    REPOSITORY_WAIT_SECONDS,
    SESSION_WAIT_SECONDS,
    estimates_for,
)

log = structlog.get_logger(__name__)


@DBOS.workflow()
async def orchestrate_issue(trigger: dict[str, Any]) -> str:
    """The work on one issue, from acknowledgement to the final report; returns its end state."""
    workflow_id = str(DBOS.workflow_id)
    o = Orchestration(trigger, workflow_id)
    structlog.contextvars.bind_contextvars(issue=o.identifier)
    try:
        return await _orchestrate(o)
    except Exception as exc:  # every run ends with a terminal update, never "working"
        if o.stopped_by is not None:
            # Stopped as asked; only the last words could not reach Linear (an issue
            # deleted, or the app revoked, refuses them). Nothing more to say there.
            log.warning("stopped; the final report could not be written", error=repr(exc))
            await steps.set_state_step(o.issue_id, workflow_id, "stopped", detail=repr(exc)[:500])
            return "stopped"
        log.error("orchestration failed", error=repr(exc))
        await steps.set_state_step(o.issue_id, workflow_id, "failed", detail=repr(exc)[:500])
        text = texts.CRASHED
        o.notes.append(text)
        with contextlib.suppress(Exception):
            if o.snapshot:
                await o.report("failed")
        if o.session_id or not o.snapshot:
            with contextlib.suppress(Exception):
                await o.say("error", text)
        return "failed"


async def _await_session(o: Orchestration) -> dict[str, Any] | None:
    """Wait briefly for the session of the delegation that started this work; returns a
    stop that came meanwhile (follow-ups are kept for the planner)."""
    while True:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=SESSION_WAIT_SECONDS)
        if message is None:
            return None
        if message.get("kind") == "session":
            await adopt_session(o, message)
            return None
        if message.get("kind") == "stop":
            return dict(message)
        if message.get("kind") == "follow_up" and message.get("text"):
            author = message.get("actor_name") or "user"
            o.follow_ups.append(ContextComment(author=author, body=message["text"]))


async def _orchestrate(o: Orchestration) -> str:
    workflow_id = o.workflow_id
    early_stop = None
    if (o.trigger.get("context") or {}).get("expects_session") and not o.session_id:
        early_stop = await _await_session(o)
    money = await steps.money_step(o.issue_id)
    day_spent = Total(**money["day"]).usd
    refused = o.limits.per_day is not None and day_spent >= o.limits.per_day
    o.snapshot = await steps.acknowledge_step(
        o.issue_id,
        o.session_id,
        workflow_id,
        start=not refused,
        delegate_to=o.settings.linear.agent_user_id if o.session_id else None,
    )
    o.identifier = o.snapshot["issue"]["identifier"]
    await o.link_report()
    started_at = await steps.now_step()
    deadline = started_at + o.settings.issue_timeout_seconds
    await steps.set_state_step(o.issue_id, workflow_id, "planning")
    if refused and o.limits.per_day is not None:
        log.warning("daily budget reached: not starting a new issue", spent=str(day_spent))
        text = texts.DAY_BLOCKED_NEW_ISSUE.format(
            spent=format_usd(day_spent), limit=format_usd(o.limits.per_day)
        )
        await alerts.day_budget(str(money["today"]), text, exhausted=True)
        return await finish(o, "over_budget", text)
    if early_stop is not None:
        o.stopped_by = early_stop.get("actor_name") or "a user"
        return await finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
    if o.trigger.get("continue_from"):
        history = await DBOS.get_event_async(
            o.trigger["continue_from"], "history", timeout_seconds=0
        )
        if isinstance(history, dict) and history.get("progress"):
            return await _continue(o, history, deadline)
        author = o.trigger.get("actor_name") or "user"  # nothing to continue: plan anew
        o.follow_ups.append(ContextComment(author=author, body=o.trigger.get("text") or ""))
    if not o.session_id:
        await o.report("planning")

    # Route to a repository; without one, ask and wait for a reply naming it.
    issue = o.snapshot["issue"]
    asked = o.trigger.get("repository")  # named by an MCP caller, checked when it asked
    route = route_repository(
        o.settings.repositories,
        description=f"[repo={asked}]" if asked else issue.get("description"),
        labels=issue.get("labels", []),
        team_key=issue["team"]["key"],
    )
    if route.repository is None and o.settings.repositories:
        options = await steps.rank_repositories_step(o.issue_id, o.session_id)
        choices = ", ".join(f"`{r}`" for r in options)
        await o.say(
            "elicitation",
            texts.NO_REPOSITORY.format(reason=route.reason, choices=choices),
            options=options,
        )
        await steps.set_state_step(o.issue_id, workflow_id, "waiting")
        reply = await recv(o, REPOSITORY_WAIT_SECONDS)
        while reply is not None and (edit := edits.edit_of(reply)) is not None:
            edits.apply_to_snapshot(o.snapshot["issue"], edit)  # an edit is not the answer
            reply = await recv(o, REPOSITORY_WAIT_SECONDS)
        if reply is None or reply.get("kind") == "stop":
            if reply is not None:
                o.stopped_by = reply.get("actor_name") or "a user"
                return await finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
            return await finish(o, "failed", texts.NO_REPOSITORY_GAVE_UP)
        route = route_repository(
            o.settings.repositories,
            description=_repository_reply(
                reply.get("text") or "", [r.id for r in o.settings.repositories]
            ),
        )
        if route.repository is None:
            return await finish(o, "failed", texts.NO_REPOSITORY_GAVE_UP)
    if route.repository is not None:
        o.trigger["_repository"] = route.repository.model_dump(mode="json")
    no_agent = agent_choice.refusal(o.settings, o.trigger.get("_repository"), o.snapshot["issue"])
    if no_agent is not None:  # the issue chose an agent it cannot have: say so, run nothing
        return await finish(o, "failed", no_agent)

    fetched = await fetch_attachments_step(o.issue_id, o.snapshot["issue"])
    o.trigger["_attachments"] = fetched["attachments"]
    for text in fetched["notes"]:
        o.note(text)

    stop = await drain_messages(o)
    if stop is not None:
        o.stopped_by = stop.get("actor_name") or "a user"
        return await finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))

    # Plan (the planner re-asks once on an invalid plan; a second failure ends here).
    planned = await steps.plan_step(
        planning_context(o).model_dump(mode="json"), workflow_id, o.issue_id, o.identifier, 0
    )
    if "error" in planned:
        template = texts.PLANNER_UNAVAILABLE if planned.get("unavailable") else texts.PLAN_FAILED
        key = "reason" if planned.get("unavailable") else "problems"
        log.warning("no plan", error=planned["error"])
        error = (
            texts.for_linear(planned["error"]) if planned.get("unavailable") else planned["error"]
        )
        return await finish(o, "failed", template.format(**{key: error}))
    plan = Plan.model_validate(planned["plan"])
    o.planning_cost = Total.of(planned.get("cost_usd"))
    approved = await _approve(o, plan)
    if isinstance(approved, str):
        return approved
    plan = approved
    await warn_day_once(o)
    o.progress = Progress.start(plan)
    if note := reuse_note(plan, subissues_at_start(o), o.issue_id):
        o.note(note)
    await create_subissues(o, plan.subtasks)
    await publish_plan(o)
    await steps.set_state_step(
        o.issue_id, workflow_id, "working", subtasks_total=len(o.progress.tasks)
    )
    await o.report("working")
    return await execute(o, deadline)


async def _approve(o: Orchestration, plan: Plan) -> Plan | str:
    """The plan to carry out once approved (when the policy asks for approval), or the
    orchestration's end state when it was cancelled, stopped or could not be re-planned."""

    async def replan(author: str, text: str) -> dict[str, Any]:
        o.follow_ups.append(ContextComment(author=author, body=text))
        context = planning_context(o).model_dump(mode="json")
        return await steps.plan_step(
            context, o.workflow_id, o.issue_id, o.identifier, len(o.follow_ups)
        )

    outcome = await approval_flow.seek_approval(
        o,
        plan,
        recv=recv,
        replan=replan,
        available=available_executors(o),
        estimates=estimates_for(o.settings),
    )
    for cost in outcome.planning_costs:
        o.planning_cost = (o.planning_cost or Total()) + Total.of(cost)
    if outcome.stopped_by is not None:
        o.stopped_by = outcome.stopped_by
        return await finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
    if outcome.cancelled_by is not None:
        o.stopped_by = outcome.cancelled_by
        return await finish(o, "stopped", approval.CANCELLED_NOTE.format(author=o.stopped_by))
    if outcome.plan is None:
        return await finish(o, "failed", texts.PLAN_FAILED.format(problems=outcome.error))
    return outcome.plan


def _repository_reply(text: str, known: list[str]) -> str:
    """A reply to the repository question as ``route_repository`` reads it: a selected
    option, or a reply naming exactly one configured id (``"demo please"``), becomes a
    ``[repo=<id>]`` tag; a bare unknown word becomes one too, so the answer says so."""
    if repo_tags(text):
        return text
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9._/-]*", text)
    named = list(dict.fromkeys(w for w in words if w in known))
    if len(named) == 1:
        return f"[repo={named[0]}]"
    return f"[repo={words[0]}]" if len(words) == 1 else text


async def _continue(o: Orchestration, history: dict[str, Any], deadline: float) -> str:
    """Continue finished work with a prompt: answer it, re-open the sub-tasks it names, or
    plan the new work it asks for, then carry on as before."""
    o.progress = Progress.model_validate(history["progress"])
    if history.get("repository"):
        o.trigger["_repository"] = history["repository"]
    o.follow_ups = [ContextComment.model_validate(c) for c in history.get("follow_ups") or []]
    log.info("continuing finished work", previous=o.trigger.get("continue_from"))
    await steps.set_state_step(
        o.issue_id, o.workflow_id, "working", subtasks_total=len(o.progress.tasks)
    )
    budget_reason = await follow_up(o, o.trigger, None)
    await publish_plan(o)
    await o.report("working")
    if budget_reason is not None:
        return await finish(o, "over_budget", texts.BUDGET_BLOCKED.format(reason=budget_reason))
    return await execute(o, deadline)
