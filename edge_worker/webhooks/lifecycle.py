"""Install lifecycle webhooks: the agent loses a team, or the app is revoked (sans-I/O).

Linear sends them to the app's webhook (schema: ``AppUserTeamAccessChangedWebhookPayload``
as ``type: "PermissionChange"``, ``action: "teamAccessChanged"``; ``OAuthAppWebhookPayload``
as ``type: "OAuthApp"``, ``action: "revoked"``).

Contract:
- :func:`classify_lifecycle` is a ``stop`` that names no issue but a scope in its context:
  ``{"scope": "teams", "team_ids": [...]}`` when teams were removed from our app user's
  access (work on those teams' issues stops), ``{"scope": "app_revoked", ...}`` when the
  app was revoked (all work stops and new work is refused). A change for another app
  user, or one that only grants access, is ``ignore`` with its reason. The dedupe key is
  the change itself (its creation time and teams), so a redelivery stops nothing twice.
- :func:`lifecycle_scope` reads the scope back from a stored trigger's context.
- :func:`issue_team_id` is the team of the issue a webhook is about, when it says.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from edge_worker.webhooks.decisions import Decision, Kind, Rules, ignore
from edge_worker.webhooks.events import _Tolerant

LIFECYCLE_EVENT_TYPES = frozenset({"PermissionChange", "OAuthApp"})
SCOPE_TEAMS = "teams"
SCOPE_APP_REVOKED = "app_revoked"
SCOPES = frozenset({SCOPE_TEAMS, SCOPE_APP_REVOKED})


class TeamAccessChanged(_Tolerant):
    """``AppUserTeamAccessChangedWebhookPayload`` (``type: "PermissionChange"``)."""

    type: str
    action: str
    appUserId: str | None = None
    oauthClientId: str | None = None
    organizationId: str | None = None
    addedTeamIds: list[str] = []
    removedTeamIds: list[str] = []
    canAccessAllPublicTeams: bool | None = None
    createdAt: str | None = None


class OAuthAppEvent(_Tolerant):
    """``OAuthAppWebhookPayload`` (``type: "OAuthApp"``)."""

    type: str
    action: str
    oauthClientId: str | None = None
    organizationId: str | None = None
    createdAt: str | None = None


def classify_lifecycle(payload: dict[str, Any], rules: Rules) -> Decision:
    """What a ``PermissionChange`` or ``OAuthApp`` webhook asks; see the module contract."""
    event_type = payload.get("type")
    try:
        if event_type == "PermissionChange":
            return _team_access(TeamAccessChanged.model_validate(payload), rules)
        if event_type == "OAuthApp":
            return _oauth_app(OAuthAppEvent.model_validate(payload))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return ignore(f"malformed {event_type} payload: {where}: {first['msg']}")
    return ignore(f"unhandled event type {event_type!r}")


def _team_access(event: TeamAccessChanged, rules: Rules) -> Decision:
    if event.action != "teamAccessChanged":
        return ignore(f"permission change {event.action!r} needs nothing")
    if rules.agent_user_id and event.appUserId and event.appUserId != rules.agent_user_id:
        return ignore("permission change for another app user")
    removed = sorted(set(event.removedTeamIds))
    if not removed:
        return ignore("team access granted; nothing to stop")
    return Decision(
        Kind.STOP,
        f"the agent's access to {len(removed)} team(s) was removed",
        dedupe_key=f"permission:{event.createdAt}:{','.join(removed)}",
        actor_name="a change of the agent's team access",
        context={"scope": SCOPE_TEAMS, "team_ids": removed},
    )


def _oauth_app(event: OAuthAppEvent) -> Decision:
    if event.action != "revoked":
        return ignore(f"OAuth app {event.action!r} needs nothing")
    return Decision(
        Kind.STOP,
        "the Linear app was revoked",
        dedupe_key=f"oauth-app:{event.oauthClientId}:{event.createdAt}:revoked",
        actor_name="the revocation of the Linear app",
        context={
            "scope": SCOPE_APP_REVOKED,
            "oauth_client_id": event.oauthClientId,
            "organization_id": event.organizationId,
        },
    )


def lifecycle_scope(context: Any) -> str | None:
    """The lifecycle scope of a stored trigger's ``context``, or ``None`` for other triggers."""
    scope = context.get("scope") if isinstance(context, dict) else None
    return scope if scope in SCOPES else None


def _team_in(issue: Any) -> str | None:
    if not isinstance(issue, dict):
        return None
    team_id = issue.get("teamId")
    if isinstance(team_id, str) and team_id:
        return team_id
    team = issue.get("team")
    found = team.get("id") if isinstance(team, dict) else None
    return found if isinstance(found, str) and found else None


def _child(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def issue_team_id(payload: dict[str, Any]) -> str | None:
    """The team id of the issue ``payload`` is about, if the payload carries it.

    Plain lookups, not a second validation: intake calls it for every acting delivery.
    """
    event_type = payload.get("type")
    if event_type == "AgentSessionEvent":
        return _team_in(_child(payload, "agentSession").get("issue"))
    if event_type == "AppUserNotification":
        return _team_in(_child(payload, "notification").get("issue"))
    if event_type == "Issue":
        return _team_in(payload.get("data"))
    if event_type == "Comment":
        return _team_in(_child(payload, "data").get("issue"))
    return None
