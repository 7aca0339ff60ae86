"""A local stand-in for Linear's GraphQL API and webhooks, for tests and ``make demo``.

Contract:
- ``LinearStandIn().app`` is a starlette app serving ``POST /graphql`` and
  ``POST /oauth/token`` (client-credentials grant) over in-memory data
  (:class:`~edge_worker.sandbox.linear_store.LinearStore`, seeded with team ENG, its
  workflow states including "In Review" (type started), a human and the agent user).
  Run it with :func:`edge_worker.sandbox.server.serve_in_thread`; point the client's
  ``api_url`` at ``{base}/graphql`` and ``oauth_url`` at ``{base}``.
- Every document is parsed and validated against Linear's real schema (graphql-core);
  one that does not validate is answered with HTTP 400 and an ``errors`` list naming the
  problem, and so are variables the schema's input types refuse. When the schema file is
  absent the stand-in logs a warning and serves a small built-in subset unvalidated.
- Auth is required: ``Authorization: <api key>`` or ``Bearer <token>`` (tokens issued by
  ``/oauth/token`` or given at construction); otherwise 401. As Linear, it keeps one
  active client-credentials token per client: issuing a new one revokes the one before
  (:attr:`token_requests` counts the grants). :meth:`revoke_tokens` makes issued tokens
  fail as if expired.
- Every response carries ``X-RateLimit-Requests-*`` and complexity headers from a
  sliding hour of ``requests_per_hour``; past it, or when scripted with
  :meth:`fail_next`, the answer is a ``RATELIMITED`` error (HTTP 400 or 429) or a 5xx.
  :meth:`limit_endpoint` gives one operation its own lower hourly limit, reported with
  ``X-RateLimit-Endpoint-Requests-*`` and ``X-RateLimit-Endpoint-Name`` and refused
  (``RATELIMITED``) past it, as Linear does for some queries and mutations.
- Uploaded files (:meth:`LinearStore.add_upload`, linked from descriptions, comments or
  attachments) are served at ``GET /uploads/...`` to requests with the same
  ``Authorization`` the API takes (401 otherwise, 404 for an unknown file); each fetch is
  recorded in :attr:`upload_requests`.
- Every GraphQL request is recorded (:attr:`requests`: operation name, variables, time,
  status); :meth:`operation_counts` counts them per operation name.
- Client-chosen ids are enforced unique: a create reusing one is refused like Linear
  refuses it; turning that into success is the client's job.
- ``issue_assigned`` / ``issue_undelegated`` / ``issue_deleted`` /
  ``agent_session_created`` / ``agent_session_prompted`` / ``comment_created`` /
  ``assignment_notification`` / ``team_access_removed`` / ``app_revoked`` (undone by
  ``app_reinstalled``) update the data as Linear would and
  return a :class:`WebhookDelivery` (built with ``edge_worker.sandbox.payloads``) that
  :func:`send_webhook` / :func:`asend_webhook` sign and POST to a daemon URL.
  ``delegation`` is what one delegation sends (the session's ``created``, the inbox
  notification, the ``Issue`` update of ``delegateId``); ``session_reply`` is a reply in
  a session's thread, which Linear delivers both as ``prompted`` and as a ``Comment``.
- Agent sessions follow Linear's state rules: the last activity sets the state (a
  ``response`` completes the session, an ``error`` fails it, an ``elicitation`` leaves it
  ``awaitingInput``, anything else makes it ``active``); each activity records the state
  it left (``status_after``) and its ``signal``/``signalMetadata``; a user's prompt makes
  the session active again. ``addedExternalUrls`` add links without repeats.
- ``latency_seconds`` delays every GraphQL answer (as a distant Linear would).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import structlog
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_worker.sandbox import payloads
from edge_worker.sandbox.linear_mutations import MutationRoot
from edge_worker.sandbox.linear_schema import load_schema
from edge_worker.sandbox.linear_store import Issue, LinearStore, StandInError
from edge_worker.sandbox.linear_views import QueryRoot
from edge_worker.webhooks.verify import sign

log = structlog.get_logger(__name__)

DEFAULT_API_KEY = "lin_api_sandbox_key"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
COMPLEXITY_LIMIT = 250_000
MAX_CACHED_DOCUMENTS = 1000
FailureKind = Literal["ratelimited", "server_error"]


@dataclass(frozen=True)
class RecordedRequest:
    """One GraphQL request as the stand-in received it."""

    operation: str | None
    variables: dict[str, Any]
    time: float
    status: int
    authorization: str | None


@dataclass
class _Failure:
    kind: FailureKind
    status: int
    reset_in: float
    retry_after: float | None
    after_processing: bool


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook Linear would send: the ``Linear-Event`` name and the JSON payload."""

    event: str
    payload: dict[str, Any] = field(hash=False)

    def body(self) -> bytes:
        """The exact bytes sent (and signed)."""
        return json.dumps(self.payload, separators=(",", ":")).encode()


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode()


