"""A small typed httpx client for Codegen's agent-run endpoints (create, get, list, resume).

Contract:
- Every request carries ``Authorization: Bearer <token>`` and goes through the
  organisation's :class:`~edge_worker.executors.rate_limit.OrgRateLimiter` (creations in
  their own window), so the process never exceeds Codegen's limits.
- 429: every caller of that kind is paused for ``Retry-After`` (a full window when absent),
  then the request is retried (bounded, via stamina).
- Requests that surely never took effect (connection refused, 429, 502, 503) are retried
  for every endpoint; read timeouts and other 5xx only for get and list. For create and
  resume they raise :class:`CodegenAmbiguous`: the caller decides (create looks the run up
  by its metadata before trying again).
- 402 raises ``ExecutorUnavailable("Codegen unavailable: quota")``; 401 and 403 raise
  ``ExecutorUnavailable("Codegen unavailable: unauthorized ...")``; 404 raises
  :class:`CodegenNotFound`; anything else :class:`CodegenError`. The token is never logged.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import stamina
import structlog
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from edge_worker.executors.base import ExecutorUnavailable
from edge_worker.executors.rate_limit import (
    CALL_WINDOW_SECONDS,
    CREATE_WINDOW_SECONDS,
    CallKind,
    OrgRateLimiter,
)

log = structlog.get_logger(__name__)

_M = TypeVar("_M", bound=BaseModel)

QUOTA_REASON = "Codegen unavailable: quota"
MAX_PAGE_SIZE = 100
_ALWAYS_RETRIED_STATUSES = frozenset({502, 503})
_RETRIED_WHEN_IDEMPOTENT = frozenset({500, 504})


class PullRequest(BaseModel):
    """``GithubPullRequestResponse``."""

    model_config = ConfigDict(extra="ignore")

    id: int
    title: str | None = None
    url: str | None = None
    created_at: str | None = None
    head_branch_name: str | None = None


class AgentRun(BaseModel):
    """``AgentRunResponse``: one agent run as Codegen reports it."""

    model_config = ConfigDict(extra="ignore")

    id: int
    organization_id: int
    status: str | None = None
    created_at: str | None = None
    web_url: str | None = None
    result: str | None = None
    summary: str | None = None
    source_type: str | None = None
    github_pull_requests: list[PullRequest] | None = None
    metadata: dict[str, Any] | None = None


class AgentRunPage(BaseModel):
    """``Page[AgentRunResponse]``: newest runs first."""

    model_config = ConfigDict(extra="ignore")

    items: list[AgentRun]
    total: int
    page: int
    size: int
    pages: int


class CodegenError(Exception):
    """Codegen answered with an error (or not at all); ``status_code`` is None without answer."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class CodegenNotFound(CodegenError):
    """The run (or organisation) does not exist."""


class CodegenAmbiguous(CodegenError):
    """A create or resume failed in a way that may or may not have taken effect."""


