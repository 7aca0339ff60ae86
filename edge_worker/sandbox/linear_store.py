"""In-memory Linear data and the GraphQL resolvers the stand-in executes against it.

Contract:
- :class:`LinearStore` holds an organisation, teams with workflow states, users (a human
  and the agent app user), labels, issues (with ``ENG-1`` style identifiers, parents,
  children, labels), comments, documents, agent sessions and their activities. Seeding
  helpers create data the way Linear would (identifiers, default states, timestamps).
- The GraphQL resolvers over it live beside it: the read side (views and
  ``QueryRoot``) in :mod:`.linear_views`, the write side (``MutationRoot``) in
  :mod:`.linear_mutations`. Refusals raise :class:`StandInError`, shaped like Linear's
  errors (``extensions.code``, ``type``, ``userPresentableMessage``).
- Not thread-safe by itself: the HTTP layer serialises access with a lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
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


def iso_time(timestamp: float) -> str:
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
