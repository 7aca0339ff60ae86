"""The execution loop of an issue's orchestration: from the approved plan to its end state.

Contract: :func:`execute` dispatches ready sub-tasks in dependency order within the
parallelism and budget limits, skips those whose dependencies failed, and reacts to
control messages (sub-task outcomes, stop, edits, follow-ups, budget answers) until every
sub-task has ended, the issue's deadline passes, a stop arrives or the budget ends it.
It returns the orchestration's end state (always through :func:`issue_finish.finish`).
"""

from __future__ import annotations

import structlog

from edge_worker.costs.budget import DAILY_BUDGET_REACHED, is_continue_reply
from edge_worker.orchestration import edits, steps, texts
from edge_worker.orchestration.budget_waits import (
    ask_budget,
    end_day_blocked,
    end_over_budget,
    warn_day_once,
)
from edge_worker.orchestration.follow_ups import REOPENABLE
from edge_worker.orchestration.issue_dispatch import (
    apply_outcome,
    dispatch_subtask,
    reopen,
    stop_children,
)
from edge_worker.orchestration.issue_finish import finish
from edge_worker.orchestration.issue_messages import follow_up, issue_edited, show_progress
from edge_worker.orchestration.issue_state import Orchestration, recv
from edge_worker.orchestration.progress import blocked, overall_state, ready
from edge_worker.orchestration.workflow_config import POLL_SECONDS

log = structlog.get_logger(__name__)


async def execute(o: Orchestration, deadline: float) -> str:
    """Run the plan's sub-tasks until the issue ends (see the module's contract); returns
    its end state. ``deadline`` is the issue's timeout on the steps' clock."""
    assert o.progress is not None
    budget_reason: str | None = None
    asked_budget = False
    while True:
        for subtask, reason in blocked(o.progress):
            record = o.progress.tasks[subtask.key]
            record.status, record.note = "skipped", reason
        if budget_reason is None:
            for subtask in ready(o.progress):
                if len(o.progress.running()) >= o.settings.max_parallel:
                    break
                budget_reason = await dispatch_subtask(o, subtask)
                if budget_reason is not None:
                    break
        if o.progress.finished():
            break
        if budget_reason == DAILY_BUDGET_REACHED and not o.progress.running():
            return await end_day_blocked(o)
        if budget_reason is not None and not o.progress.running():
            if asked_budget:
                return await end_over_budget(o, budget_reason)
            asked_budget = True
            message = await ask_budget(o, budget_reason)
        else:
            now = await steps.now_step()
            if now >= deadline:
                await stop_children(o, "timed_out")
                limit = f"{o.settings.issue_timeout_seconds:.0f}s"
                return await finish(o, "timed_out", texts.TIMED_OUT.format(limit=limit))
            message = await recv(o, min(POLL_SECONDS, max(1.0, deadline - now)))
        if message is None:
            continue
        if message.get("type") == "subtask_done":
            ended = apply_outcome(o, message)
            if ended is not None and ended.feedback and ended.status in REOPENABLE:
                await reopen(o, ended)  # a follow-up came while it ran
            await show_progress(o)
            await warn_day_once(o)
        elif message.get("kind") == "stop":
            o.stopped_by = message.get("actor_name") or "a user"
            await stop_children(o, "cancelled")
            return await finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
        elif (edit := edits.edit_of(message)) is not None:
            budget_reason = await issue_edited(o, edit, message, budget_reason)
            asked_budget = False  # an edit is no answer to a budget question: ask again
        elif (
            message.get("kind") == "follow_up"
            and budget_reason is not None
            and (message.get("text") or "").strip().strip("`").lower() == texts.BUDGET_OPTIONS[1]
        ):  # "stop" chosen at the budget question: end over budget, as a second refusal does
            return await end_over_budget(o, budget_reason)
        elif message.get("kind") == "follow_up":
            was_blocked = budget_reason is not None
            budget_reason = await follow_up(o, message, budget_reason)
            if budget_reason is None or not is_continue_reply(message.get("text") or ""):
                asked_budget = False  # ask again rather than end on an unrelated reply
            elif was_blocked:
                asked_budget = True
    state = overall_state(o.progress)
    failed = [t for t in o.progress.tasks.values() if t.status == "failed"]
    message_text = None
    if failed:
        names = ", ".join(t.identifier or t.key for t in failed)
        message_text = texts.ASK_HUMAN.format(failed=len(failed), names=names)
    return await finish(o, state, message_text)
