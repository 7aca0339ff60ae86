"""Budget limits as the orchestration meets them: the day's warning, blocks and waits.

Contract:
- ``warn_day_budget`` (id ``budget-day-warning-<day>``, :data:`DAY_WARNING_WORKFLOW`) says
  once per day, across issues and restarts, that today's spend reached the warning ratio;
  :func:`warn_day_once` starts it when an orchestration sees the threshold crossed.
- :func:`ask_budget` asks in the session whether to go on past a budget block and waits
  up to ``BUDGET_WAIT_SECONDS`` for the answer; :func:`end_over_budget` and
  :func:`end_day_blocked` end the issue ``over_budget`` with its pending sub-tasks.
"""

from __future__ import annotations

from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker.alerts import hooks as alerts
from edge_worker.costs.budget import DAILY_BUDGET_REACHED, DAY_WARNING_TEXT, Threshold, threshold_of
from edge_worker.costs.money import Total, format_usd
from edge_worker.ids import stable_uuid4
from edge_worker.orchestration import steps, texts
from edge_worker.orchestration.issue_finish import finish
from edge_worker.orchestration.issue_state import Orchestration, recv
from edge_worker.orchestration.workflow_config import BUDGET_WAIT_SECONDS

log = structlog.get_logger(__name__)

DAY_WARNING_WORKFLOW = "budget-day-warning-{day}"


@DBOS.workflow()
async def warn_day_budget(issue_id: str, day: str, text: str) -> None:
    """Say that today's spend reached the warning ratio: one log line and one comment.

    Started with the id ``budget-day-warning-<day>`` by every orchestration that sees the
    threshold crossed; DBOS runs a workflow id once, so the day is warned about once,
    across issues and restarts.
    """
    log.warning("daily budget warning", day=day, message=text)
    await steps.comment_step(issue_id, stable_uuid4("budget-day-warning", day), text)
    await alerts.day_budget(day, text, exhausted=False)


async def warn_day_once(o: Orchestration) -> None:
    """Warn (once per day, whichever issue gets there first) when today's spend reaches
    the warning ratio of the daily limit."""
    if o.limits.per_day is None:
        return
    money = await steps.money_step(o.issue_id)
    day, spent = str(money["today"]), Total(**money["day"]).usd
    if day in o.day_warned:
        return
    if threshold_of(spent, o.limits.per_day, o.limits.warn_ratio) < Threshold.WARNING:
        return
    o.day_warned.add(day)
    text = DAY_WARNING_TEXT.format(
        spent=format_usd(spent),
        limit=format_usd(o.limits.per_day),
        percent=int(spent * 100 / o.limits.per_day),
    )
    with SetWorkflowID(DAY_WARNING_WORKFLOW.format(day=day)):
        await DBOS.start_workflow_async(warn_day_budget, o.issue_id, day, text)


async def ask_budget(o: Orchestration, reason: str) -> dict[str, Any] | None:
    """Note the budget block in the report and ask in the session whether to go on; the
    reply (a control message, see :func:`issue_state.recv`) or ``None`` after
    ``BUDGET_WAIT_SECONDS``."""
    o.note(texts.BUDGET_BLOCKED.format(reason=reason))
    await o.report("over_budget")
    await o.say(
        "elicitation",
        texts.BUDGET_ELICITATION.format(reason=reason),
        options=list(texts.BUDGET_OPTIONS),
    )
    return await recv(o, BUDGET_WAIT_SECONDS)


async def end_over_budget(o: Orchestration, reason: str) -> str:
    """End the issue ``over_budget`` for ``reason``: its pending sub-tasks never start."""
    assert o.progress is not None
    for record in o.progress.tasks.values():
        if record.status == "pending":
            record.status = "over_budget"
    return await finish(o, "over_budget", texts.BUDGET_BLOCKED.format(reason=reason))


async def end_day_blocked(o: Orchestration) -> str:
    """End the issue ``over_budget`` because the daily budget is spent: its pending
    sub-tasks say so, and the day's alert is raised."""
    assert o.progress is not None
    for record in o.progress.tasks.values():
        if record.status == "pending":
            record.status, record.note = "over_budget", DAILY_BUDGET_REACHED
    today = str((await steps.money_step(o.issue_id))["today"])
    await alerts.day_budget(today, texts.DAY_BLOCKED, exhausted=True)
    return await finish(o, "over_budget", texts.DAY_BLOCKED)
