"""Pydantic models of the Linear webhook payloads the daemon acts on.

They follow the webhook types in Linear's schema (``EntityWebhookPayload``,
``IssueWebhookPayload``, ``CommentWebhookPayload``, ``AgentSessionEventWebhookPayload``,
``AgentSessionWebhookPayload``, ``AgentActivityWebhookPayload``,
``AppUserNotificationWebhookPayload``) but declare only the fields we read, all optional
where a partial payload should still classify, and ignore unknown fields: Linear adds
fields without notice and an unknown field must never turn a delivery into an error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TeamRef(_Tolerant):
    """``TeamChildWebhookPayload``."""

    id: str | None = None
    key: str | None = None
    name: str | None = None


class UserRef(_Tolerant):
    """``UserChildWebhookPayload`` / ``UserActorWebhookPayload``."""

    id: str | None = None
    name: str | None = None
    email: str | None = None
    type: str | None = None


class StateRef(_Tolerant):
    """``WorkflowStateChildWebhookPayload``."""

    id: str | None = None
    name: str | None = None
    type: str | None = None


class IssueRef(_Tolerant):
    """``IssueWithDescriptionChildWebhookPayload`` / ``IssueChildWebhookPayload``."""

    id: str | None = None
    identifier: str | None = None
    title: str | None = None
    description: str | None = None
    url: str | None = None
    teamId: str | None = None
    team: TeamRef | None = None


class IssueData(IssueRef):
    """``IssueWebhookPayload``: the ``data`` of an ``Issue`` entity event."""

    assigneeId: str | None = None
    delegateId: str | None = None
    state: StateRef | None = None
    stateId: str | None = None
    updatedAt: str | None = None
    parentId: str | None = None


class CommentData(_Tolerant):
    """``CommentWebhookPayload``: the ``data`` of a ``Comment`` entity event."""

    id: str | None = None
    body: str | None = None
    issueId: str | None = None
    issue: IssueRef | None = None
    userId: str | None = None
    user: UserRef | None = None
    botActor: Any = None


class EntityEvent(_Tolerant):
    """``EntityWebhookPayload``: ``Issue``, ``Comment`` and other data-change events."""

    type: str
    action: str
    actor: UserRef | None = None
    data: dict[str, Any] = {}
    updatedFrom: dict[str, Any] | None = None
    url: str | None = None
    organizationId: str | None = None
    webhookId: str | None = None
    webhookTimestamp: float | None = None


class AgentActivity(_Tolerant):
    """``AgentActivityWebhookPayload``."""

    id: str | None = None
    agentSessionId: str | None = None
    content: dict[str, Any] = {}
    body: str | None = None
    signal: str | None = None
    userId: str | None = None
    user: UserRef | None = None
    sourceCommentId: str | None = None


class AgentSession(_Tolerant):
    """``AgentSessionWebhookPayload``."""

    id: str
    appUserId: str | None = None
    issueId: str | None = None
    issue: IssueRef | None = None
    creatorId: str | None = None
    creator: UserRef | None = None
    commentId: str | None = None
    url: str | None = None


class PreviousComment(_Tolerant):
    """``CommentChildWebhookPayload``: a comment of the thread a session started in."""

    id: str | None = None
    body: str | None = None
    userId: str | None = None
    issueId: str | None = None


class AgentSessionEvent(_Tolerant):
    """``AgentSessionEventWebhookPayload``: ``created`` and ``prompted``."""

    type: str
    action: str
    appUserId: str | None = None
    agentSession: AgentSession
    agentActivity: AgentActivity | None = None
    promptContext: str | None = None
    guidance: list[dict[str, Any]] | None = None
    previousComments: list[PreviousComment] | None = None
    organizationId: str | None = None
    webhookTimestamp: float | None = None


class Notification(_Tolerant):
    """The notification union members we read (issue assigned / unassigned)."""

    id: str | None = None
    type: str | None = None
    issueId: str | None = None
    issue: IssueRef | None = None
    actorId: str | None = None
    actor: UserRef | None = None
    userId: str | None = None


class AppUserNotification(_Tolerant):
    """``AppUserNotificationWebhookPayload``."""

    type: str
    action: str
    appUserId: str | None = None
    notification: Notification
    organizationId: str | None = None
    webhookTimestamp: float | None = None