class CodegenRateLimited(CodegenError):
    """429 on every attempt."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class CodegenUnreachable(CodegenError):
    """Connection failures or server errors on every attempt."""


def parse_retry_after(value: str | None, *, default: float, cap: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return default
    return min(max(seconds, 0.0), cap)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if key in body:
                return str(body[key])[:500]
    return str(body)[:200]


class _Retryable(CodegenError):
    """Internal: an attempt that surely had no effect, or an idempotent one; retry it."""


def _retry_hook(exc: Exception) -> bool | float:
    if isinstance(exc, CodegenRateLimited):
        return 0.0  # the limiter already holds every caller back for Retry-After
    return isinstance(exc, _Retryable)


class CodegenClient:
    """Typed access to one organisation's agent runs. Share one per organisation and process."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        org_id: int,
        api_token: SecretStr,
        limiter: OrgRateLimiter,
        attempts: int = 6,
        wait_initial: float = 0.5,
        wait_max: float = 30.0,
        wait_jitter: float = 1.0,
        max_retry_after: float = 300.0,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/") + f"/v1/organizations/{org_id}"
        self.org_id = org_id
        self._token = api_token
        self.limiter = limiter
        self._attempts = attempts
        self._wait_initial = wait_initial
        self._wait_max = wait_max
        self._wait_jitter = wait_jitter
        self._max_retry_after = max_retry_after
        self._on_health = on_health
        """Told whether each attempt reached Codegen (outage alerts): ``False`` when it
        could not be reached or answered 5xx."""

    async def create_run(
        self,
        prompt: str,
        *,
        repo_id: int | None,
        metadata: dict[str, Any],
        images: list[str] | None = None,
    ) -> AgentRun:
        """``POST /agent/run`` (counts against the creation limit); ``images`` are base64
        data URIs."""
        body: dict[str, Any] = {"prompt": prompt, "metadata": metadata}
        if repo_id is not None:
            body["repo_id"] = repo_id
        if images:
            body["images"] = images
        data = await self._request("create", "POST", "/agent/run", json=body, idempotent=False)
        return _parse(AgentRun, data)

    async def get_run(self, run_id: int) -> AgentRun:
        """``GET /agent/run/{id}``."""
        data = await self._request("call", "GET", f"/agent/run/{run_id}", idempotent=True)
        return _parse(AgentRun, data)

    async def list_runs(self, *, skip: int = 0, limit: int = MAX_PAGE_SIZE) -> AgentRunPage:
        """``GET /agent/runs``: one page, newest first."""
        params = {"skip": skip, "limit": min(max(limit, 1), MAX_PAGE_SIZE)}
        data = await self._request("call", "GET", "/agent/runs", params=params, idempotent=True)
        return _parse(AgentRunPage, data)

    async def resume_run(self, run_id: int, prompt: str) -> AgentRun:
        """``POST /agent/run/resume`` with a new prompt for the same run."""
        body = {"agent_run_id": run_id, "prompt": prompt}
        data = await self._request("call", "POST", "/agent/run/resume", json=body, idempotent=False)
        return _parse(AgentRun, data)

    async def _request(
        self,
        kind: CallKind,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
    ) -> Any:
        retrying = stamina.retry_context(
            on=_retry_hook,
            attempts=self._attempts,
            timeout=None,
            wait_initial=self._wait_initial,
            wait_max=self._wait_max,
            wait_jitter=self._wait_jitter,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        answer = await self._send_once(
                            kind, method, path, json=json, params=params, idempotent=idempotent
                        )
                    except _Retryable:
                        self._health(False)
                        raise
                    self._health(True)
                    return answer
        except _Retryable as exc:
            raise CodegenUnreachable(exc.message, exc.status_code) from None
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    def _health(self, ok: bool) -> None:
        if self._on_health is not None:
            self._on_health(ok)

    async def _send_once(
        self,
        kind: CallKind,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None,
        params: dict[str, Any] | None,
        idempotent: bool,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        try:
            async with self.limiter.reserve(kind):
                response = await self._http.request(
                    method, self._base + path, json=json, params=params, headers=headers
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Retryable(f"cannot reach Codegen: {exc.__class__.__name__}") from exc
        except httpx.TransportError as exc:
            message = f"no answer from Codegen: {exc.__class__.__name__}"
            if idempotent:
                raise _Retryable(message) from exc
            raise CodegenAmbiguous(message) from exc

        status = response.status_code
        if status < 300:
            try:
                return response.json()
            except ValueError:
                raise CodegenError(
                    "Codegen answered with a body that is not JSON", status
                ) from None
        message = _error_message(response)
        if status == 429:
            default = CREATE_WINDOW_SECONDS if kind == "create" else CALL_WINDOW_SECONDS
            wait = parse_retry_after(
                response.headers.get("Retry-After"), default=default, cap=self._max_retry_after
            )
            self.limiter.pause(kind, wait)
            log.warning("codegen.rate_limited", method=method, path=path, retry_after=wait)
            raise CodegenRateLimited(f"rate limited: {message}", wait)
        if status == 402:
            log.warning("codegen.quota_exhausted", method=method, path=path)
            raise ExecutorUnavailable(QUOTA_REASON)
        if status in (401, 403):
            raise ExecutorUnavailable(
                f"Codegen unavailable: unauthorized (HTTP {status}); check "
                "EDGE_WORKER_CODEGEN__API_TOKEN and EDGE_WORKER_CODEGEN__ORG_ID"
            )
        if status == 404:
            raise CodegenNotFound(message, status)
        if status in _ALWAYS_RETRIED_STATUSES or (
            idempotent and status in _RETRIED_WHEN_IDEMPOTENT
        ):
            raise _Retryable(f"Codegen server error {status}: {message}", status)
        if status >= 500:
            raise CodegenAmbiguous(f"Codegen server error {status}: {message}", status)
        raise CodegenError(f"Codegen rejected {method} {path} ({status}): {message}", status)


def _parse(model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CodegenError(f"unexpected Codegen response shape: {exc.errors()[:3]}") from None
