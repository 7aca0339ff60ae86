"""How an issue's orchestration ends: the one terminal update every run makes.

Contract: :func:`finish` records the end state (``done``, ``failed``, ``stopped``,
``over_budget``, ``timed_out``...) with its message: it delivers a per-issue pull request
when the work is done, writes the final report (not after a stop in a session: Linear's
stop signal allows one final activity only), moves the issue to review when it may,
publishes the work's ``history`` event (what a later prompt continues from), gives the
session its final response and marks the work item. Returns the state.
"""

from __future__ import annotations

from typing import Any

import structlog
from dbos import DBOS

from edge_worker.alerts import hooks as alerts
from edge_worker.costs.money import Total
from edge_worker.delivery.issue_steps import deliver_issue
from edge_worker.orchestration import steps, texts
from edge_worker.orchestration.issue_state import Orchestration, adopt_session, publish_plan
from edge_worker.orchestration.workflow_config import CONTROL_TOPIC
from edge_worker.reporting.report import ReportState

log = structlog.get_logger(__name__)


async def finish(o: Orchestration, state: ReportState, message: str | None = None) -> str:
    """End the orchestration in ``state`` with ``message`` noted (see the module's
    contract); returns ``state``."""
    if message:
        o.note(message)
    if state == "failed":
        await alerts.issue_failed(o.identifier or o.issue_id, o.workflow_id, message)
    # After a stop the session gets one final activity and Linear nothing else (Linear's
    # stop signal); in user mode the report is the only place that says it stopped.
    quiet = state == "stopped" and o.session_id is not None
    if state == "done":  # a per-issue policy delivers the whole issue as one pull request
        issue = o.snapshot.get("issue") or {}
        repository = o.trigger.get("_repository")
        undelivered = await deliver_issue(o.progress, repository, issue, o.issue_id, o.identifier)
        if undelivered:
            o.note(undelivered)
    if not quiet:
        await o.report(state)
    if state == "done" and _may_move(o):
        review = o.state_id(name=o.settings.review_state)
        if review:
            await steps.move_issue_step(o.issue_id, review)
    await DBOS.set_event_async("history", _history(o))
    if o.session_id is None:  # a session that came just now still gets the final word
        while (late := await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=0)) is not None:
            if late.get("kind") == "session":
                await adopt_session(o, late)
    if o.session_id:
        if not quiet:
            await publish_plan(o)  # the session's plan shows where every sub-task ended
        passed = sum(
            1 for t in (o.progress.tasks.values() if o.progress else []) if t.status == "passed"
        )
        total = len(o.progress.tasks) if o.progress else 0
        money = await steps.money_step(o.issue_id)
        body = texts.FINAL_RESPONSE.format(
            state=state.replace("_", " ").capitalize(),
            passed=passed,
            total=total,
            total_cost=Total(**money["issue"]).format(),
        )
        if message:
            body += "\n\n" + message
        if o.trigger.get("continue_from"):  # what became of the prompt that continued it
            said = [n for n in o.notes if n != message]
            if said:
                body += "\n\n" + "\n".join(f"- {n}" for n in said)
        await o.say("response" if state in ("done", "stopped") else "error", body, final=quiet)
    await steps.set_state_step(o.issue_id, o.workflow_id, state)
    return state


def _may_move(o: Orchestration) -> bool:
    """Whether the issue may be moved: never out of completed or canceled (Linear's agent
    guidelines), as it stood when the work started."""
    state = (o.snapshot.get("issue") or {}).get("state") or {}
    return state.get("type") not in ("completed", "canceled")


def _history(o: Orchestration) -> dict[str, Any]:
    """What a later prompt to the session continues from: the plan with every sub-task's
    result, the repository and the follow-ups so far."""
    return {
        "progress": o.progress.model_dump(mode="json") if o.progress else None,
        "repository": o.trigger.get("_repository"),
        "follow_ups": [c.model_dump(mode="json") for c in o.follow_ups],
    }
