"""The Linear stand-in's read side: graphql-core views over :class:`LinearStore` records
and :class:`QueryRoot`, whose methods resolve the root query fields the client uses.

A field the stand-in does not model raises a GraphQL error naming it, instead of
returning invented data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_worker.ids import stable_uuid4
from edge_worker.sandbox.linear_store import (
    AgentActivity,
    AgentSession,
    Attachment,
    Comment,
    Document,
    Info,
    Issue,
    Label,
    LinearStore,
    Organization,
    StandInError,
    Team,
    User,
    WorkflowState,
    iso_time,
    not_found,
)


def connection(items: list[Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """A Linear-style connection over ``items`` honouring ``first`` / ``last``."""
    first, last = args.get("first"), args.get("last")
    if first is not None:
        items = items[: max(0, first)]
    if last is not None:
        items = items[-last:] if last > 0 else []
    return {
        "nodes": items,
        "edges": [{"node": item, "cursor": getattr(item, "id", "")} for item in items],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


class View:
    """Base for views: a field the stand-in does not model is a clear GraphQL error."""

    typename = "?"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        typename = type(self).typename

        def unsupported(*_: Any, **__: Any) -> Any:
            raise StandInError(
                f"the Linear stand-in does not implement {typename}.{name}",
                code="NOT_IMPLEMENTED",
                kind="internal error",
                status=400,
            )

        return unsupported


class OrganizationView(View):
    typename = "Organization"

    def __init__(self, org: Organization) -> None:
        self.id, self.name, self.urlKey = org.id, org.name, org.url_key


class UserView(View):
    typename = "User"

    def __init__(self, store: LinearStore, user: User) -> None:
        self._store = store
        self.id, self.name, self.email, self.app = user.id, user.name, user.email, user.app
        self.displayName = user.name
        self.active = True

    def organization(self, info: Info) -> OrganizationView:
        return OrganizationView(self._store.organization)


class StateView(View):
    typename = "WorkflowState"

    def __init__(self, store: LinearStore, state: WorkflowState) -> None:
        self._store, self._state = store, state
        self.id, self.name, self.type, self.position = (
            state.id,
            state.name,
            state.type,
            state.position,
        )
        self.color = "#bec2c8"

    def team(self, info: Info) -> TeamView:
        return TeamView(self._store, self._store.teams[self._state.team_id])


class TeamView(View):
    typename = "Team"

    def __init__(self, store: LinearStore, team: Team) -> None:
        self._store = store
        self.id, self.key, self.name = team.id, team.key, team.name

    def states(self, info: Info, **args: Any) -> dict[str, Any]:
        views = [StateView(self._store, s) for s in self._store.team_states(self.id)]
        return connection(views, args)


class LabelView(View):
    typename = "IssueLabel"

    def __init__(self, label: Label) -> None:
        self.id, self.name = label.id, label.name
        self.color = "#5e6ad2"


class ProjectView(View):
    typename = "Project"

    def __init__(self, name: str) -> None:
        self.id, self.name = stable_uuid4("sandbox", "project", name), name


class AttachmentView(View):
    typename = "Attachment"

    def __init__(self, attachment: Attachment) -> None:
        self.id, self.title, self.url = attachment.id, attachment.title, attachment.url
        self.subtitle: str | None = None
        self.sourceType: str | None = None
        self.metadata: dict[str, Any] = {}
        self.createdAt = self.updatedAt = iso_time(attachment.created_at)


class CommentView(View):
    typename = "Comment"

    def __init__(self, store: LinearStore, comment: Comment) -> None:
        self._store, self._comment = store, comment
        self.id, self.body = comment.id, comment.body
        self.createdAt, self.updatedAt = iso_time(comment.created_at), iso_time(comment.updated_at)

    def user(self, info: Info) -> UserView | None:
        user = self._store.users.get(self._comment.user_id or "")
        return UserView(self._store, user) if user else None

    def issue(self, info: Info) -> IssueView | None:
        issue = self._store.issues.get(self._comment.issue_id)
        return IssueView(self._store, issue) if issue else None


def _slug_id(document_id: str) -> str:
    return document_id.replace("-", "")[:12]


class DocumentView(View):
    typename = "Document"

    def __init__(self, store: LinearStore, document: Document) -> None:
        self._store, self._document = store, document
        self.id, self.title, self.content = document.id, document.title, document.content
        self.slugId = _slug_id(document.id)
        self.url = f"https://linear.app/{store.organization.url_key}/document/{self.slugId}"
        self.createdAt, self.updatedAt = (
            iso_time(document.created_at),
            iso_time(document.updated_at),
        )

    def creator(self, info: Info) -> UserView | None:
        user = self._store.users.get(self._document.creator_id or "")
        return UserView(self._store, user) if user else None

    def team(self, info: Info) -> TeamView | None:
        team = self._store.teams.get(self._document.team_id or "")
        return TeamView(self._store, team) if team else None

    def issue(self, info: Info) -> IssueView | None:
        issue = self._store.issues.get(self._document.issue_id or "")
        return IssueView(self._store, issue) if issue else None


class IssueView(View):
    typename = "Issue"

    def __init__(self, store: LinearStore, issue: Issue) -> None:
        self._store, self._issue = store, issue
        self.id, self.identifier, self.number = issue.id, issue.identifier, float(issue.number)
        self.title, self.description = issue.title, issue.description
        self.url = store.issue_url(issue)
        self.createdAt, self.updatedAt = iso_time(issue.created_at), iso_time(issue.updated_at)
        self.priority = 0.0

    def team(self, info: Info) -> TeamView:
        return TeamView(self._store, self._store.teams[self._issue.team_id])

    def state(self, info: Info) -> StateView:
        return StateView(self._store, self._store.states[self._issue.state_id])

    def labels(self, info: Info, **args: Any) -> dict[str, Any]:
        labels = [LabelView(self._store.labels[i]) for i in self._issue.label_ids]
        return connection(labels, args)

    def project(self, info: Info) -> ProjectView | None:
        return ProjectView(self._issue.project) if self._issue.project else None

    def parent(self, info: Info) -> IssueView | None:
        parent = self._store.issues.get(self._issue.parent_id or "")
        return IssueView(self._store, parent) if parent else None

    def children(self, info: Info, **args: Any) -> dict[str, Any]:
        children = [IssueView(self._store, c) for c in self._store.children_of(self.id)]
        return connection(children, args)

    def comments(self, info: Info, **args: Any) -> dict[str, Any]:
        comments = [CommentView(self._store, c) for c in self._store.comments_on(self.id)]
        return connection(comments, args)

    def attachments(self, info: Info, **args: Any) -> dict[str, Any]:
        found = [a for a in self._store.attachments.values() if a.issue_id == self.id]
        found.sort(key=lambda attachment: attachment.created_at)
        return connection([AttachmentView(a) for a in found], args)

    def assignee(self, info: Info) -> UserView | None:
        user = self._store.users.get(self._issue.assignee_id or "")
        return UserView(self._store, user) if user else None

    def delegate(self, info: Info) -> UserView | None:
        user = self._store.users.get(self._issue.delegate_id or "")
        return UserView(self._store, user) if user else None


class ActivityView(View):
    typename = "AgentActivity"

    def __init__(self, store: LinearStore, activity: AgentActivity) -> None:
        self._store, self._activity = store, activity
        self.id, self.ephemeral = activity.id, activity.ephemeral
        self.createdAt = self.updatedAt = iso_time(activity.created_at)
        self.signal = activity.signal

    def content(self, info: Info) -> dict[str, Any]:
        content = dict(self._activity.content)
        typename = "AgentActivity" + str(content.get("type", "thought")).title() + "Content"
        return {"__typename": typename, **content}

    def agentSession(self, info: Info) -> SessionView:
        return SessionView(self._store, self._store.sessions[self._activity.session_id])


class SessionView(View):
    typename = "AgentSession"

    def __init__(self, store: LinearStore, session: AgentSession) -> None:
        self._store, self._session = store, session
        self.id, self.status, self.plan = session.id, session.status, session.plan
        self.externalUrls = session.external_urls
        self.createdAt, self.updatedAt = iso_time(session.created_at), iso_time(session.updated_at)

    def issue(self, info: Info) -> IssueView | None:
        issue = self._store.issues.get(self._session.issue_id or "")
        return IssueView(self._store, issue) if issue else None

    def activities(self, info: Info, **args: Any) -> dict[str, Any]:
        views = [ActivityView(self._store, a) for a in self._store.activities_of(self.id)]
        return connection(views, args)


# -- root resolvers ------------------------------------------------------------------------


class QueryRoot(View):
    typename = "Query"

    def __init__(self, store: LinearStore) -> None:
        self._store = store

    def viewer(self, info: Info) -> UserView:
        return UserView(self._store, self._store.users[self._store.viewer_id])

    def issueRepositorySuggestions(
        self,
        info: Info,
        issueId: str,
        candidateRepositories: list[dict[str, Any]],
        agentSessionId: str | None = None,
    ) -> dict[str, Any]:
        """Candidates ranked by how many words of their name the issue's text mentions
        (a stand-in for Linear's model), confidence in [0, 1]."""
        issue = self._store.find_issue(issueId)
        text = f"{issue.title} {issue.description or ''}".lower()
        suggestions = []
        for candidate in candidateRepositories:
            name = candidate["repositoryFullName"]
            words = [w for w in name.lower().replace("/", " ").replace("-", " ").split() if w]
            hits = sum(1 for w in words if w in text)
            suggestions.append(
                {
                    "repositoryFullName": name,
                    "hostname": candidate.get("hostname"),
                    "confidence": hits / len(words) if words else 0.0,
                }
            )
        suggestions.sort(key=lambda s: -float(s["confidence"]))
        return {"suggestions": suggestions}

    def organization(self, info: Info) -> OrganizationView:
        return OrganizationView(self._store.organization)

    def issue(self, info: Info, id: str) -> IssueView:
        return IssueView(self._store, self._store.find_issue(id))

    def team(self, info: Info, id: str) -> TeamView:
        return TeamView(self._store, self._store.find_team(id))

    def teams(
        self, info: Info, filter: dict[str, Any] | None = None, **args: Any
    ) -> dict[str, Any]:
        """Teams, filtered by ``id`` / ``key`` ``eq`` (the only filters the stand-in models)."""
        teams = list(self._store.teams.values())
        for name, comparator in (filter or {}).items():
            if name not in ("id", "key") or set(comparator) != {"eq"}:
                raise StandInError(
                    f"the Linear stand-in does not implement the team filter {name} {comparator}",
                    code="NOT_IMPLEMENTED",
                    kind="internal error",
                )
            teams = [t for t in teams if getattr(t, name) == comparator["eq"]]
        return connection([TeamView(self._store, t) for t in teams], args)

    def document(self, info: Info, id: str) -> DocumentView:
        document = self._store.documents.get(id) or next(
            (d for d in self._store.documents.values() if _slug_id(d.id) == id),
            None,
        )
        if document is None:
            raise not_found("Document")
        return DocumentView(self._store, document)

    def comment(self, info: Info, id: str | None = None, hash: str | None = None) -> CommentView:
        comment = self._store.comments.get(id or "")
        if comment is None:
            raise not_found("Comment")
        return CommentView(self._store, comment)

    def agentActivity(self, info: Info, id: str) -> ActivityView:
        activity = self._store.activities.get(id)
        if activity is None:
            raise not_found("AgentActivity")
        return ActivityView(self._store, activity)

    def agentSession(self, info: Info, id: str) -> SessionView:
        session = self._store.sessions.get(id)
        if session is None:
            raise not_found("AgentSession")
        return SessionView(self._store, session)
