"""The Linear GraphQL client edge-worker uses for everything it tells a person.

Contract:
- Every request is one named operation from ``operations.graphql`` (loaded once), POSTed
  with plain httpx; results are typed models (``models.py``), never raw dicts.
- One method call is one request in the common case. Nothing is fetched behind the
  caller's back: no viewer query per call, no read before an update. The only extra
  request is a lookup after a create was refused, to turn "this id exists already" into
  the existing entity (creates use client-chosen ids, so a retried create is a success).
- The transport (:class:`~edge_worker.linear.transport.LinearTransport`): before each
  request the client takes a token from its :class:`RequestBudget`
  (``priority="low"`` waits first when the budget runs low, and an operation whose own
  endpoint limit Linear reported exhausted waits for its reset) and after each it records
  Linear's ``X-RateLimit-*`` headers (``client.rate_limit``), endpoint ones included.
- ``RATELIMITED`` / HTTP 429: wait (on the injected clock) for ``Retry-After`` or the
  reset, then retry, at most ``max_rate_limit_retries`` times. Network errors and 5xx:
  retried with jittered exponential backoff by stamina, bounded in time and (unless
  ``transient_attempts`` is ``None``) in attempts.
  401: one token refresh when client credentials allow it. Anything else Linear refuses
  raises :class:`LinearRequestError` at once with Linear's message. Exhausted retries
  raise :class:`LinearUnavailable`.
- Every HTTP request is counted in ``edge_worker_linear_requests_total``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import structlog

from edge_worker.ids import stable_uuid4
from edge_worker.linear.errors import (
    LinearRequestError,
)
from edge_worker.linear.limits import (
    Priority,
)
from edge_worker.linear.models import (
    ActivityType,
    Comment,
    Document,
    ExternalUrl,
    Issue,
    IssueRef,
    PlanStep,
    Viewer,
    WorkflowState,
)
from edge_worker.linear.transport import LinearTransport
from edge_worker.reporting.markers import find_marker, marker

log = structlog.get_logger(__name__)

ACTIVITY_TYPES: frozenset[str] = frozenset(ActivityType.__args__)  # type: ignore[attr-defined]
EPHEMERAL_TYPES = frozenset({"thought", "action"})


class LinearClient(LinearTransport):
    """Async client for the operations in ``operations.graphql``; see the module contract.

    ``http`` may be supplied (it is then not closed by :meth:`aclose`); ``budget`` may be
    shared between clients using the same token; ``token_store`` shares the
    client-credentials token between daemons (see ``auth.py``).
    """

    _viewer: Viewer | None = None

    @cached_property
    def _known_marked_comments(self) -> set[str]:
        """Ids of the daemon's marked comments known to exist (edited, not created, next)."""
        return set()

    # -- reads -----------------------------------------------------------------------

    async def viewer(self) -> Viewer:
        """The user our credentials act as (fetched once, then remembered)."""
        if self._viewer is None:
            data = await self.execute("Viewer")
            self._viewer = Viewer.from_graphql(data["viewer"])
        return self._viewer

    async def issue(self, id_or_identifier: str) -> Issue:
        """An issue (by UUID or identifier like ``ENG-1``) with its planning context."""
        data = await self.execute("Issue", {"id": id_or_identifier})
        return Issue.from_graphql(data["issue"])

    async def team_states(self, team_id: str) -> list[WorkflowState]:
        """A team's workflow states ordered by position."""
        data = await self.execute("TeamStates", {"teamId": team_id})
        states = [WorkflowState.model_validate(node) for node in data["team"]["states"]["nodes"]]
        return sorted(states, key=lambda state: state.position)

    async def team_id(self, key_or_id: str) -> str:
        """The id of the team ``key_or_id`` (a key like ``ENG``, or an id, returned as is
        without a request); an unknown key raises :class:`LinearRequestError`."""
        if _is_uuid(key_or_id):
            return key_or_id
        data = await self.execute("TeamByKey", {"key": key_or_id})
        nodes = data["teams"]["nodes"]
        if not nodes:
            raise LinearRequestError("TeamByKey", f"no team with key {key_or_id!r}", status=200)
        return str(nodes[0]["id"])

    # -- writes ----------------------------------------------------------------------

    async def create_issue(
        self,
        *,
        id: str,
        team_id: str,
        title: str,
        description: str,
        parent_id: str | None = None,
        state_id: str | None = None,
        label_ids: Sequence[str] | None = None,
        priority: Priority = "normal",
    ) -> IssueRef:
        """Create an issue with the client-chosen ``id``; if it exists already, return it."""
        issue_input: dict[str, Any] = {
            "id": id,
            "teamId": team_id,
            "title": title,
            "description": description,
        }
        if parent_id is not None:
            issue_input["parentId"] = parent_id
        if state_id is not None:
            issue_input["stateId"] = state_id
        if label_ids:
            issue_input["labelIds"] = list(label_ids)
        try:
            data = await self.execute("IssueCreate", {"input": issue_input}, priority=priority)
        except LinearRequestError as refused:
            return IssueRef.from_graphql(
                await self._existing_after_refusal(refused, "IssueRef", id, "issue")
            )
        payload = self._require_success("IssueCreate", data.get("issueCreate"))
        return IssueRef.from_graphql(payload["issue"])

    async def update_issue(
        self,
        id: str,
        *,
        state_id: str | None = None,
        delegate_id: str | None = None,
        priority: Priority = "normal",
    ) -> None:
        """Move an issue to the workflow state ``state_id`` and/or delegate it to
        ``delegate_id``, in one request (nothing is sent when neither is given)."""
        issue_input: dict[str, Any] = {}
        if state_id is not None:
            issue_input["stateId"] = state_id
        if delegate_id is not None:
            issue_input["delegateId"] = delegate_id
        if not issue_input:
            return
        data = await self.execute(
            "IssueUpdate", {"id": id, "input": issue_input}, priority=priority
        )
        self._require_success("IssueUpdate", data.get("issueUpdate"))

    async def link_url(
        self, *, issue_id: str, url: str, title: str, priority: Priority = "normal"
    ) -> None:
        """Attach ``url`` (a pull request) to an issue; repeating it updates the same one."""
        data = await self.execute(
            "AttachmentLinkURL",
            {"issueId": issue_id, "url": url, "title": title},
            priority=priority,
        )
        self._require_success("AttachmentLinkURL", data.get("attachmentLinkURL"))

    async def repository_suggestions(
        self,
        issue_id: str,
        candidates: Sequence[tuple[str, str]],
        session_id: str | None = None,
    ) -> list[tuple[str, float]]:
        """Linear's ``(full name, confidence)`` for the candidate ``(hostname, full name)``
        repositories that are likely relevant to the issue, most confident first."""
        variables: dict[str, Any] = {
            "issueId": issue_id,
            "candidates": [
                {"hostname": host, "repositoryFullName": name} for host, name in candidates
            ],
        }
        if session_id is not None:
            variables["agentSessionId"] = session_id
        data = await self.execute("RepositorySuggestions", variables)
        found = data["issueRepositorySuggestions"]["suggestions"]
        ranked = [(str(s["repositoryFullName"]), float(s["confidence"])) for s in found]
        return sorted(ranked, key=lambda item: -item[1])

    async def create_comment(
        self, *, id: str, issue_id: str, body: str, priority: Priority = "normal"
    ) -> Comment:
        """Comment on an issue with the client-chosen ``id``; if it exists, return it."""
        if not body.strip():
            raise ValueError("a comment body must not be empty")
        try:
            data = await self.execute(
                "CommentCreate",
                {"input": {"id": id, "issueId": issue_id, "body": body}},
                priority=priority,
            )
        except LinearRequestError as refused:
            return Comment.from_graphql(
                await self._existing_after_refusal(refused, "CommentById", id, "comment")
            )
        payload = self._require_success("CommentCreate", data.get("commentCreate"))
        return Comment.from_graphql(payload["comment"])

    async def create_document(
        self,
        *,
        id: str,
        title: str,
        content: str,
        team_id: str | None = None,
        issue_id: str | None = None,
        priority: Priority = "normal",
    ) -> Document:
        """Create a document (markdown ``content``) in a team and/or on an issue with the
        client-chosen ``id``; if it exists already, return it."""
        if not title.strip():
            raise ValueError("a document title must not be empty")
        document_input: dict[str, Any] = {"id": id, "title": title, "content": content}
        if team_id is not None:
            document_input["teamId"] = team_id
        if issue_id is not None:
            document_input["issueId"] = issue_id
        try:
            data = await self.execute(
                "DocumentCreate", {"input": document_input}, priority=priority
            )
        except LinearRequestError as refused:
            return Document.from_graphql(
                await self._existing_after_refusal(refused, "DocumentById", id, "document")
            )
        payload = self._require_success("DocumentCreate", data.get("documentCreate"))
        return Document.from_graphql(payload["document"])

    async def _update_comment(self, id: str, body: str, priority: Priority) -> Comment:
        data = await self.execute(
            "CommentUpdate", {"id": id, "input": {"body": body}}, priority=priority
        )
        payload = self._require_success("CommentUpdate", data.get("commentUpdate"))
        return Comment.from_graphql(payload["comment"])

    async def update_comment(self, id: str, body: str, *, priority: Priority = "normal") -> None:
        """Replace a comment's body."""
        if not body.strip():
            raise ValueError("a comment body must not be empty")
        await self._update_comment(id, body, priority)

    async def upsert_marked_comment(
        self,
        *,
        issue_id: str,
        purpose: str,
        body: str,
        known_comments: Sequence[Comment] = (),
        priority: Priority = "normal",
    ) -> Comment:
        """Create or edit in place the daemon's comment for ``purpose`` on ``issue_id``.

        The comment's id is ``stable_uuid4(issue_id, purpose)`` (pass the issue's UUID, not
        its identifier) and its body always carries ``marker(purpose, issue_id)``. One
        request in the common case: a create the first time, an update afterwards; after a
        restart the first call is a refused create followed by an update. If the caller
        already holds the issue's comments (``known_comments``, e.g. from :meth:`issue`),
        a marked comment found there is edited even if it has another id.
        """
        text = (
            body
            if find_marker(body, purpose, issue_id)
            else f"{body}\n\n{marker(purpose, issue_id)}"
        )
        comment_id = stable_uuid4(issue_id, purpose)
        for comment in known_comments:
            if find_marker(comment.body, purpose, issue_id):
                comment_id = comment.id
                self._known_marked_comments.add(comment_id)
                break
        if comment_id in self._known_marked_comments:
            try:
                return await self._update_comment(comment_id, text, priority)
            except LinearRequestError:
                # Deleted by someone since: forget it and create it again below.
                self._known_marked_comments.discard(comment_id)
                comment_id = stable_uuid4(issue_id, purpose)
        try:
            data = await self.execute(
                "CommentCreate",
                {"input": {"id": comment_id, "issueId": issue_id, "body": text}},
                priority=priority,
            )
            comment = Comment.from_graphql(
                self._require_success("CommentCreate", data.get("commentCreate"))["comment"]
            )
        except LinearRequestError as refused:
            try:
                comment = await self._update_comment(comment_id, text, priority)
            except LinearRequestError:
                raise refused from None
        self._known_marked_comments.add(comment_id)
        return comment

    async def create_activity(
        self,
        *,
        session_id: str,
        content: Mapping[str, Any],
        ephemeral: bool = False,
        id: str | None = None,
        priority: Priority = "normal",
        signal: str | None = None,
        signal_metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Post an agent activity to a session and return its id.

        ``content`` is Linear's activity content: ``{"type": "thought"|"response"|"error"|
        "elicitation", "body": ...}`` or ``{"type": "action", "action": ..., "parameter":
        ..., "result": ...}``. Invalid content raises :class:`ValueError` before any request.
        With a client-chosen ``id`` the call is idempotent. ``signal`` (e.g. ``select``)
        and ``signal_metadata`` (its options) modify how Linear shows the activity.
        """
        _check_activity_content(content)
        if ephemeral and content.get("type") not in EPHEMERAL_TYPES:
            raise ValueError("only thought and action activities can be ephemeral")
        activity_input: dict[str, Any] = {"agentSessionId": session_id, "content": dict(content)}
        if ephemeral:
            activity_input["ephemeral"] = True
        if id is not None:
            activity_input["id"] = id
        if signal is not None:
            activity_input["signal"] = signal
        if signal_metadata is not None:
            activity_input["signalMetadata"] = dict(signal_metadata)
        try:
            data = await self.execute(
                "AgentActivityCreate", {"input": activity_input}, priority=priority
            )
        except LinearRequestError as refused:
            if id is None:
                raise
            existing = await self._existing_after_refusal(
                refused, "AgentActivityById", id, "agentActivity"
            )
            return str(existing["id"])
        payload = self._require_success("AgentActivityCreate", data.get("agentActivityCreate"))
        return str(payload["agentActivity"]["id"])

    async def update_session(
        self,
        session_id: str,
        *,
        external_urls: Sequence[ExternalUrl] | None = None,
        plan: Sequence[PlanStep] | None = None,
        added_external_urls: Sequence[ExternalUrl] | None = None,
        priority: Priority = "normal",
    ) -> None:
        """Set an agent session's external links and/or plan (replacing the previous ones),
        or add links to those it has (``added_external_urls``).

        With none given nothing is sent.
        """
        session_input: dict[str, Any] = {}
        if external_urls is not None:
            session_input["externalUrls"] = [link.model_dump() for link in external_urls]
        if added_external_urls:
            session_input["addedExternalUrls"] = [link.model_dump() for link in added_external_urls]
        if plan is not None:
            session_input["plan"] = [step.model_dump() for step in plan]
        if not session_input:
            return
        data = await self.execute(
            "AgentSessionUpdate", {"id": session_id, "input": session_input}, priority=priority
        )
        self._require_success("AgentSessionUpdate", data.get("agentSessionUpdate"))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_activity_content(content: Mapping[str, Any]) -> None:
    kind = content.get("type")
    if kind not in ACTIVITY_TYPES:
        raise ValueError(f"activity type must be one of {sorted(ACTIVITY_TYPES)}, not {kind!r}")
    if kind == "action":
        if not str(content.get("action") or "").strip():
            raise ValueError("an action activity needs a non-empty 'action'")
        if not isinstance(content.get("parameter"), str):
            raise ValueError("an action activity needs a 'parameter' string")
    elif not str(content.get("body") or "").strip():
        raise ValueError(f"a {kind} activity needs a non-empty 'body'")
