"""The durable side of install lifecycle webhooks: stop the work they take away.

``handle_lifecycle`` (id ``trigger-<hash of the dedupe key>``, like every stored trigger)
runs for a ``PermissionChange`` that removed teams from the agent's access, and for an
``OAuthApp`` revoked webhook (see ``webhooks/lifecycle.py``):

- teams removed: every issue being worked on whose team (as its stored webhooks said) is
  one of them is sent a stop, as a user's stop would be. An issue whose team is unknown
  is left running and logged.
- app revoked: every issue being worked on is sent a stop. Recording the revocation and
  refusing new work is the dispatcher's (it must happen in delivery order).

The stop reaches each orchestration on its control topic; the orchestration stops its
sub-tasks and ends. Safe to repeat: a second stop to an ended orchestration is unread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.orchestration.workflows import CONTROL_TOPIC
from edge_worker.storage import access
from edge_worker.webhooks.lifecycle import SCOPE_APP_REVOKED, SCOPE_TEAMS, lifecycle_scope

log = structlog.get_logger(__name__)


@DBOS.step()
async def lifecycle_targets_step(scope: str, team_ids: list[str]) -> list[dict[str, str]]:
    """The work a lifecycle change stops: ``[{"issue_id", "workflow_id"}]``."""

    def query() -> list[dict[str, str]]:
        with services.current().engine.connect() as conn:
            active = access.active_work(conn)
            if scope == SCOPE_APP_REVOKED:
                return [{"issue_id": i, "workflow_id": w} for i, w in active]
            teams = access.issue_teams(conn, [issue for issue, _ in active])
        removed = set(team_ids)
        targets = []
        for issue_id, workflow_id in active:
            team = teams.get(issue_id)
            if team is None:
                log.warning("team of an issue in progress unknown; left running", issue=issue_id)
            elif team in removed:
                targets.append({"issue_id": issue_id, "workflow_id": workflow_id})
        return targets

    return await asyncio.to_thread(query)


@DBOS.workflow()
async def handle_lifecycle(trigger: dict[str, Any]) -> str:
    """Stop the work a lifecycle trigger takes away; returns what it did, for the record."""
    context = trigger.get("context") or {}
    scope = lifecycle_scope(context)
    if scope not in (SCOPE_TEAMS, SCOPE_APP_REVOKED):
        return f"not a lifecycle trigger: {trigger.get('reason')}"
    team_ids = [str(t) for t in context.get("team_ids") or []]
    targets = await lifecycle_targets_step(scope, team_ids)
    for target in targets:
        stop = {
            "kind": "stop",
            "reason": trigger.get("reason"),
            "actor_name": trigger.get("actor_name"),
            "issue_id": target["issue_id"],
            "dedupe_key": trigger.get("dedupe_key"),
        }
        await DBOS.send_async(target["workflow_id"], stop, topic=CONTROL_TOPIC)
    log.warning(
        "lifecycle change stops work",
        reason=trigger.get("reason"),
        stopped=[t["issue_id"] for t in targets],
    )
    return f"stopped {len(targets)}"
