"""Webhook bodies as Linear sends them, for the stand-in, the demo and the tests.

Each builder fills every non-null field of the corresponding webhook type in Linear's
schema (``EntityWebhookPayload`` + ``IssueWebhookPayload``, ``CommentWebhookPayload``,
``AgentSessionEventWebhookPayload``, ``AppUserNotificationWebhookPayload``,
``AppUserTeamAccessChangedWebhookPayload``, ``OAuthAppWebhookPayload``), so a test
that feeds them to the daemon exercises the real shape, not an invented one.
``tests/test_payloads_schema.py`` checks that claim against the schema file.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

ORG_ID = "2c3c9b4e-6f0e-4d0a-9a55-0e0d7f2c1a01"
WEBHOOK_ID = "7f1d2a3b-0c4d-4e5f-8a9b-1c2d3e4f5a6b"
OAUTH_CLIENT_ID = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"


def now_ms() -> float:
    """Current time in ms, as ``webhookTimestamp`` carries it."""
    return time.time() * 1000.0


def iso_time(ts: float | None = None) -> str:
    """``ts`` (default: now) as Linear writes times (``2026-01-01T00:00:00.000Z``)."""
    return _iso(ts)


def _iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(ts if ts is not None else time.time(), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def team(team_id: str = "team-eng", key: str = "ENG", name: str = "Engineering") -> dict[str, Any]:
    """``TeamChildWebhookPayload``."""
    return {"id": team_id, "key": key, "name": name}


def user(user_id: str, name: str = "Ada Lovelace", email: str | None = None) -> dict[str, Any]:
    """``UserChildWebhookPayload``."""
    return {
        "id": user_id,
        "name": name,
        "email": email or f"{user_id}@example.com",
        "url": f"https://linear.app/example/profiles/{user_id}",
        "avatarUrl": None,
    }


def user_actor(user_id: str, name: str = "Ada Lovelace") -> dict[str, Any]:
    """``UserActorWebhookPayload`` (the ``actor`` of entity events)."""
    return {**user(user_id, name), "type": "user"}


def issue_child(
    issue_id: str,
    identifier: str = "ENG-1",
    title: str = "Add a greeting function",
    description: str | None = "Write `greet(name)` returning `Hello, <name>!` with tests.",
    team_payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``IssueWithDescriptionChildWebhookPayload``."""
    team_payload = team_payload or team()
    return {
        "id": issue_id,
        "identifier": identifier,
        "title": title,
        "description": description,
        "url": f"https://linear.app/example/issue/{identifier}",
        "teamId": team_payload["id"],
        "team": team_payload,
    }


def issue_data(
    issue_id: str,
    *,
    identifier: str = "ENG-1",
    title: str = "Add a greeting function",
    description: str | None = "Write `greet(name)` returning `Hello, <name>!` with tests.",
    assignee_id: str | None = None,
    delegate_id: str | None = None,
    state_type: str = "unstarted",
    team_payload: dict[str, Any] | None = None,
    updated_at: str | None = None,
) -> dict[str, Any]:
    """``IssueWebhookPayload`` (the ``data`` of an Issue event)."""
    team_payload = team_payload or team()
    state = {"id": f"state-{state_type}", "name": state_type.title(), "type": state_type}
    created = _iso(time.time() - 3600)
    return {
        "id": issue_id,
        "identifier": identifier,
        "number": float(identifier.rsplit("-", 1)[-1]) if identifier[-1].isdigit() else 1.0,
        "title": title,
        "description": description,
        "url": f"https://linear.app/example/issue/{identifier}",
        "createdAt": created,
        "updatedAt": updated_at or _iso(),
        "teamId": team_payload["id"],
        "team": team_payload,
        "stateId": state["id"],
        "state": {**state, "color": "#bec2c8"},
        "assigneeId": assignee_id,
        "delegateId": delegate_id,
        "labelIds": [],
        "labels": [],
        "previousIdentifiers": [],
        "priority": 0.0,
        "priorityLabel": "No priority",
        "prioritySortOrder": 0.0,
        "sortOrder": 0.0,
        "reactionData": {},
        "subscriberIds": [],
    }


def _entity(
    entity_type: str,
    action: str,
    data: dict[str, Any],
    actor_id: str,
    actor_name: str,
    updated_from: dict[str, Any] | None,
    timestamp_ms: float | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "type": entity_type,
        "actor": user_actor(actor_id, actor_name),
        "createdAt": _iso(),
        "data": data,
        "url": data.get("url"),
        "organizationId": ORG_ID,
        "webhookId": WEBHOOK_ID,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else now_ms(),
    }
    if updated_from is not None:
        payload["updatedFrom"] = updated_from
    return payload


