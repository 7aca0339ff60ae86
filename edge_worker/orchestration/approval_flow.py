"""Plan approval inside an orchestration: ask, wait, remind once, re-plan on ``revise``.

Called by the orchestration workflow between planning and creating sub-issues, so
nothing is created or dispatched before the plan is approved. Deterministic workflow
code: every effect is a step (``say``, ``set_state_step``, the re-plan), every wait a
``DBOS.recv``; a recovered orchestration replays them and asks nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import structlog

from edge_worker import approval_policy
from edge_worker.orchestration import approval, edits, steps
from edge_worker.orchestration.plan import Plan
from edge_worker.orchestration.strategy import ExecutorEstimate
from edge_worker.settings import Settings

log = structlog.get_logger(__name__)

WAIT_AFTER_REMINDER_SECONDS = 7 * 24 * 3600.0
"""After the reminder the issue waits on (in state ``waiting``), re-arming this wait."""


class Orchestration(Protocol):
    """What the flow needs of the orchestration it runs in."""

    issue_id: str
    workflow_id: str
    settings: Settings
    snapshot: dict[str, Any]
    trigger: dict[str, Any]

    async def say(
        self, kind: str, body: str, *, options: list[str] | None = None, final: bool = False
    ) -> None: ...

    def note(self, text: str) -> None: ...

    @property
    def session_id(self) -> str | None: ...

    async def report(self, state: Any) -> None: ...


@dataclass
class Outcome:
    """The approved plan, or why the work ends (``cancelled_by``/``stopped_by``)."""

    plan: Plan | None
    cancelled_by: str | None = None
    stopped_by: str | None = None
    planning_costs: tuple[float | None, ...] = ()
    error: str | None = None


Recv = Callable[[Any, float], Awaitable[dict[str, Any] | None]]
Replan = Callable[[str, str], Awaitable[dict[str, Any]]]


def policy_of(o: Orchestration) -> approval_policy.Policy:
    """The issue's policy: its repository's, its team's, or the default."""
    settings = o.settings.approval
    repo = o.trigger.get("_repository") or {}
    return approval_policy.policy_for(
        settings.default,
        settings.teams,
        team_key=o.snapshot["issue"]["team"]["key"],
        repository=repo.get("approval"),
    )


def estimate_of(
    o: Orchestration, plan: Plan, available: list[str], estimates: dict[str, ExecutorEstimate]
) -> approval.PlanEstimate:
    per_task = o.settings.budget.per_task_usd
    return approval.estimate_plan(
        plan,
        strategy=o.settings.strategy,
        available=available,
        estimates=estimates,
        fallback_to_local=o.settings.fallback_to_local,
        max_iterations=o.settings.max_iterations,
        per_task_limit=Decimal(str(per_task)) if per_task is not None else None,
    )


async def seek_approval(
    o: Orchestration,
    plan: Plan,
    *,
    recv: Recv,
    replan: Replan,
    available: list[str],
    estimates: dict[str, ExecutorEstimate],
) -> Outcome:
    """Ask for approval when the policy wants it; returns the plan to carry out (the last
    one, after any revisions) or why the work ends. Nothing here dispatches anything."""
    policy = policy_of(o)
    costs: list[float | None] = []
    while True:
        estimate = estimate_of(o, plan, available, estimates)
        if not policy.needs_approval(estimate.high):
            return Outcome(plan, planning_costs=tuple(costs))
        await o.say("elicitation", approval.question(estimate), options=list(approval.OPTIONS))
        await steps.set_state_step(o.issue_id, o.workflow_id, "waiting")
        answer = await _answer(o, recv)
        if answer.get("kind") == "stop":
            return Outcome(None, stopped_by=answer["author"], planning_costs=tuple(costs))
        author, reply = answer["author"], answer["reply"]
        if reply.choice == approval.APPROVE:
            o.note(approval.APPROVED_NOTE.format(author=author))
            await steps.set_state_step(o.issue_id, o.workflow_id, "planning")
            return Outcome(plan, planning_costs=tuple(costs))
        if reply.choice == approval.CANCEL:
            return Outcome(None, cancelled_by=author, planning_costs=tuple(costs))
        await o.say("thought", approval.REVISING.format(author=author))
        await steps.set_state_step(o.issue_id, o.workflow_id, "planning")
        planned = await replan(author, reply.text)
        costs.append(planned.get("cost_usd"))
        if "error" in planned:
            return Outcome(None, planning_costs=tuple(costs), error=str(planned["error"]))
        plan = Plan.model_validate(planned["plan"])


async def _answer(o: Orchestration, recv: Recv) -> dict[str, Any]:
    """Wait for an answer: a stop, or an approve/revise-with-text/cancel reply. A refused
    reply is said back and the wait goes on; no answer in time gets one reminder, then the
    issue waits on in ``waiting`` (never dropped)."""
    reminded = False
    timeout = o.settings.approval.remind_after_seconds
    while True:
        message = await recv(o, timeout)
        if message is None:
            if not reminded:
                reminded = True
                log.info("plan approval not answered in time: reminding")
                o.note(approval.WAITING_NOTE)
                await o.say("elicitation", approval.REMINDER, options=list(approval.OPTIONS))
                await steps.set_state_step(o.issue_id, o.workflow_id, "waiting")
                if o.session_id is None:  # in user mode the report is where the state shows
                    await o.report("planning")
            timeout = WAIT_AFTER_REMINDER_SECONDS
            continue
        author = message.get("actor_name") or "a user"
        if message.get("kind") == "stop":
            return {"kind": "stop", "author": author}
        if (edit := edits.edit_of(message)) is not None:  # an edit is not an answer
            edits.apply_to_snapshot(o.snapshot["issue"], edit)
            continue
        if message.get("kind") != "follow_up":
            continue
        reply = approval.read_reply(str(message.get("text") or ""))
        if reply.refusal is not None:
            log.info("approval reply refused", reason=reply.refusal)
            await o.say("thought", reply.refusal)
            continue
        if reply.choice == approval.REVISE and not reply.text:
            await o.say("elicitation", approval.REVISE_WITHOUT_TEXT)
            follow = await _revision_text(o, recv)
            if follow is None:
                continue
            if follow.get("kind") == "stop":
                return {"kind": "stop", "author": follow.get("actor_name") or "a user"}
            text = str(follow.get("text") or "").strip()
            again = approval.read_reply(text)  # "approve" or "cancel" now is that choice
            keep = again.choice in (approval.APPROVE, approval.CANCEL) or bool(again.text)
            reply = again if keep else approval.Reply(approval.REVISE, text)
            author = follow.get("actor_name") or author
        return {"kind": "reply", "author": author, "reply": reply}


async def _revision_text(o: Orchestration, recv: Recv) -> dict[str, Any] | None:
    """The next reply carrying text (what to change), or a stop; ``None`` when none came
    in time (the question is asked again)."""
    while True:
        message = await recv(o, o.settings.approval.remind_after_seconds)
        if message is None or message.get("kind") == "stop":
            return message
        if message.get("kind") == "follow_up" and str(message.get("text") or "").strip():
            return message
