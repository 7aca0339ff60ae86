"""Messages an issue's orchestration reacts to while its sub-tasks run.

Contract:
- :func:`follow_up` handles a follow-up: a ``continue`` reply raises a blocked budget
  once; a comment naming sub-tasks is feedback to them (a finished one runs again, a
  running or pending one gets it on its next run); anything else is planned again
  (answered, or new sub-tasks added). Returns the budget block that remains.
- :func:`issue_edited` applies an edit of the issue: acknowledged, sent to running
  sub-tasks for their next iteration, kept for pending ones, and re-planned.
- :func:`show_progress` updates the report and the session plan after a sub-task ended,
  sparingly (a wave finished, or ``PROGRESS_UPDATE_SECONDS`` passed).
"""

from __future__ import annotations

from typing import Any

import structlog
from dbos import DBOS

from edge_worker.costs.budget import is_continue_reply
from edge_worker.costs.money import format_usd
from edge_worker.orchestration import edits, steps, texts
from edge_worker.orchestration.context import Comment as ContextComment
from edge_worker.orchestration.follow_ups import REOPENABLE, Named, named_subtasks
from edge_worker.orchestration.issue_dispatch import create_subissues, reopen
from edge_worker.orchestration.issue_state import Orchestration, planning_context, publish_plan
from edge_worker.orchestration.plan import Plan
from edge_worker.orchestration.workflow_config import PROGRESS_UPDATE_SECONDS, STATUS_WORDS

log = structlog.get_logger(__name__)


async def _feedback_to_subtasks(o: Orchestration, keys: list[str], author: str, text: str) -> None:
    """Give a follow-up to the sub-tasks it names: a finished one runs again with it, a
    running one gets it when its run ends, a pending one when it starts."""
    assert o.progress is not None
    for key in keys:
        record = o.progress.tasks[key]
        record.feedback.append(texts.FOLLOW_UP_ENTRY.format(author=author, text=text))
        name = f"`{record.identifier or key}`"
        if record.status in REOPENABLE:
            await reopen(o, record)
            o.note(texts.FOLLOW_UP_RERUN.format(author=author, name=name))
        elif record.status == "running":
            o.note(texts.FOLLOW_UP_AFTER_RUN.format(author=author, name=name))
        elif record.status == "pending":
            o.note(texts.FOLLOW_UP_AT_START.format(author=author, name=name))
        else:
            status = STATUS_WORDS.get(record.status, record.status)
            o.note(texts.FOLLOW_UP_KEPT.format(author=author, name=name, status=status))


async def follow_up(
    o: Orchestration,
    message: dict[str, Any],
    budget_reason: str | None,
    *,
    replan_only: bool = False,
) -> str | None:
    """Handle a follow-up during execution; returns the budget block that remains.

    ``replan_only``: the text is for the planner only (an edit of the issue), never a
    ``continue`` reply nor feedback to the sub-tasks it happens to name.
    """
    assert o.progress is not None
    text = message.get("text") or ""
    author = message.get("actor_name") or "a user"
    if budget_reason and not replan_only and is_continue_reply(text):
        if o.budget.raised or o.budget.limit is None:
            o.notes.append(texts.BUDGET_ALREADY_RAISED.format(author=author))
            return budget_reason  # raised once already: the issue ends over budget
        o.budget = o.budget.continue_once(o.limits)
        blocked = texts.BUDGET_BLOCKED.format(reason=budget_reason)
        o.notes = [n for n in o.notes if n != blocked]
        limit = format_usd(o.budget.limit) if o.budget.limit is not None else "none"
        o.notes.append(texts.BUDGET_RAISED.format(author=author, limit=limit))
        return None
    tasks = [Named(t.key, t.identifier) for t in o.progress.tasks.values()]
    named = [] if replan_only else named_subtasks(text, tasks)
    if named:  # feedback to those sub-tasks, not a request to re-plan
        await _feedback_to_subtasks(o, named, author, text)
        if budget_reason:
            o.note(texts.FOLLOW_UP_WHILE_BLOCKED.format(author=author))
        return budget_reason
    o.follow_ups.append(ContextComment(author=author, body=text))
    if budget_reason:  # planning again would spend money the budget does not allow
        o.notes.append(texts.FOLLOW_UP_WHILE_BLOCKED.format(author=author))
        return budget_reason
    round_ = len(o.follow_ups)
    planned = await steps.plan_step(
        planning_context(o).model_dump(mode="json"), o.workflow_id, o.issue_id, o.identifier, round_
    )
    if "error" in planned:
        log.warning("follow-up not planned", error=planned["error"])
        reason = texts.for_linear(planned["error"])
        o.notes.append(f"Follow-up from {author} could not be planned: {reason}")
        return budget_reason
    new_plan = Plan.model_validate(planned["plan"])
    if new_plan.answer:  # a question: answered now, and again in the final response
        answer = texts.FOLLOW_UP_ANSWERED.format(author=author, answer=new_plan.answer)
        await o.say("thought", answer)
        o.notes.append(answer)
    known = set(o.progress.tasks)
    fresh = [s for s in new_plan.subtasks if s.key not in known]
    keys = known | {s.key for s in fresh}
    fresh = [
        s.model_copy(update={"depends_on": [d for d in s.depends_on if d in keys]}) for s in fresh
    ]
    fresh = fresh[: max(0, o.settings.max_subtasks * 2 - len(known))]  # bounded fan-out
    added = o.progress.add(fresh)
    if added:
        await create_subissues(o, added)
        o.notes.append(
            texts.FOLLOW_UP_ADDED.format(
                author=author, count=len(added), keys=", ".join(f"`{s.key}`" for s in added)
            )
        )
        await publish_plan(o)
    elif not new_plan.answer:
        o.notes.append(texts.FOLLOW_UP_NOTED.format(author=author))
    return budget_reason


async def issue_edited(
    o: Orchestration, edit: edits.IssueEdit, message: dict[str, Any], budget_reason: str | None
) -> str | None:
    """An edit of the issue during execution: say it was seen, tell the running sub-tasks
    (for their next iteration) and the pending ones, and re-plan what remains."""
    assert o.progress is not None
    edits.apply_to_snapshot(o.snapshot["issue"], edit)
    author = message.get("actor_name") or "a user"
    await o.say("thought", edits.acknowledgement(edit))
    o.note(edits.EDIT_NOTE.format(fields=edit.fields_text, author=author))
    text = edits.feedback(edit)
    for record in o.progress.tasks.values():
        if record.status == "running" and record.workflow_id is not None:
            await DBOS.send_async(record.workflow_id, {"text": text}, topic=edits.EDIT_TOPIC)
        elif record.status == "pending":
            record.feedback.append(text)
    return await follow_up(o, {**message, "text": text}, budget_reason, replan_only=True)


async def show_progress(o: Orchestration) -> None:
    """Update the report and the session plan after a sub-task ended, sparingly.

    Each sub-issue already carries its own result, so the parent's report is edited when a
    wave of parallel work has ended (nothing left running) or when the last edit is older
    than ``PROGRESS_UPDATE_SECONDS``; the final report follows the last sub-task anyway.
    This is what keeps a five-sub-issue issue within its Linear request budget.
    """
    assert o.progress is not None
    if o.progress.finished():
        return
    now = await steps.now_step()
    if o.progress.running() and now - o.last_progress_update < PROGRESS_UPDATE_SECONDS:
        return
    o.last_progress_update = now
    await o.report("working")
    await publish_plan(o)