def issue_assigned(
    issue_id: str,
    agent_user_id: str,
    *,
    actor_id: str = "user-human",
    field: str = "assigneeId",
    previous: str | None = None,
    timestamp_ms: float | None = None,
    **issue_fields: Any,
) -> dict[str, Any]:
    """An ``Issue``/``update`` whose assignee (or delegate) changed to the agent."""
    key = "assignee_id" if field == "assigneeId" else "delegate_id"
    fields: dict[str, Any] = {key: agent_user_id, **issue_fields}
    data = issue_data(issue_id, **fields)
    return _entity(
        "Issue", "update", data, actor_id, "Ada Lovelace", {field: previous}, timestamp_ms
    )


def issue_unassigned(
    issue_id: str,
    agent_user_id: str,
    *,
    actor_id: str = "user-human",
    field: str = "assigneeId",
    timestamp_ms: float | None = None,
    **issue_fields: Any,
) -> dict[str, Any]:
    """An ``Issue``/``update`` that takes the issue away from the agent."""
    data = issue_data(issue_id, **issue_fields)
    return _entity(
        "Issue", "update", data, actor_id, "Ada Lovelace", {field: agent_user_id}, timestamp_ms
    )


def issue_edited(
    issue_id: str,
    *,
    previous: dict[str, Any],
    actor_id: str = "user-human",
    timestamp_ms: float | None = None,
    **issue_fields: Any,
) -> dict[str, Any]:
    """An ``Issue``/``update`` of its title and/or description; ``previous`` holds the old
    values (``updatedFrom``), ``issue_fields`` the new ones."""
    data = issue_data(issue_id, **issue_fields)
    return _entity("Issue", "update", data, actor_id, "Ada Lovelace", previous, timestamp_ms)


