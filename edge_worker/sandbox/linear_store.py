"""In-memory Linear data and the GraphQL resolvers the stand-in executes against it.

Contract:
- :class:`LinearStore` holds an organisation, teams with workflow states, users (a human
  and the agent app user), labels, issues (with ``ENG-1`` style identifiers, parents,
  children, labels), comments, documents, agent sessions and their activities. Seeding
  helpers create data the way Linear would (identifiers, default states, timestamps).
- :class:`QueryRoot` and :class:`MutationRoot` are graphql-core root values: their
  methods resolve the root fields the Linear client uses. Objects are exposed through
  small view classes; a field the stand-in does not model raises a GraphQL error naming
  it, instead of returning invented data.
- Mutations check what Linear checks: referenced entities exist, client-chosen ids are
  UUID v4 and unique, bodies are not empty, activity content is well formed, only the
  author edits a comment. Refusals raise :class:`StandInError`, shaped like Linear's
  errors (``extensions.code``, ``type``, ``userPresentableMessage``).
- Not thread-safe by itself: the HTTP layer serialises access with a lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graphql import GraphQLResolveInfo

from edge_worker.ids import stable_uuid4

Clock = Callable[[], float]
Info = GraphQLResolveInfo[Any]

STATE_TEMPLATE: tuple[tuple[str, str], ...] = (
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("In Review", "started"),
    ("Done", "completed"),
    ("Canceled", "canceled"),
)
ACTIVITY_TYPES = frozenset({"thought", "action", "elicitation", "response", "error", "prompt"})
AGENT_WRITABLE_TYPES = ACTIVITY_TYPES - {"prompt"}
EPHEMERAL_TYPES = frozenset({"thought", "action"})


class StandInError(Exception):
    """A refusal Linear would answer with a GraphQL error."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "INVALID_INPUT",
        kind: str = "invalid input",
        user_message: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.extensions = {
            "code": code,
            "type": kind,
            "statusCode": status,
            "userError": True,
            "userPresentableMessage": user_message or message,
        }
        self.status = status


def not_found(entity: str) -> StandInError:
    return StandInError(
        f"Entity not found: {entity}", user_message=f"Could not find referenced {entity}."
    )


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return parsed.version == 4 and str(parsed) == value.lower()


@dataclass
class Organization:
    id: str
    name: str
    url_key: str


@dataclass
class User:
    id: str
    name: str
    email: str
    app: bool = False


@dataclass
class WorkflowState:
    id: str
    name: str
    type: str
    position: float
    team_id: str


@dataclass
class Team:
    id: str
    key: str
    name: str
    issue_count: int = 0


@dataclass
class Label:
    id: str
    name: str
    team_id: str | None = None


@dataclass
class Issue:
    id: str
    identifier: str
    number: int
    title: str
    description: str | None
    team_id: str
    state_id: str
    created_at: float
    updated_at: float
    creator_id: str | None = None
    parent_id: str | None = None
    label_ids: list[str] = field(default_factory=list)
    project: str | None = None
    assignee_id: str | None = None
    delegate_id: str | None = None


@dataclass
class Comment:
    id: str
    issue_id: str
    body: str
    user_id: str | None
    created_at: float
    updated_at: float


@dataclass
class Document:
    """A document in a team and/or on an issue; ``content`` is markdown."""

    id: str
    title: str
    content: str | None
    team_id: str | None
    issue_id: str | None
    creator_id: str | None
    created_at: float
    updated_at: float


@dataclass
class Attachment:
    id: str
    issue_id: str
    title: str
    url: str
    created_at: float


@dataclass
class Upload:
    """A file uploaded to Linear, served at its path to an authorised request."""

    content: bytes
    media_type: str


@dataclass
class AgentActivity:
    id: str
    session_id: str
    content: dict[str, Any]
    ephemeral: bool
    created_at: float
    user_id: str | None = None
    signal: str | None = None
    signal_metadata: dict[str, Any] | None = None
    status_after: str | None = None
    """The session's status right after this activity (Linear's state rules)."""


@dataclass
class AgentSession:
    id: str
    issue_id: str | None
    app_user_id: str
    creator_id: str | None
    created_at: float
    updated_at: float
    status: str = "pending"
    external_urls: list[dict[str, str]] = field(default_factory=list)
    plan: Any = None


