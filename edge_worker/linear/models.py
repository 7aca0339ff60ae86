"""Typed results of the Linear operations in ``operations.graphql``.

Contract: each ``from_graphql`` takes the JSON object Linear returned for the matching
selection in ``operations.graphql`` and returns a frozen pydantic model; connections
(``{"nodes": [...]}``) become plain lists. A response that does not have the selected
shape raises :class:`pydantic.ValidationError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ActivityType = Literal["thought", "action", "elicitation", "response", "error"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


def _nodes(connection: Any) -> list[Any]:
    if not isinstance(connection, dict):
        return []
    nodes = connection.get("nodes")
    return list(nodes) if isinstance(nodes, list) else []


class Viewer(_Model):
    """The user our token acts as, and its organisation."""

    id: str
    name: str
    organization_id: str

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> Viewer:
        return cls(id=data["id"], name=data["name"], organization_id=data["organization"]["id"])


class TeamRef(_Model):
    id: str
    key: str
    name: str


class StateRef(_Model):
    id: str
    name: str
    type: str


class WorkflowState(_Model):
    """One workflow state of a team; ``type`` is backlog, unstarted, started, completed,
    canceled (or triage)."""

    id: str
    name: str
    type: str
    position: float


class ParentRef(_Model):
    id: str
    identifier: str


class ChildIssue(_Model):
    id: str
    identifier: str
    title: str
    state: StateRef
    url: str | None = None
    description: str | None = None


class Attachment(_Model):
    """A Linear attachment of an issue: a titled link (often to an upload)."""

    id: str
    title: str
    url: str


class Comment(_Model):
    """A comment; ``user_id`` is ``None`` for comments written by integrations."""

    id: str
    body: str
    user_id: str | None
    created_at: datetime

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> Comment:
        user = data.get("user")
        return cls(
            id=data["id"],
            body=data["body"],
            user_id=user.get("id") if isinstance(user, dict) else None,
            created_at=data["createdAt"],
        )


class Document(_Model):
    """A Linear document; ``content`` is markdown, ``team_id`` its team if it has one."""

    id: str
    title: str
    content: str | None
    url: str
    team_id: str | None

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> Document:
        team = data.get("team")
        return cls(
            id=data["id"],
            title=data["title"],
            content=data.get("content"),
            url=data["url"],
            team_id=team.get("id") if isinstance(team, dict) else None,
        )


class IssueRef(_Model):
    """Enough of an issue to link to it."""

    id: str
    identifier: str
    title: str
    url: str

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> IssueRef:
        return cls.model_validate(data)


class Issue(_Model):
    """An issue with the context the planner needs. ``comments`` are oldest first."""

    id: str
    identifier: str
    title: str
    description: str | None
    url: str
    team: TeamRef
    state: StateRef
    labels: list[str]
    project: str | None
    parent: ParentRef | None
    children: list[ChildIssue]
    comments: list[Comment]
    attachments: list[Attachment] = []
    delegate_id: str | None = None

    @classmethod
    def from_graphql(cls, data: dict[str, Any]) -> Issue:
        project = data.get("project")
        comments = [Comment.from_graphql(node) for node in _nodes(data.get("comments"))]
        return cls(
            id=data["id"],
            identifier=data["identifier"],
            title=data["title"],
            description=data.get("description"),
            url=data["url"],
            team=data["team"],
            state=data["state"],
            labels=[node["name"] for node in _nodes(data.get("labels"))],
            project=project.get("name") if isinstance(project, dict) else None,
            parent=data.get("parent"),
            children=_nodes(data.get("children")),
            comments=sorted(comments, key=lambda comment: comment.created_at),
            attachments=_nodes(data.get("attachments")),
            delegate_id=(data.get("delegate") or {}).get("id"),
        )


class ExternalUrl(_Model):
    """A link shown on an agent session (``AgentSessionExternalUrlInput``)."""

    label: str
    url: str


class PlanStep(_Model):
    """One step of an agent session's plan as Linear displays it."""

    content: str
    status: Literal["pending", "inProgress", "completed", "canceled"]