def guidance_rule(body: str, *, team_payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """``GuidanceRuleWebhookPayload``: workspace guidance, or a team's with ``team_payload``."""
    if team_payload is None:
        return {"body": body, "origin": {"type": "Organization"}}
    team_with_parent = {**team_payload, "displayName": team_payload["name"], "parentId": None}
    return {"body": body, "origin": {"type": "Team", "team": team_with_parent}}


def previous_comment(
    comment_id: str, issue_id: str, body: str, *, user_id: str = "user-human"
) -> dict[str, Any]:
    """``CommentChildWebhookPayload`` (an entry of ``previousComments``)."""
    return {"id": comment_id, "body": body, "issueId": issue_id, "userId": user_id}


def issue_removed(
    issue_id: str, *, actor_id: str = "user-human", timestamp_ms: float | None = None
) -> dict[str, Any]:
    """An ``Issue``/``remove``."""
    return _entity(
        "Issue", "remove", issue_data(issue_id), actor_id, "Ada Lovelace", None, timestamp_ms
    )


def comment_created(
    comment_id: str,
    issue_id: str,
    body: str,
    *,
    user_id: str = "user-human",
    identifier: str = "ENG-1",
    timestamp_ms: float | None = None,
) -> dict[str, Any]:
    """A ``Comment``/``create`` on an issue."""
    issue = issue_child(issue_id, identifier)
    data = {
        "id": comment_id,
        "body": body,
        "createdAt": _iso(),
        "updatedAt": _iso(),
        "issueId": issue_id,
        "issue": {k: issue[k] for k in ("id", "identifier", "title", "url", "teamId", "team")},
        "userId": user_id,
        "user": user(user_id),
        "reactionData": {},
    }
    return _entity("Comment", "create", data, user_id, "Ada Lovelace", None, timestamp_ms)


def _agent_session(
    session_id: str, agent_user_id: str, issue_id: str, creator_id: str, **issue_fields: Any
) -> dict[str, Any]:
    now = _iso()
    return {
        "id": session_id,
        "appUserId": agent_user_id,
        "organizationId": ORG_ID,
        "status": "pending",
        "type": "commentThread",
        "createdAt": now,
        "updatedAt": now,
        "issueId": issue_id,
        "issue": issue_child(issue_id, **issue_fields),
        "creatorId": creator_id,
        "creator": user(creator_id),
        "url": f"https://linear.app/example/agent-session/{session_id}",
    }


def agent_session_created(
    session_id: str,
    issue_id: str,
    agent_user_id: str,
    *,
    creator_id: str = "user-human",
    prompt_context: str = '<issue identifier="ENG-1"><title>Add a greeting</title></issue>',
    timestamp_ms: float | None = None,
    guidance: list[dict[str, Any]] | None = None,
    previous_comments: list[dict[str, Any]] | None = None,
    **issue_fields: Any,
) -> dict[str, Any]:
    """``AgentSessionEvent``/``created``: the agent was delegated or mentioned (in a thread
    with ``previous_comments``, if given)."""
    extra = {"previousComments": previous_comments} if previous_comments else {}
    return {
        **extra,
        "type": "AgentSessionEvent",
        "action": "created",
        "appUserId": agent_user_id,
        "oauthClientId": OAUTH_CLIENT_ID,
        "organizationId": ORG_ID,
        "createdAt": _iso(),
        "webhookId": WEBHOOK_ID,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else now_ms(),
        "agentSession": _agent_session(
            session_id, agent_user_id, issue_id, creator_id, **issue_fields
        ),
        "promptContext": prompt_context,
        "guidance": guidance or [],
    }


def agent_session_prompted(
    session_id: str,
    issue_id: str,
    agent_user_id: str,
    body: str,
    *,
    activity_id: str | None = None,
    user_id: str = "user-human",
    signal: str | None = None,
    timestamp_ms: float | None = None,
    source_comment_id: str | None = None,
) -> dict[str, Any]:
    """``AgentSessionEvent``/``prompted``: a follow-up message, or a stop signal
    (``source_comment_id``: the comment a reply in the session's thread also is)."""
    now = _iso()
    activity = {
        "id": activity_id or str(uuid.uuid4()),
        "agentSessionId": session_id,
        "content": {"type": "prompt", "body": body},
        "createdAt": now,
        "updatedAt": now,
        "userId": user_id,
        "user": user(user_id),
        "signal": signal,
        "sourceCommentId": source_comment_id,
    }
    return {
        "type": "AgentSessionEvent",
        "action": "prompted",
        "appUserId": agent_user_id,
        "oauthClientId": OAUTH_CLIENT_ID,
        "organizationId": ORG_ID,
        "createdAt": now,
        "webhookId": WEBHOOK_ID,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else now_ms(),
        "agentSession": _agent_session(session_id, agent_user_id, issue_id, user_id),
        "agentActivity": activity,
    }


def notification(
    action: str,
    issue_id: str,
    agent_user_id: str,
    *,
    actor_id: str = "user-human",
    notification_id: str | None = None,
    timestamp_ms: float | None = None,
) -> dict[str, Any]:
    """``AppUserNotification`` (``issueAssignedToYou`` / ``issueUnassignedFromYou``)."""
    now = _iso()
    return {
        "type": "AppUserNotification",
        "action": action,
        "appUserId": agent_user_id,
        "oauthClientId": OAUTH_CLIENT_ID,
        "organizationId": ORG_ID,
        "createdAt": now,
        "webhookId": WEBHOOK_ID,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else now_ms(),
        "notification": {
            "id": notification_id or str(uuid.uuid4()),
            "type": action,
            "createdAt": now,
            "updatedAt": now,
            "issueId": issue_id,
            "issue": issue_child(issue_id),
            "actorId": actor_id,
            "actor": user(actor_id),
            "userId": agent_user_id,
        },
    }


def permission_change(
    agent_user_id: str,
    *,
    added_team_ids: list[str] | None = None,
    removed_team_ids: list[str] | None = None,
    all_public_teams: bool = False,
    timestamp_ms: float | None = None,
) -> dict[str, Any]:
    """``PermissionChange``/``teamAccessChanged`` (``AppUserTeamAccessChangedWebhookPayload``):
    teams added to or removed from the app user's access."""
    return {
        "type": "PermissionChange",
        "action": "teamAccessChanged",
        "appUserId": agent_user_id,
        "oauthClientId": OAUTH_CLIENT_ID,
        "organizationId": ORG_ID,
        "addedTeamIds": list(added_team_ids or []),
        "removedTeamIds": list(removed_team_ids or []),
        "canAccessAllPublicTeams": all_public_teams,
        "createdAt": _iso(),
        "webhookId": WEBHOOK_ID,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else now_ms(),
    }


def oauth_app_revoked(
    oauth_client_id: str = OAUTH_CLIENT_ID, *, timestamp_ms: float | None = None
) -> dict[str, Any]:
    """``OAuthApp``/``revoked`` (``OAuthAppWebhookPayload``): the app was revoked."""
    return {
        "type": "OAuthApp",
        "action": "revoked",
        "oauthClientId": oauth_client_id,
        "organizationId": ORG_ID,
        "createdAt": _iso(),
        "webhookId": WEBHOOK_ID,
        "webhookTimestamp": timestamp_ms if timestamp_ms is not None else now_ms(),
    }