def signed_webhook(secret: str | bytes, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
    """The body and headers of ``delivery``, signed as Linear signs it."""
    body = delivery.body()
    headers = {
        "Content-Type": "application/json",
        "Linear-Event": delivery.event,
        "Linear-Delivery": str(uuid.uuid4()),
        "Linear-Signature": sign(_secret_bytes(secret), body),
    }
    return body, headers


def send_webhook(
    url: str, secret: str | bytes, delivery: WebhookDelivery, *, timeout: float = 10.0
) -> httpx.Response:
    """POST ``delivery`` to ``url`` signed with ``secret`` (blocking)."""
    body, headers = signed_webhook(secret, delivery)
    return httpx.post(url, content=body, headers=headers, timeout=timeout)


async def asend_webhook(
    url: str,
    secret: str | bytes,
    delivery: WebhookDelivery,
    *,
    client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST ``delivery`` to ``url`` signed with ``secret``."""
    body, headers = signed_webhook(secret, delivery)
    if client is not None:
        return await client.post(url, content=body, headers=headers, timeout=timeout)
    async with httpx.AsyncClient(timeout=timeout) as own:
        return await own.post(url, content=body, headers=headers)


def _error(message: str, code: str, user_message: str, kind: str) -> dict[str, Any]:
    return {
        "message": message,
        "extensions": {"code": code, "type": kind, "userPresentableMessage": user_message},
    }


class LinearStandIn:
    """Linear's GraphQL endpoint in memory; see the module contract."""

    def __init__(
        self,
        *,
        schema_path: Path | None = None,
        require_schema: bool = False,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        access_tokens: Iterable[str] = (),
        oauth_clients: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        requests_per_hour: int = 5000,
        token_lifetime_seconds: int = 30 * 24 * 3600,
        latency_seconds: float = 0.0,
    ) -> None:
        self.clock = clock
        self.latency_seconds = latency_seconds
        self.store = LinearStore(clock)
        self.schema, self.validates = load_schema(schema_path)
        if require_schema and not self.validates:
            raise FileNotFoundError(f"Linear schema not found at {schema_path}")
        self.api_keys = set(api_keys)
        self.access_tokens = set(access_tokens)
        self._issued_tokens: dict[str, str] = {}  # token -> the client it was issued to
        self.oauth_clients = dict(
            oauth_clients
            if oauth_clients is not None
            else {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        )
        self._revoked_clients: dict[str, str] = {}
        self.token_lifetime_seconds = token_lifetime_seconds
        self.token_requests = 0
        self.requests_per_hour = requests_per_hour
        self.requests: list[RecordedRequest] = []
        self.upload_requests: list[tuple[str, int, str | None]] = []
        """``(path, status, authorization)`` of every upload fetch."""
        self._window: deque[float] = deque()
        self._endpoint_limits: dict[str, int] = {}
        self._endpoint_windows: dict[str, deque[float]] = {}
        self._failures: deque[_Failure] = deque()
        self._lock = threading.RLock()
        self._documents: dict[str, DocumentNode] = {}
        self._verdicts: dict[str, list[GraphQLError]] = {}
        self.app = Starlette(
            routes=[
                Route("/graphql", self._graphql, methods=["POST"]),
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/uploads/{path:path}", self._upload, methods=["GET"]),
            ]
        )

    def client_env(self, base_url: str) -> dict[str, str]:
        """Environment variables that point a daemon at this stand-in served at ``base_url``."""
        return {
            "EDGE_WORKER_LINEAR__API_URL": base_url.rstrip("/") + "/graphql",
            "EDGE_WORKER_LINEAR__OAUTH_URL": base_url.rstrip("/"),
            "EDGE_WORKER_LINEAR__API_KEY": next(iter(sorted(self.api_keys)), ""),
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": self.store.agent.id,
        }

    # -- scripting and inspection -----------------------------------------------------------

    def fail_next(
        self,
        count: int,
        kind: FailureKind = "ratelimited",
        *,
        status: int | None = None,
        reset_in: float = 30.0,
        retry_after: float | None = None,
        after_processing: bool = False,
    ) -> None:
        """Answer the next ``count`` authenticated GraphQL requests with a failure.

        ``ratelimited``: a ``RATELIMITED`` error, HTTP ``status`` 400 (default) or 429,
        with ``X-RateLimit-Requests-Remaining: 0`` and a reset ``reset_in`` seconds ahead
        (and ``Retry-After`` when given). ``server_error``: HTTP ``status`` (default 503).
        ``after_processing=True`` (server errors only) carries the request out first and
        then answers the error, like a response lost after Linear committed the write.
        """
        default_status = 400 if kind == "ratelimited" else 503
        if after_processing and kind != "server_error":
            raise ValueError("only server errors can happen after processing")
        with self._lock:
            for _ in range(count):
                failure = _Failure(
                    kind, status or default_status, reset_in, retry_after, after_processing
                )
                self._failures.append(failure)

    def limit_endpoint(self, operation: str, requests_per_hour: int) -> None:
        """Give ``operation`` its own sliding-hour limit of ``requests_per_hour``."""
        with self._lock:
            self._endpoint_limits[operation] = requests_per_hour
            self._endpoint_windows.setdefault(operation, deque())

    def revoke_tokens(self) -> None:
        """Make every OAuth token issued so far fail with 401, as if it had expired."""
        with self._lock:
            self._issued_tokens.clear()

    def operation_counts(self) -> dict[str, int]:
        """How many GraphQL requests were received, per operation name."""
        with self._lock:
            return dict(Counter(r.operation or "<anonymous>" for r in self.requests))

    def count(self, operation: str | None = None) -> int:
        """Requests received in total, or for one operation name."""
        with self._lock:
            if operation is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.operation == operation)

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        """The recorded requests for one operation name, oldest first."""
        with self._lock:
            return [r for r in self.requests if r.operation == operation]

    def clear_requests(self) -> None:
        """Forget recorded requests (data stays)."""
        with self._lock:
            self.requests.clear()

    # -- HTTP ------------------------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        if header.startswith("Bearer "):
            token = header.removeprefix("Bearer ").strip()
            return token in self.access_tokens or token in self._issued_tokens
        return header.strip() in self.api_keys

    def _rate_headers(self, now: float, *, exhausted: bool = False) -> dict[str, str]:
        while self._window and self._window[0] <= now - 3600:
            self._window.popleft()
        remaining = 0 if exhausted else max(0, self.requests_per_hour - len(self._window))
        reset_at = (self._window[0] + 3600) if self._window else now + 3600
        reset_ms = str(int(reset_at * 1000))
        return {
            "X-RateLimit-Requests-Limit": str(self.requests_per_hour),
            "X-RateLimit-Requests-Remaining": str(remaining),
            "X-RateLimit-Requests-Reset": reset_ms,
            "X-RateLimit-Complexity-Limit": str(COMPLEXITY_LIMIT),
            "X-RateLimit-Complexity-Remaining": str(COMPLEXITY_LIMIT),
            "X-RateLimit-Complexity-Reset": reset_ms,
            "X-Complexity": "1",
        }

    def _endpoint_headers(self, operation: str, now: float) -> dict[str, str]:
        window = self._endpoint_windows[operation]
        while window and window[0] <= now - 3600:
            window.popleft()
        limit = self._endpoint_limits[operation]
        reset_at = (window[0] + 3600) if window else now + 3600
        return {
            "X-RateLimit-Endpoint-Name": operation,
            "X-RateLimit-Endpoint-Requests-Limit": str(limit),
            "X-RateLimit-Endpoint-Requests-Remaining": str(max(0, limit - len(window))),
            "X-RateLimit-Endpoint-Requests-Reset": str(int(reset_at * 1000)),
        }

    def _ratelimited(
        self,
        now: float,
        status: int,
        reset_in: float,
        retry: float | None,
        endpoint: dict[str, str] | None = None,
    ) -> Response:
        headers = self._rate_headers(now, exhausted=endpoint is None)
        if endpoint is None:
            headers["X-RateLimit-Requests-Reset"] = str(int((now + reset_in) * 1000))
        else:
            headers.update(endpoint)
        if retry is not None:
            headers["Retry-After"] = str(int(retry))
        body = {
            "errors": [
                _error(
                    "Rate limit exceeded",
                    "RATELIMITED",
                    "You have exceeded the API rate limit. Please try again later.",
                    "ratelimited",
                )
            ]
        }
        return JSONResponse(body, status_code=status, headers=headers)

    async def _graphql(self, request: Request) -> Response:
        raw = await request.body()
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        authorization = request.headers.get("authorization")
        with self._lock:
            now = self.clock()
            response, operation, variables = self._handle(raw, authorization, now)
            self.requests.append(
                RecordedRequest(operation, variables, now, response.status_code, authorization)
            )
            return response

    def _handle(
        self, raw: bytes, authorization: str | None, now: float
    ) -> tuple[Response, str | None, dict[str, Any]]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            problem = _error(
                "Body must be JSON with a 'query' string",
                "BAD_REQUEST",
                "Bad request.",
                "invalid input",
            )
            return JSONResponse({"errors": [problem]}, status_code=400), None, {}
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            variables = {}
        operation = (
            body.get("operationName") if isinstance(body.get("operationName"), str) else None
        )
        try:
            document = self._parse(body["query"])
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, status_code=400), operation, variables
        operation_ast = get_operation_ast(document, operation)
        if operation is None and operation_ast is not None and operation_ast.name is not None:
            operation = operation_ast.name.value

        if not self._authorized(authorization):
            problem = _error(
                "Authentication required, not authenticated",
                "AUTHENTICATION_ERROR",
                "You need to authenticate to access this operation.",
                "authentication error",
            )
            return JSONResponse({"errors": [problem]}, status_code=401), operation, variables

        failure = self._failures.popleft() if self._failures else None
        if failure is not None and not failure.after_processing:
            if failure.kind == "ratelimited":
                response = self._ratelimited(
                    now, failure.status, failure.reset_in, failure.retry_after
                )
                return response, operation, variables
            return self._server_error(failure), operation, variables

        headers = self._rate_headers(now)
        if headers["X-RateLimit-Requests-Remaining"] == "0":
            reset_in = float(headers["X-RateLimit-Requests-Reset"]) / 1000 - now
            return self._ratelimited(now, 400, reset_in, None), operation, variables
        endpoint: dict[str, str] = {}
        if operation is not None and operation in self._endpoint_limits:
            endpoint = self._endpoint_headers(operation, now)
            if endpoint["X-RateLimit-Endpoint-Requests-Remaining"] == "0":
                response = self._ratelimited(now, 400, 0.0, None, endpoint)
                return response, operation, variables
            self._endpoint_windows[operation].append(now)
            endpoint = self._endpoint_headers(operation, now)
        self._window.append(now)
        headers = {**self._rate_headers(now), **endpoint}

        # Against Linear's schema when present; against the built-in subset otherwise,
        # which only keeps the executor from running a malformed document.
        problems = self._validate(body["query"], document)
        if problems:
            errors = [_graphql_error(p) for p in problems]
            response = JSONResponse({"errors": errors}, status_code=400, headers=headers)
            return response, operation, variables
        if operation_ast is None:
            problem = _error(
                "Must provide a single operation or a valid operationName",
                "GRAPHQL_VALIDATION_FAILED",
                "Bad request.",
                "graphql error",
            )
            return (
                JSONResponse({"errors": [problem]}, status_code=400, headers=headers),
                operation,
                variables,
            )
        root: QueryRoot | MutationRoot = (
            MutationRoot(self.store)
            if operation_ast.operation == OperationType.MUTATION
            else QueryRoot(self.store)
        )
        result = execute_sync(
            self.schema,
            document,
            root_value=root,
            variable_values=variables,
            operation_name=operation,
        )
        if failure is not None:  # carried out, but the answer is lost
            return self._server_error(failure), operation, variables
        return self._result_response(result, headers), operation, variables

    def _parse(self, query: str) -> DocumentNode:
        document = self._documents.get(query)
        if document is None:
            document = parse(query)
            if len(self._documents) < MAX_CACHED_DOCUMENTS:
                self._documents[query] = document
        return document

    def _validate(self, query: str, document: DocumentNode) -> list[GraphQLError]:
        """The schema's verdict on a document, remembered per query text: a client sends
        the same few operations over and over, and validating against Linear's whole
        schema costs milliseconds each time."""
        problems = self._verdicts.get(query)
        if problems is None:
            problems = validate(self.schema, document)
            if len(self._verdicts) < MAX_CACHED_DOCUMENTS:
                self._verdicts[query] = problems
        return problems

    @staticmethod
    def _server_error(failure: _Failure) -> Response:
        headers = {"Retry-After": str(int(failure.retry_after))} if failure.retry_after else {}
        problem = _error("Internal server error", "INTERNAL_SERVER_ERROR", "Try again.", "internal")
        return JSONResponse({"errors": [problem]}, status_code=failure.status, headers=headers)

    @staticmethod
    def _result_response(result: ExecutionResult, headers: dict[str, str]) -> Response:
        payload: dict[str, Any] = {"data": result.data}
        if not result.errors:
            return JSONResponse(payload, headers=headers)
        payload["errors"] = [_graphql_error(error) for error in result.errors]
        statuses = [
            error.original_error.status
            for error in result.errors
            if isinstance(error.original_error, StandInError)
        ]
        for error in result.errors:
            if error.original_error is not None and not isinstance(
                error.original_error, StandInError
            ):
                log.error("linear_standin.resolver_failed", error=repr(error.original_error))
        status = 200 if result.data is not None else max(statuses, default=400)
        return JSONResponse(payload, status_code=status, headers=headers)

    async def _upload(self, request: Request) -> Response:
        path = request.url.path
        authorization = request.headers.get("authorization")
        with self._lock:
            upload = self.store.uploads.get(path)
            if not self._authorized(authorization):
                status = 401
            else:
                status = 200 if upload is not None else 404
            self.upload_requests.append((path, status, authorization))
        if status != 200 or upload is None:
            return Response(status_code=status)
        return Response(upload.content, media_type=upload.media_type)

    async def _token(self, request: Request) -> Response:
        # Parsed by hand: starlette's form parser needs python-multipart, a dependency
        # not worth adding for one urlencoded body.
        fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        form = {name: values[0] for name, values in fields.items()}
        with self._lock:
            self.token_requests += 1
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not isinstance(client_id, str) or self.oauth_clients.get(client_id) != secret:
                return JSONResponse(
                    {
                        "error": "invalid_client",
                        "error_description": "Client authentication failed",
                    },
                    status_code=401,
                )
            token = "lin_oauth_" + secrets.token_hex(16)
            # One active token per client: the new one revokes the one before.
            for earlier in [t for t, c in self._issued_tokens.items() if c == client_id]:
                del self._issued_tokens[earlier]
            self._issued_tokens[token] = client_id
            return JSONResponse(
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": self.token_lifetime_seconds,
                    "scope": str(form.get("scope") or "read"),
                }
            )

    # -- webhooks --------------------------------------------------------------------------

    def _issue_fields(self, issue: Issue) -> dict[str, Any]:
        team = self.store.teams[issue.team_id]
        return {
            "identifier": issue.identifier,
            "title": issue.title,
            "description": issue.description,
            "team_payload": payloads.team(team.id, team.key, team.name),
        }

    def issue_assigned(
        self, issue_id: str, *, field: str = "delegateId", actor_id: str | None = None
    ) -> WebhookDelivery:
        """Give the issue to the agent (as delegate or assignee); the ``Issue`` webhook."""
        with self._lock:
            issue = self.store.find_issue(issue_id)
            attribute = "delegate_id" if field == "delegateId" else "assignee_id"
            previous = getattr(issue, attribute)
            setattr(issue, attribute, self.store.agent.id)
            state = self.store.states[issue.state_id]
            payload = payloads.issue_assigned(
                issue.id,
                self.store.agent.id,
                actor_id=actor_id or self.store.human.id,
                field=field,
                previous=previous,
                state_type=state.type,
                **self._issue_fields(issue),
            )
        return WebhookDelivery("Issue", payload)

    def issue_edited(
        self, issue_id: str, *, title: str | None = None, description: str | None = None
    ) -> WebhookDelivery:
        """Change the issue's title and/or description; the ``Issue`` update webhook."""
        with self._lock:
            issue = self.store.find_issue(issue_id)
            previous: dict[str, Any] = {}
            if title is not None:
                previous["title"], issue.title = issue.title, title
            if description is not None:
                previous["description"], issue.description = issue.description, description
            issue.updated_at = self.store.clock()
            state = self.store.states[issue.state_id]
            payload = payloads.issue_edited(
                issue.id,
                previous=previous,
                actor_id=self.store.human.id,
                state_type=state.type,
                assignee_id=issue.assignee_id,
                delegate_id=issue.delegate_id,
                updated_at=payloads.iso_time(issue.updated_at),
                **self._issue_fields(issue),
            )
        return WebhookDelivery("Issue", payload)

    def assignment_notification(self, issue_id: str) -> WebhookDelivery:
        """The ``AppUserNotification`` (``issueAssignedToYou``) for an issue."""
        with self._lock:
            issue = self.store.find_issue(issue_id)
            payload = payloads.notification(
                "issueAssignedToYou", issue.id, self.store.agent.id, actor_id=self.store.human.id
            )
        return WebhookDelivery("AppUserNotification", payload)

    def agent_session_created(
        self,
        issue_id: str,
        *,
        creator_id: str | None = None,
        guidance: list[dict[str, Any]] | None = None,
        previous_comments: list[dict[str, Any]] | None = None,
    ) -> WebhookDelivery:
        """Open an agent session on the issue; the ``AgentSessionEvent``/``created`` webhook.

        The new session's id is ``delivery.payload["agentSession"]["id"]``.
        """
        with self._lock:
            issue = self.store.find_issue(issue_id)
            session = self.store.add_session(issue.id, creator_id=creator_id)
            fields = self._issue_fields(issue)
            context = f'<issue identifier="{issue.identifier}"><title>{issue.title}</title></issue>'
            payload = payloads.agent_session_created(
                session.id,
                issue.id,
                self.store.agent.id,
                creator_id=session.creator_id or self.store.human.id,
                prompt_context=context,
                guidance=guidance,
                previous_comments=previous_comments,
                **fields,
            )
        return WebhookDelivery("AgentSessionEvent", payload)

    def agent_session_prompted(
        self,
        session_id: str,
        body: str,
        *,
        signal: str | None = None,
        user_id: str | None = None,
    ) -> WebhookDelivery:
        """A user message (or ``signal="stop"``) in a session, by the human unless
        ``user_id``; the ``prompted`` webhook."""
        with self._lock:
            session = self.store.sessions[session_id]
            activity = self.store.add_prompt(session_id, body, signal=signal, user_id=user_id)
            payload = payloads.agent_session_prompted(
                session.id,
                session.issue_id or "",
                self.store.agent.id,
                body,
                activity_id=activity.id,
                user_id=activity.user_id or self.store.human.id,
                signal=signal,
            )
        return WebhookDelivery("AgentSessionEvent", payload)

    def issue_undelegated(self, issue_id: str) -> WebhookDelivery:
        """Take the issue away from the agent (delegate cleared); the ``Issue`` webhook."""
        with self._lock:
            issue = self.store.find_issue(issue_id)
            issue.delegate_id = None
            state = self.store.states[issue.state_id]
            payload = payloads.issue_unassigned(
                issue.id,
                self.store.agent.id,
                actor_id=self.store.human.id,
                field="delegateId",
                state_type=state.type,
                **self._issue_fields(issue),
            )
        return WebhookDelivery("Issue", payload)

    def issue_deleted(self, issue_id: str) -> WebhookDelivery:
        """Delete the issue (reads and writes on it fail from now); the ``Issue`` remove
        webhook."""
        with self._lock:
            issue = self.store.find_issue(issue_id)
            del self.store.issues[issue.id]
            payload = payloads.issue_removed(issue.id, actor_id=self.store.human.id)
        return WebhookDelivery("Issue", payload)

    def team_access_removed(self, team_id: str) -> WebhookDelivery:
        """The ``PermissionChange`` webhook for the agent losing access to a team."""
        with self._lock:
            payload = payloads.permission_change(self.store.agent.id, removed_team_ids=[team_id])
        return WebhookDelivery("PermissionChange", payload)

    def app_revoked(self, client_id: str = DEFAULT_CLIENT_ID) -> WebhookDelivery:
        """Revoke the OAuth app: its tokens fail with 401 and its grants are refused
        until :meth:`app_reinstalled`; the ``OAuthApp`` revoked webhook."""
        with self._lock:
            self._revoked_clients[client_id] = self.oauth_clients.pop(client_id)
            for token in [t for t, c in self._issued_tokens.items() if c == client_id]:
                del self._issued_tokens[token]
            payload = payloads.oauth_app_revoked(client_id)
        return WebhookDelivery("OAuthApp", payload)

    def app_reinstalled(self, client_id: str = DEFAULT_CLIENT_ID) -> None:
        """Install the revoked app again: its client credentials work again."""
        with self._lock:
            self.oauth_clients[client_id] = self._revoked_clients.pop(client_id)

    def delegation(self, issue_id: str) -> tuple[WebhookDelivery, WebhookDelivery, WebhookDelivery]:
        """Delegate the issue to the agent: the three webhooks Linear sends for it, in the
        order ``(session created, inbox notification, Issue delegateId update)``."""
        created = self.agent_session_created(issue_id)
        notified = self.assignment_notification(issue_id)
        updated = self.issue_assigned(issue_id, field="delegateId")
        return created, notified, updated

    def session_reply(self, session_id: str, body: str) -> tuple[WebhookDelivery, WebhookDelivery]:
        """A user's reply in a session's thread: the ``prompted`` webhook and the
        ``Comment`` webhook for the same comment (its id is the prompt's
        ``sourceCommentId``)."""
        with self._lock:
            session = self.store.sessions[session_id]
            issue = self.store.find_issue(session.issue_id or "")
            comment = self.store.add_comment(issue.id, body)
            activity = self.store.add_prompt(session_id, body)
            prompted = payloads.agent_session_prompted(
                session.id,
                issue.id,
                self.store.agent.id,
                body,
                activity_id=activity.id,
                user_id=self.store.human.id,
                source_comment_id=comment.id,
            )
            commented = payloads.comment_created(
                comment.id,
                issue.id,
                body,
                user_id=self.store.human.id,
                identifier=issue.identifier,
            )
        return WebhookDelivery("AgentSessionEvent", prompted), WebhookDelivery("Comment", commented)

    def comment_created(
        self, issue_id: str, body: str, *, user_id: str | None = None
    ) -> WebhookDelivery:
        """A comment on the issue (by the human unless ``user_id``); the ``Comment`` webhook."""
        with self._lock:
            issue = self.store.find_issue(issue_id)
            comment = self.store.add_comment(issue.id, body, user_id=user_id)
            payload = payloads.comment_created(
                comment.id,
                issue.id,
                body,
                user_id=comment.user_id or self.store.human.id,
                identifier=issue.identifier,
            )
        return WebhookDelivery("Comment", payload)


def _graphql_error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, StandInError):
        formatted["extensions"] = {**original.extensions, **(formatted.get("extensions") or {})}
    elif original is None:
        formatted.setdefault("extensions", {"code": "GRAPHQL_VALIDATION_FAILED"})
    return formatted
