"""The Linear GraphQL client edge-worker uses for everything it tells a person.

Contract:
- Every request is one named operation from ``operations.graphql`` (loaded once), POSTed
  with plain httpx; results are typed models (``models.py``), never raw dicts.
- One method call is one request in the common case. Nothing is fetched behind the
  caller's back: no viewer query per call, no read before an update. The only extra
  request is a lookup after a create was refused, to turn "this id exists already" into
  the existing entity (creates use client-chosen ids, so a retried create is a success).
- Before each request the client takes a token from its :class:`RequestBudget`
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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import stamina
import structlog

from edge_worker.ids import stable_uuid4
from edge_worker.linear.auth import LinearAuth, TokenStore
from edge_worker.linear.clock import Clock, SystemClock
from edge_worker.linear.documents import operations
from edge_worker.linear.errors import (
    LinearAuthError,
    LinearRequestError,
    LinearUnavailable,
)
from edge_worker.linear.limits import (
    Priority,
    RateLimitSnapshot,
    RequestBudget,
    default_requests_per_hour,
    rate_limited_wait,
    read_rate_limit_headers,
    retry_after_seconds,
)
from edge_worker.linear.metrics import count_request
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
from edge_worker.reporting.markers import find_marker, marker
from edge_worker.settings import LinearSettings

log = structlog.get_logger(__name__)

ACTIVITY_TYPES: frozenset[str] = frozenset(ActivityType.__args__)  # type: ignore[attr-defined]
EPHEMERAL_TYPES = frozenset({"thought", "action"})


class _RateLimited(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited; retry in {wait:.1f}s")
        self.wait = wait


class _ServerError(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


_OUTAGE_ERRORS = (_ServerError, httpx.TransportError)
"""What counts as Linear being unavailable (for outage alerts)."""


def _transient(exc: Exception) -> bool | float:
    """stamina's retry predicate: retry network errors and 5xx (honouring Retry-After)."""
    if isinstance(exc, _ServerError):
        return exc.retry_after if exc.retry_after is not None else True
    return isinstance(exc, httpx.TransportError)


def _first_error(errors: Any) -> dict[str, Any]:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return {}


def _has_code(errors: Any, code: str) -> bool:
    if not isinstance(errors, list):
        return False
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(extensions, dict) and extensions.get("code") == code:
            return True
    return False