class LinearStore:
    """Linear's data for one organisation, in memory; see the module contract."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.organization = Organization(
            id=stable_uuid4("sandbox", "organization"), name="Example", url_key="example"
        )
        self.users: dict[str, User] = {}
        self.teams: dict[str, Team] = {}
        self.states: dict[str, WorkflowState] = {}
        self.labels: dict[str, Label] = {}
        self.issues: dict[str, Issue] = {}
        self.comments: dict[str, Comment] = {}
        self.documents: dict[str, Document] = {}
        self.sessions: dict[str, AgentSession] = {}
        self.activities: dict[str, AgentActivity] = {}
        self.attachments: dict[str, Attachment] = {}
        self.uploads: dict[str, Upload] = {}
        self.human = self.add_user("Ada Lovelace", user_id=stable_uuid4("sandbox", "user", "human"))
        self.agent = self.add_user(
            "edge-worker", user_id=stable_uuid4("sandbox", "user", "agent"), app=True
        )
        self.viewer_id = self.agent.id
        self.team = self.add_team("ENG", "Engineering")

    # -- seeding -----------------------------------------------------------------------

    def add_user(self, name: str, *, user_id: str | None = None, app: bool = False) -> User:
        user_id = user_id or str(uuid.uuid4())
        slug = name.lower().replace(" ", ".")
        user = User(id=user_id, name=name, email=f"{slug}@example.com", app=app)
        self.users[user.id] = user
        return user

    def add_team(self, key: str, name: str, *, team_id: str | None = None) -> Team:
        team = Team(id=team_id or stable_uuid4("sandbox", "team", key), key=key, name=name)
        self.teams[team.id] = team
        for position, (state_name, state_type) in enumerate(STATE_TEMPLATE):
            state_id = stable_uuid4("sandbox", "state", key, state_name)
            self.states[state_id] = WorkflowState(
                id=state_id,
                name=state_name,
                type=state_type,
                position=float(position),
                team_id=team.id,
            )
        return team

    def add_label(self, name: str, *, team_id: str | None = None) -> Label:
        label = Label(id=stable_uuid4("sandbox", "label", name), name=name, team_id=team_id)
        self.labels[label.id] = label
        return label

    def team_states(self, team_id: str) -> list[WorkflowState]:
        states = [state for state in self.states.values() if state.team_id == team_id]
        return sorted(states, key=lambda state: state.position)

    def state_named(self, team_id: str, name: str) -> WorkflowState:
        for state in self.team_states(team_id):
            if state.name == name:
                return state
        raise KeyError(name)

    def add_issue(
        self,
        title: str,
        description: str | None = None,
        *,
        team_id: str | None = None,
        issue_id: str | None = None,
        parent_id: str | None = None,
        state_id: str | None = None,
        labels: Iterable[str] = (),
        label_ids: Iterable[str] = (),
        project: str | None = None,
        creator_id: str | None = None,
        assignee_id: str | None = None,
        delegate_id: str | None = None,
    ) -> Issue:
        """Create an issue (labels by name, created if missing) and return it."""
        team = self.teams[team_id or self.team.id]
        team.issue_count += 1
        now = self.clock()
        all_label_ids = list(label_ids)
        for name in labels:
            existing = next((lab for lab in self.labels.values() if lab.name == name), None)
            all_label_ids.append((existing or self.add_label(name)).id)
        default_state = next(s for s in self.team_states(team.id) if s.type == "backlog")
        issue = Issue(
            id=issue_id or str(uuid.uuid4()),
            identifier=f"{team.key}-{team.issue_count}",
            number=team.issue_count,
            title=title,
            description=description,
            team_id=team.id,
            state_id=state_id or default_state.id,
            created_at=now,
            updated_at=now,
            creator_id=creator_id or self.human.id,
            parent_id=parent_id,
            label_ids=all_label_ids,
            project=project,
            assignee_id=assignee_id,
            delegate_id=delegate_id,
        )
        self.issues[issue.id] = issue
        return issue

    def add_comment(
        self, issue_id: str, body: str, *, user_id: str | None = None, comment_id: str | None = None
    ) -> Comment:
        now = self.clock()
        comment = Comment(
            id=comment_id or str(uuid.uuid4()),
            issue_id=issue_id,
            body=body,
            user_id=user_id if user_id is not None else self.human.id,
            created_at=now,
            updated_at=now,
        )
        self.comments[comment.id] = comment
        return comment

    def add_document(
        self,
        title: str,
        content: str | None,
        *,
        team_id: str | None = None,
        issue_id: str | None = None,
        creator_id: str | None = None,
        document_id: str | None = None,
    ) -> Document:
        now = self.clock()
        document = Document(
            id=document_id or str(uuid.uuid4()),
            title=title,
            content=content,
            team_id=team_id,
            issue_id=issue_id,
            creator_id=creator_id if creator_id is not None else self.human.id,
            created_at=now,
            updated_at=now,
        )
        self.documents[document.id] = document
        return document

    def documents_in(self, team_id: str) -> list[Document]:
        documents = [d for d in self.documents.values() if d.team_id == team_id]
        return sorted(documents, key=lambda document: document.created_at)

    def add_session(self, issue_id: str, *, creator_id: str | None = None) -> AgentSession:
        now = self.clock()
        session = AgentSession(
            id=str(uuid.uuid4()),
            issue_id=issue_id,
            app_user_id=self.agent.id,
            creator_id=creator_id or self.human.id,
            created_at=now,
            updated_at=now,
        )
        self.sessions[session.id] = session
        return session

    def add_prompt(
        self, session_id: str, body: str, *, user_id: str | None = None, signal: str | None = None
    ) -> AgentActivity:
        session = self.sessions[session_id]
        session.status = "active" if signal != "stop" else session.status
        activity = AgentActivity(
            id=str(uuid.uuid4()),
            session_id=session_id,
            content={"type": "prompt", "body": body},
            ephemeral=False,
            created_at=self.clock(),
            user_id=user_id or self.human.id,
            signal=signal,
        )
        self.activities[activity.id] = activity
        return activity

    def add_upload(self, content: bytes, media_type: str) -> str:
        """Store an uploaded file; returns its path (``/uploads/<org>/<uuid>``, no extension,
        as Linear's upload URLs have none)."""
        path = f"/uploads/{self.organization.id}/{uuid.uuid4()}"
        self.uploads[path] = Upload(content=content, media_type=media_type)
        return path

    def add_attachment(self, issue_id: str, title: str, url: str) -> Attachment:
        attachment = Attachment(
            id=str(uuid.uuid4()), issue_id=issue_id, title=title, url=url, created_at=self.clock()
        )
        self.attachments[attachment.id] = attachment
        return attachment

    # -- lookups -------------------------------------------------------------------------

    def find_issue(self, id_or_identifier: str) -> Issue:
        issue = self.issues.get(id_or_identifier)
        if issue is None:
            wanted = id_or_identifier.upper()
            issue = next((i for i in self.issues.values() if i.identifier == wanted), None)
        if issue is None:
            raise not_found("Issue")
        return issue

    def find_team(self, id_or_key: str) -> Team:
        team = self.teams.get(id_or_key) or next(
            (t for t in self.teams.values() if t.key == id_or_key), None
        )
        if team is None:
            raise not_found("Team")
        return team

    def children_of(self, issue_id: str) -> list[Issue]:
        children = [issue for issue in self.issues.values() if issue.parent_id == issue_id]
        return sorted(children, key=lambda issue: issue.created_at)

    def comments_on(self, issue_id: str) -> list[Comment]:
        comments = [c for c in self.comments.values() if c.issue_id == issue_id]
        return sorted(comments, key=lambda comment: comment.created_at)

    def activities_of(self, session_id: str) -> list[AgentActivity]:
        found = [a for a in self.activities.values() if a.session_id == session_id]
        return sorted(found, key=lambda activity: activity.created_at)

    def issue_url(self, issue: Issue) -> str:
        return f"https://linear.app/{self.organization.url_key}/issue/{issue.identifier}"

    def taken(self, entity_id: str) -> bool:
        return any(
            entity_id in table
            for table in (
                self.issues,
                self.comments,
                self.documents,
                self.activities,
                self.sessions,
            )
        )


# -- GraphQL views -------------------------------------------------------------------------


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


class _View:
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


class OrganizationView(_View):
    typename = "Organization"

    def __init__(self, org: Organization) -> None:
        self.id, self.name, self.urlKey = org.id, org.name, org.url_key


class UserView(_View):
    typename = "User"

    def __init__(self, store: LinearStore, user: User) -> None:
        self._store = store
        self.id, self.name, self.email, self.app = user.id, user.name, user.email, user.app
        self.displayName = user.name
        self.active = True

    def organization(self, info: Info) -> OrganizationView:
        return OrganizationView(self._store.organization)


class StateView(_View):
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


class TeamView(_View):
    typename = "Team"

    def __init__(self, store: LinearStore, team: Team) -> None:
        self._store = store
        self.id, self.key, self.name = team.id, team.key, team.name

    def states(self, info: Info, **args: Any) -> dict[str, Any]:
        views = [StateView(self._store, s) for s in self._store.team_states(self.id)]
        return connection(views, args)


class LabelView(_View):
    typename = "IssueLabel"

    def __init__(self, label: Label) -> None:
        self.id, self.name = label.id, label.name
        self.color = "#5e6ad2"


class ProjectView(_View):
    typename = "Project"

    def __init__(self, name: str) -> None:
        self.id, self.name = stable_uuid4("sandbox", "project", name), name


class AttachmentView(_View):
    typename = "Attachment"

    def __init__(self, attachment: Attachment) -> None:
        self.id, self.title, self.url = attachment.id, attachment.title, attachment.url
        self.subtitle: str | None = None
        self.sourceType: str | None = None
        self.metadata: dict[str, Any] = {}
        self.createdAt = self.updatedAt = _iso(attachment.created_at)


class CommentView(_View):
    typename = "Comment"

    def __init__(self, store: LinearStore, comment: Comment) -> None:
        self._store, self._comment = store, comment
        self.id, self.body = comment.id, comment.body
        self.createdAt, self.updatedAt = _iso(comment.created_at), _iso(comment.updated_at)

    def user(self, info: Info) -> UserView | None:
        user = self._store.users.get(self._comment.user_id or "")
        return UserView(self._store, user) if user else None

    def issue(self, info: Info) -> IssueView | None:
        issue = self._store.issues.get(self._comment.issue_id)
        return IssueView(self._store, issue) if issue else None


def _slug_id(document_id: str) -> str:
    return document_id.replace("-", "")[:12]


class DocumentView(_View):
    typename = "Document"

    def __init__(self, store: LinearStore, document: Document) -> None:
        self._store, self._document = store, document
        self.id, self.title, self.content = document.id, document.title, document.content
        self.slugId = _slug_id(document.id)
        self.url = f"https://linear.app/{store.organization.url_key}/document/{self.slugId}"
        self.createdAt, self.updatedAt = _iso(document.created_at), _iso(document.updated_at)

    def creator(self, info: Info) -> UserView | None:
        user = self._store.users.get(self._document.creator_id or "")
        return UserView(self._store, user) if user else None

    def team(self, info: Info) -> TeamView | None:
        team = self._store.teams.get(self._document.team_id or "")
        return TeamView(self._store, team) if team else None

    def issue(self, info: Info) -> IssueView | None:
        issue = self._store.issues.get(self._document.issue_id or "")
        return IssueView(self._store, issue) if issue else None


class IssueView(_View):
    typename = "Issue"

    def __init__(self, store: LinearStore, issue: Issue) -> None:
        self._store, self._issue = store, issue
        self.id, self.identifier, self.number = issue.id, issue.identifier, float(issue.number)
        self.title, self.description = issue.title, issue.description
        self.url = store.issue_url(issue)
        self.createdAt, self.updatedAt = _iso(issue.created_at), _iso(issue.updated_at)
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


class ActivityView(_View):
    typename = "AgentActivity"

    def __init__(self, store: LinearStore, activity: AgentActivity) -> None:
        self._store, self._activity = store, activity
        self.id, self.ephemeral = activity.id, activity.ephemeral
        self.createdAt = self.updatedAt = _iso(activity.created_at)
        self.signal = activity.signal

    def content(self, info: Info) -> dict[str, Any]:
        content = dict(self._activity.content)
        typename = "AgentActivity" + str(content.get("type", "thought")).title() + "Content"
        return {"__typename": typename, **content}

    def agentSession(self, info: Info) -> SessionView:
        return SessionView(self._store, self._store.sessions[self._activity.session_id])


class SessionView(_View):
    typename = "AgentSession"

    def __init__(self, store: LinearStore, session: AgentSession) -> None:
        self._store, self._session = store, session
        self.id, self.status, self.plan = session.id, session.status, session.plan
        self.externalUrls = session.external_urls
        self.createdAt, self.updatedAt = _iso(session.created_at), _iso(session.updated_at)

    def issue(self, info: Info) -> IssueView | None:
        issue = self._store.issues.get(self._session.issue_id or "")
        return IssueView(self._store, issue) if issue else None

    def activities(self, info: Info, **args: Any) -> dict[str, Any]:
        views = [ActivityView(self._store, a) for a in self._store.activities_of(self.id)]
        return connection(views, args)


# -- root resolvers ------------------------------------------------------------------------


class QueryRoot(_View):
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


_DOCUMENT_FIELDS = frozenset({"id", "title", "content", "teamId", "issueId", "color", "icon"})


def _sync_id() -> float:
    return float(uuid.uuid4().int % 1_000_000)


class MutationRoot(_View):
    typename = "Mutation"

    def __init__(self, store: LinearStore) -> None:
        self._store = store

    def _new_id(self, requested: str | None) -> str:
        if requested is None:
            return str(uuid.uuid4())
        if not is_uuid4(requested):
            raise StandInError(
                "Argument Validation Error",
                user_message=f"id must be a UUID v4, got {requested!r}.",
            )
        if self._store.taken(requested):
            raise StandInError(
                "Argument Validation Error",
                user_message=f"An entity with id {requested} already exists.",
            )
        return requested

    def _state_for(self, team_id: str, state_id: str) -> str:
        state = self._store.states.get(state_id)
        if state is None:
            raise not_found("WorkflowState")
        if state.team_id != team_id:
            raise StandInError(
                "Argument Validation Error",
                user_message="The workflow state does not belong to the issue's team.",
            )
        return state.id

    def _label_ids(self, label_ids: list[str]) -> list[str]:
        for label_id in label_ids:
            if label_id not in self._store.labels:
                raise not_found("IssueLabel")
        return list(label_ids)

    def issueCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        team = store.find_team(input["teamId"])
        title = (input.get("title") or "").strip()
        if not title:
            raise StandInError("Argument Validation Error", user_message="title must not be empty.")
        new_id = self._new_id(input.get("id"))
        parent_id = input.get("parentId")
        if parent_id is not None:
            parent_id = store.find_issue(parent_id).id
        state_id = input.get("stateId")
        if state_id is not None:
            state_id = self._state_for(team.id, state_id)
        for user_field in ("assigneeId", "delegateId"):
            if input.get(user_field) and input[user_field] not in store.users:
                raise not_found("User")
        label_ids = self._label_ids(input.get("labelIds") or [])
        issue = store.add_issue(
            title,
            input.get("description"),
            team_id=team.id,
            issue_id=new_id,
            parent_id=parent_id,
            state_id=state_id,
            creator_id=store.viewer_id,
            assignee_id=input.get("assigneeId"),
            delegate_id=input.get("delegateId"),
            label_ids=label_ids,
        )
        return {"success": True, "lastSyncId": _sync_id(), "issue": IssueView(store, issue)}

    def issueUpdate(self, info: Info, id: str, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        issue = store.find_issue(id)
        if input.get("stateId") is not None:
            issue.state_id = self._state_for(issue.team_id, input["stateId"])
        if "title" in input:
            if not (input["title"] or "").strip():
                raise StandInError(
                    "Argument Validation Error", user_message="title must not be empty."
                )
            issue.title = input["title"]
        if "description" in input:
            issue.description = input["description"]
        if "parentId" in input:
            issue.parent_id = store.find_issue(input["parentId"]).id if input["parentId"] else None
        if "labelIds" in input:
            issue.label_ids = self._label_ids(input["labelIds"] or [])
        for user_field, attribute in (("assigneeId", "assignee_id"), ("delegateId", "delegate_id")):
            if user_field in input:
                if input[user_field] and input[user_field] not in store.users:
                    raise not_found("User")
                setattr(issue, attribute, input[user_field])
        issue.updated_at = store.clock()
        return {"success": True, "lastSyncId": _sync_id(), "issue": IssueView(store, issue)}

    def commentCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        if not input.get("issueId"):
            raise StandInError(
                "Argument Validation Error", user_message="A comment needs an issueId here."
            )
        issue = store.find_issue(input["issueId"])
        body = input.get("body") or ""
        if not body.strip():
            raise StandInError("Argument Validation Error", user_message="body must not be empty.")
        new_id = self._new_id(input.get("id"))
        comment = store.add_comment(issue.id, body, user_id=store.viewer_id, comment_id=new_id)
        return {"success": True, "lastSyncId": _sync_id(), "comment": CommentView(store, comment)}

    def documentCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        """A document in a team (by id) and/or on an issue (id or identifier); a project or
        other parent is not modelled and refused as such."""
        store = self._store
        unmodelled = sorted(
            k for k, v in input.items() if v is not None and k not in _DOCUMENT_FIELDS
        )
        if unmodelled:
            raise StandInError(
                f"the Linear stand-in does not implement documentCreate with {unmodelled}",
                code="NOT_IMPLEMENTED",
                kind="internal error",
            )
        team_id, issue_id = input.get("teamId"), input.get("issueId")
        if not team_id and not issue_id:
            raise StandInError(
                "Argument Validation Error",
                user_message="A document needs a team, issue or project to belong to.",
            )
        if team_id and team_id not in store.teams:
            raise not_found("Team")
        issue = store.find_issue(issue_id) if issue_id else None
        new_id = self._new_id(input.get("id"))
        document = store.add_document(
            input["title"],
            input.get("content"),
            team_id=team_id or None,
            issue_id=issue.id if issue else None,
            creator_id=store.viewer_id,
            document_id=new_id,
        )
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "document": DocumentView(store, document),
        }

    def commentUpdate(self, info: Info, id: str, input: dict[str, Any], **_: Any) -> dict[str, Any]:
        store = self._store
        comment = store.comments.get(id)
        if comment is None:
            raise not_found("Comment")
        if comment.user_id != store.viewer_id:
            raise StandInError(
                "Forbidden",
                code="FORBIDDEN",
                kind="forbidden",
                user_message="You can only edit your own comments.",
            )
        if "body" in input:
            if not (input["body"] or "").strip():
                raise StandInError(
                    "Argument Validation Error", user_message="body must not be empty."
                )
            comment.body = input["body"]
        comment.updated_at = store.clock()
        return {"success": True, "lastSyncId": _sync_id(), "comment": CommentView(store, comment)}

    def agentActivityCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        session = store.sessions.get(input["agentSessionId"])
        if session is None:
            raise not_found("AgentSession")
        content = input["content"]
        problem = activity_content_problem(content)
        if problem:
            raise StandInError("Argument Validation Error", user_message=problem)
        ephemeral = bool(input.get("ephemeral"))
        if ephemeral and content["type"] not in EPHEMERAL_TYPES:
            raise StandInError(
                "Argument Validation Error",
                user_message="Only thought and action activities can be ephemeral.",
            )
        new_id = self._new_id(input.get("id"))
        activity = AgentActivity(
            id=new_id,
            session_id=session.id,
            content=dict(content),
            ephemeral=ephemeral,
            created_at=store.clock(),
            user_id=store.viewer_id,
            signal=input.get("signal"),
            signal_metadata=input.get("signalMetadata"),
        )
        store.activities[activity.id] = activity
        # Linear's rules: the last activity sets the state; a response ends the session,
        # an error marks it failed, an elicitation waits for the user.
        session.status = {
            "response": "complete",
            "error": "error",
            "elicitation": "awaitingInput",
        }.get(content["type"], "active")
        activity.status_after = session.status
        session.updated_at = activity.created_at
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "agentActivity": ActivityView(store, activity),
        }

    def attachmentLinkURL(
        self, info: Info, issueId: str, url: str, title: str | None = None, **_: Any
    ) -> dict[str, Any]:
        store = self._store
        issue = store.find_issue(issueId)
        for attachment in store.attachments.values():
            if attachment.issue_id == issue.id and attachment.url == url:
                attachment.title = title or attachment.title
                break
        else:
            attachment = store.add_attachment(issue.id, title or url, url)
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "attachment": AttachmentView(attachment),
        }

    def agentSessionUpdate(self, info: Info, id: str, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        session = store.sessions.get(id)
        if session is None:
            raise not_found("AgentSession")
        if input.get("externalUrls") is not None:
            session.external_urls = [dict(link) for link in input["externalUrls"]]
        else:
            known = {link["url"] for link in session.external_urls}
            for link in input.get("addedExternalUrls") or []:
                if link["url"] not in known:
                    session.external_urls.append(dict(link))
                    known.add(link["url"])
            removed = set(input.get("removedExternalUrls") or [])
            session.external_urls = [u for u in session.external_urls if u["url"] not in removed]
        if "plan" in input:
            session.plan = input["plan"]
        session.updated_at = store.clock()
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "agentSession": SessionView(store, session),
        }


def activity_content_problem(content: Any) -> str | None:
    """Why ``content`` is not an activity an agent may post, or ``None``."""
    if not isinstance(content, dict):
        return "content must be an object."
    kind = content.get("type")
    if kind not in AGENT_WRITABLE_TYPES:
        return f"content.type must be one of {sorted(AGENT_WRITABLE_TYPES)}."
    if kind == "action":
        if not str(content.get("action") or "").strip():
            return "An action activity needs a non-empty action."
        if not isinstance(content.get("parameter"), str):
            return "An action activity needs a parameter."
        return None
    if not str(content.get("body") or "").strip():
        return f"A {kind} activity needs a non-empty body."
    return None
