"""Which GraphQL schema the Linear stand-in executes against.

Contract: :func:`load_schema` returns ``(schema, validated)``. With Linear's real schema
file (``$EDGE_WORKER_SHARED_DIR/linear/schema.graphql``, default ``../shared`` next to
the repository) it builds that schema once per path and ``validated`` is True. Without
it (a user's machine) it logs a warning and falls back to :data:`FALLBACK_SDL`, a small
hand-written subset covering the types the stand-in serves, so the demo still runs;
``validated`` is then False and documents are not checked against Linear's schema.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import structlog
from graphql import GraphQLSchema, build_schema

log = structlog.get_logger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_schema_path() -> Path:
    """Where Linear's schema file is expected."""
    shared = os.environ.get("EDGE_WORKER_SHARED_DIR", str(_REPO_ROOT.parent / "shared"))
    return Path(shared) / "linear" / "schema.graphql"


FALLBACK_SDL = """
scalar DateTime
scalar JSON
scalar JSONObject

enum PaginationOrderBy { createdAt updatedAt }

type PageInfo {
  hasPreviousPage: Boolean!
  hasNextPage: Boolean!
  startCursor: String
  endCursor: String
}

type Organization { id: ID! name: String! urlKey: String! }

type User {
  id: ID!
  name: String!
  displayName: String!
  email: String!
  app: Boolean!
  active: Boolean!
  organization: Organization!
}

type WorkflowState {
  id: ID!
  name: String!
  type: String!
  position: Float!
  color: String!
  team: Team!
}
type WorkflowStateEdge { node: WorkflowState! cursor: String! }
type WorkflowStateConnection {
  edges: [WorkflowStateEdge!]!
  nodes: [WorkflowState!]!
  pageInfo: PageInfo!
}

type Team {
  id: ID!
  key: String!
  name: String!
  states(first: Int, last: Int, after: String, before: String, includeArchived: Boolean,
         orderBy: PaginationOrderBy): WorkflowStateConnection!
}

type TeamEdge { node: Team! cursor: String! }
type TeamConnection { edges: [TeamEdge!]! nodes: [Team!]! pageInfo: PageInfo! }
input IDComparator { eq: ID in: [ID!] neq: ID nin: [ID!] }
input StringComparator { eq: String in: [String!] neq: String nin: [String!] }
input TeamFilter { id: IDComparator key: StringComparator name: StringComparator }

type Document {
  id: ID!
  title: String!
  content: String
  slugId: String!
  url: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  creator: User
  team: Team
  issue: Issue
}
type DocumentPayload { document: Document! lastSyncId: Float! success: Boolean! }

type IssueLabel { id: ID! name: String! color: String! }
type IssueLabelEdge { node: IssueLabel! cursor: String! }
type IssueLabelConnection {
  edges: [IssueLabelEdge!]!
  nodes: [IssueLabel!]!
  pageInfo: PageInfo!
}

type Project { id: ID! name: String! }

type Comment {
  id: ID!
  body: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  user: User
  issue: Issue
}
type CommentEdge { node: Comment! cursor: String! }
type CommentConnection { edges: [CommentEdge!]! nodes: [Comment!]! pageInfo: PageInfo! }

type Issue {
  id: ID!
  identifier: String!
  number: Float!
  title: String!
  description: String
  url: String!
  priority: Float!
  createdAt: DateTime!
  updatedAt: DateTime!
  team: Team!
  state: WorkflowState!
  project: Project
  parent: Issue
  assignee: User
  delegate: User
  labels(first: Int, last: Int, after: String, before: String, includeArchived: Boolean,
         orderBy: PaginationOrderBy): IssueLabelConnection!
  children(first: Int, last: Int, after: String, before: String, includeArchived: Boolean,
           orderBy: PaginationOrderBy): IssueConnection!
  comments(first: Int, last: Int, after: String, before: String, includeArchived: Boolean,
           orderBy: PaginationOrderBy): CommentConnection!
  attachments(first: Int, last: Int, after: String, before: String, includeArchived: Boolean,
              orderBy: PaginationOrderBy): AttachmentConnection!
}
type Attachment { id: ID! title: String! subtitle: String url: String! }
type AttachmentEdge { node: Attachment! cursor: String! }
type AttachmentConnection {
  edges: [AttachmentEdge!]! nodes: [Attachment!]! pageInfo: PageInfo!
}
type RepositorySuggestion { confidence: Float! hostname: String repositoryFullName: String! }
type RepositorySuggestionsPayload { suggestions: [RepositorySuggestion!]! }
type IssueEdge { node: Issue! cursor: String! }
type IssueConnection { edges: [IssueEdge!]! nodes: [Issue!]! pageInfo: PageInfo! }

type AgentActivityThoughtContent { type: String! body: String! }
type AgentActivityElicitationContent { type: String! body: String! }
type AgentActivityResponseContent { type: String! body: String! }
type AgentActivityErrorContent { type: String! body: String! }
type AgentActivityPromptContent { type: String! body: String! }
type AgentActivityActionContent {
  type: String! action: String! parameter: String! result: String
}
union AgentActivityContent =
  | AgentActivityActionContent
  | AgentActivityElicitationContent
  | AgentActivityErrorContent
  | AgentActivityPromptContent
  | AgentActivityResponseContent
  | AgentActivityThoughtContent

type AgentActivity {
  id: ID!
  ephemeral: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  content: AgentActivityContent!
  agentSession: AgentSession!
}
type AgentActivityEdge { node: AgentActivity! cursor: String! }
type AgentActivityConnection {
  edges: [AgentActivityEdge!]!
  nodes: [AgentActivity!]!
  pageInfo: PageInfo!
}

type AgentSession {
  id: ID!
  status: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  plan: JSON
  externalUrls: JSON!
  issue: Issue
  activities(first: Int, last: Int, after: String, before: String, includeArchived: Boolean,
             orderBy: PaginationOrderBy): AgentActivityConnection!
}

type Query {
  viewer: User!
  organization: Organization!
  issue(id: String!): Issue!
  team(id: String!): Team!
  teams(after: String, before: String, filter: TeamFilter, first: Int, includeArchived: Boolean,
        last: Int, orderBy: PaginationOrderBy): TeamConnection!
  document(id: String!): Document!
  comment(id: String, hash: String): Comment!
  agentActivity(id: String!): AgentActivity!
  agentSession(id: String!): AgentSession!
  issueRepositorySuggestions(agentSessionId: String,
    candidateRepositories: [CandidateRepository!]!, issueId: String!):
    RepositorySuggestionsPayload!
}

input CandidateRepository { hostname: String! repositoryFullName: String! }
enum AgentActivitySignal { auth continue select stop }

input IssueCreateInput {
  id: String
  teamId: String!
  title: String
  description: String
  parentId: String
  stateId: String
  labelIds: [String!]
  assigneeId: String
  delegateId: String
}
input IssueUpdateInput {
  title: String
  description: String
  parentId: String
  stateId: String
  labelIds: [String!]
  assigneeId: String
  delegateId: String
}
input CommentCreateInput { id: String issueId: String body: String parentId: String }
input CommentUpdateInput { body: String }
input DocumentCreateInput {
  id: String
  title: String!
  content: String
  teamId: String
  issueId: String
  projectId: String
  color: String
  icon: String
}
input AgentActivityCreateInput {
  id: String
  agentSessionId: String!
  content: JSONObject!
  contextualMetadata: JSONObject
  ephemeral: Boolean
  signal: AgentActivitySignal
  signalMetadata: JSONObject
}
input AgentSessionExternalUrlInput { label: String! url: String! }
input AgentSessionUpdateInput {
  addedExternalUrls: [AgentSessionExternalUrlInput!]
  removedExternalUrls: [String!]
  externalUrls: [AgentSessionExternalUrlInput!]
  externalLink: String
  plan: JSONObject
}

type IssuePayload { lastSyncId: Float! success: Boolean! issue: Issue }
type CommentPayload { lastSyncId: Float! success: Boolean! comment: Comment! }
type AgentActivityPayload { lastSyncId: Float! success: Boolean! agentActivity: AgentActivity! }
type AgentSessionPayload { lastSyncId: Float! success: Boolean! agentSession: AgentSession! }
type AttachmentPayload { lastSyncId: Float! success: Boolean! attachment: Attachment! }

type Mutation {
  issueCreate(input: IssueCreateInput!): IssuePayload!
  issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
  commentCreate(input: CommentCreateInput!): CommentPayload!
  commentUpdate(id: String!, input: CommentUpdateInput!, skipEditedAt: Boolean): CommentPayload!
  documentCreate(input: DocumentCreateInput!): DocumentPayload!
  agentActivityCreate(input: AgentActivityCreateInput!): AgentActivityPayload!
  agentSessionUpdate(id: String!, input: AgentSessionUpdateInput!): AgentSessionPayload!
  attachmentLinkURL(createAsUser: String, displayIconUrl: String, id: String, issueId: String!,
                    title: String, url: String!): AttachmentPayload!
}
"""


@cache
def _build(path: Path | None) -> GraphQLSchema:
    if path is None:
        return build_schema(FALLBACK_SDL)
    return build_schema(path.read_text(encoding="utf-8"))


def load_schema(path: Path | None = None) -> tuple[GraphQLSchema, bool]:
    """The schema to serve and whether it is Linear's real one; see the module contract."""
    path = path if path is not None else default_schema_path()
    if path.is_file():
        return _build(path.resolve()), True
    log.warning(
        "linear_standin.schema_missing",
        path=str(path),
        consequence="documents are NOT validated against Linear's schema",
    )
    return _build(None), False
