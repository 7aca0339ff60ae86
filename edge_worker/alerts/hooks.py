"""What the workflows call when something alert-worthy happens: one line at each site.

Each hook builds the event (its occurrence makes the dedupe key: a day, a workflow id)
and runs :func:`edge_worker.alerts.steps.alert_step`; with no channel configured the step
does nothing. Texts given here are the ones already said on Linear (no secrets, no paths).
"""

from __future__ import annotations

from edge_worker.alerts.events import AlertEvent, AlertKind, budget_event
from edge_worker.alerts.steps import alert_step

SUBTASK_FAILED_REASON = "Its run or verification still failed after the allowed iterations."
ISSUE_FAILED_REASON = "See the report on the issue."


async def day_budget(day: str, detail: str, *, exhausted: bool) -> None:
    """The day budget reached its warn ratio (``exhausted``: its limit) on ``day``."""
    await alert_step(budget_event(day, detail, exhausted=exhausted).as_json())


async def subtask_escalated(name: str, workflow_id: str, note: str | None) -> None:
    """A sub-task ended failed and waits for a human."""
    event = AlertEvent(
        AlertKind.SUBTASK_ESCALATED,
        subject=name,
        occurrence=workflow_id,
        facts={"reason": note or SUBTASK_FAILED_REASON},
    )
    await alert_step(event.as_json())


async def issue_failed(identifier: str, workflow_id: str, message: str | None) -> None:
    """An issue's work ended failed."""
    event = AlertEvent(
        AlertKind.ISSUE_FAILED,
        subject=identifier,
        occurrence=workflow_id,
        facts={"reason": message or ISSUE_FAILED_REASON},
    )
    await alert_step(event.as_json())


def app_revoked_event(workspace: str, occurrence: str) -> AlertEvent:
    """The Linear app was removed from ``workspace`` (``occurrence``: when it was seen)."""
    return AlertEvent(AlertKind.APP_REVOKED, subject=workspace, occurrence=occurrence)
