"""The transport under the Linear client: named operations POSTed, budgeted and retried.

Contract (the behaviour :mod:`edge_worker.linear.client` states for every request):
- Every request is one named operation from ``operations.graphql`` (loaded once), POSTed
  with plain httpx.
- Before each request a token is taken from the :class:`RequestBudget` (``priority="low"``
  waits first when the budget runs low, and an operation whose own endpoint limit Linear
  reported exhausted waits for its reset); after each, Linear's ``X-RateLimit-*`` headers
  are recorded (``rate_limit``), endpoint ones included.
- ``RATELIMITED`` / HTTP 429: wait (on the injected clock) for ``Retry-After`` or the
  reset, then retry, at most ``max_rate_limit_retries`` times. Network errors and 5xx:
  retried with jittered exponential backoff by stamina, bounded in time and (unless
  ``transient_attempts`` is ``None``) in attempts. 401: one token refresh when client
  credentials allow it. Anything else Linear refuses raises :class:`LinearRequestError`
  at once with Linear's message. Exhausted retries raise :class:`LinearUnavailable`.
- Every HTTP request is counted in ``edge_worker_linear_requests_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self

import httpx
import stamina
import structlog

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
from edge_worker.settings import LinearSettings

log = structlog.get_logger(__name__)


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


class LinearTransport:
    """Runs the operations of ``operations.graphql``; see the module contract.

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

    async def __aenter__(self) -> Self:
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