class LinearClient:
    """Async client for the operations in ``operations.graphql``; see the module contract.

    ``http`` may be supplied (it is then not closed by :meth:`aclose`); ``budget`` may be
    shared between clients using the same token; ``token_store`` shares the
    client-credentials token between daemons (see ``auth.py``).
    """

    def __init__(
        self,
        settings: LinearSettings,
        *,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
        budget: RequestBudget | None = None,
        token_store: TokenStore | None = None,
        max_rate_limit_retries: int = 5,
        max_rate_limit_wait: float = 3600.0,
        transient_attempts: int | None = 5,
        transient_timeout: float = 120.0,
        transient_wait_max: float = 10.0,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=settings.timeout_seconds)
        self._auth = LinearAuth(
            settings, http=self._http, clock=self._clock, token_store=token_store
        )
        self.budget = budget or RequestBudget(
            default_requests_per_hour(settings), clock=self._clock
        )
        self._operations = operations()
        self._max_rate_limit_retries = max_rate_limit_retries
        self._max_rate_limit_wait = max_rate_limit_wait
        self._transient_attempts = transient_attempts
        self._transient_timeout = transient_timeout
        self._transient_wait_max = transient_wait_max
        self._on_health = on_health
        """Told of each request's transport outcome (outage alerts); ``False`` on a network
        error or 5xx, ``True`` when Linear answered."""
        self.rate_limit = RateLimitSnapshot()
        self._viewer: Viewer | None = None
        self._known_marked_comments: set[str] = set()

    @property
    def uses_client_credentials(self) -> bool:
        """True when the client obtains its own app token (client credentials)."""
        return self._auth.can_refresh

    @property
    def token_requests(self) -> int:
        """Client-credentials token requests this client sent."""
        return self._auth.token_requests

    async def prepare(self) -> None:
        """Obtain the app token now (shared or fetched), so the first request does not
        wait for it; nothing to do with an API key or a given access token."""
        if self._auth.can_refresh:
            await self._auth.authorization()

    async def authorization(self) -> str:
        """The current ``Authorization`` header value (for fetching Linear uploads)."""
        return await self._auth.authorization()

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> LinearClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------

    async def execute(
        self,
        operation: str,
        variables: Mapping[str, Any] | None = None,
        *,
        priority: Priority = "normal",
    ) -> dict[str, Any]:
        """Run the named operation and return its ``data``; see the module contract."""
        try:
            document = self._operations[operation]
        except KeyError:
            raise ValueError(f"no operation {operation!r} in operations.graphql") from None
        body = {"query": document, "variables": dict(variables or {}), "operationName": operation}
        waits = 0
        while True:
            try:
                return await self._send_with_retries(operation, body, priority)
            except _RateLimited as limited:
                waits += 1
                if waits > self._max_rate_limit_retries:
                    raise LinearUnavailable(
                        f"Linear {operation} still rate limited after {waits - 1} waits"
                    ) from None
                wait = min(limited.wait, self._max_rate_limit_wait)
                log.warning("linear.rate_limited", operation=operation, wait_seconds=wait)
                await self._clock.sleep(wait)

    async def _send_with_retries(
        self, operation: str, body: dict[str, Any], priority: Priority
    ) -> dict[str, Any]:
        try:
            async for attempt in stamina.retry_context(
                on=_transient,
                attempts=self._transient_attempts,
                timeout=self._transient_timeout,
                wait_initial=0.5,
                wait_max=self._transient_wait_max,
            ):
                with attempt:
                    try:
                        answer = await self._send_once(operation, body, priority)
                    except Exception as exc:
                        if self._on_health is not None:
                            self._on_health(not isinstance(exc, _OUTAGE_ERRORS))
                        raise
                    if self._on_health is not None:
                        self._on_health(True)
                    return answer
        except _ServerError as exc:
            raise LinearUnavailable(f"Linear {operation} kept failing: {exc}") from None
        except httpx.TransportError as exc:
            raise LinearUnavailable(
                f"Linear {operation} unreachable: {type(exc).__name__}: {exc}"
            ) from None
        raise AssertionError("unreachable: stamina either returns or raises")

    async def _post(
        self, operation: str, body: dict[str, Any], authorization: str, priority: Priority
    ) -> httpx.Response:
        await self.budget.acquire(priority, operation)
        try:
            return await self._http.post(
                self._settings.api_url,
                json=body,
                headers={"Authorization": authorization, "Content-Type": "application/json"},
            )
        except httpx.TransportError:
            count_request(operation, "network_error")
            raise

    async def _send_once(
        self, operation: str, body: dict[str, Any], priority: Priority
    ) -> dict[str, Any]:
        authorization = await self._auth.authorization()
        response = await self._post(operation, body, authorization, priority)
        if response.status_code == 401:
            count_request(operation, "unauthorized")
            refreshed = await self._auth.refresh(authorization)
            if refreshed is not None:
                log.info("linear.auth.refreshed_after_401", operation=operation)
                response = await self._post(operation, body, refreshed, priority)
                if response.status_code == 401:
                    count_request(operation, "unauthorized")
            if response.status_code == 401:
                raise LinearAuthError(f"Linear refused our credentials (401) for {operation}")
        return self._interpret(operation, response)

    def _interpret(self, operation: str, response: httpx.Response) -> dict[str, Any]:
        snapshot = read_rate_limit_headers(response.headers)
        if not snapshot.empty:
            self.rate_limit = snapshot
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        errors = payload.get("errors")
        status = response.status_code
        if status == 429 or _has_code(errors, "RATELIMITED"):
            count_request(operation, "ratelimited")
            now = self._clock.time()
            raise _RateLimited(
                rate_limited_wait(response.headers, now, max_wait=self._max_rate_limit_wait)
            )
        # A rate-limited answer's own wait (above) supersedes its headers; the budget
        # learns from the others, so it holds back before Linear has to refuse.
        if not snapshot.empty:
            self.budget.observe(snapshot, operation)
        if status >= 500:
            count_request(operation, "server_error")
            raise _ServerError(status, retry_after_seconds(response.headers, self._clock.time()))
        data = payload.get("data")
        if errors or status >= 400 or not isinstance(data, dict):
            count_request(operation, "error")
            first = _first_error(errors)
            extensions = (
                first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
            )
            message = (
                (extensions or {}).get("userPresentableMessage")
                or first.get("message")
                or f"HTTP {status} without data"
            )
            raise LinearRequestError(
                operation,
                str(message),
                status=status,
                code=(extensions or {}).get("code"),
                errors=errors if isinstance(errors, list) else None,
            )
        count_request(operation, "ok")
        return data

    async def _existing_after_refusal(
        self, refused: LinearRequestError, lookup: str, entity_id: str, field: str
    ) -> dict[str, Any]:
        """The entity ``entity_id`` if it exists; otherwise re-raise ``refused``.

        Linear refuses a create whose client-chosen id is taken; for us that means an
        earlier attempt of the same step succeeded, so the existing entity is the answer.
        """
        try:
            data = await self.execute(lookup, {"id": entity_id})
        except LinearRequestError:
            raise refused from None
        entity = data.get(field)
        if not isinstance(entity, dict):
            raise refused
        log.info("linear.create.already_exists", operation=refused.operation, id=entity_id)
        return entity

    @staticmethod
    def _require_success(operation: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or payload.get("success") is not True:
            raise LinearRequestError(operation, "Linear reported success: false", status=200)
        return payload

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
