"""GitHub's REST API for delivery: pull requests, labels, reviewers, installation tokens.

Why ``gidgethub``: it is sans-I/O like the rest of this codebase (request building, response
deciphering, rate-limit parsing and webhook signatures are pure functions) with a thin
httpx adapter, and since 6.0 it has hooks for proactive and reactive rate limiting. We use
five endpoints, so ``githubkit``'s generated types for the whole API would be weight without
benefit; responses are read defensively into :class:`PullRequest` instead.

Contract:
- Authentication: :class:`StaticToken` (a personal or fine-grained token) or
  :class:`AppInstallation` (an RS256 app JWT exchanged for an installation token, cached and
  renewed :data:`RENEW_BEFORE_SECONDS` before it expires). :meth:`GitHubAuth.token` is also
  what ``git push`` gets through ``GIT_ASKPASS``.
- Rate limits: before a call, when ``X-RateLimit-Remaining`` reached 0 the client waits for
  ``X-RateLimit-Reset``; a 403/429 with ``Retry-After`` (secondary limit) or with no quota
  left is retried after the wait, at most :data:`MAX_RETRIES` times and only when the wait
  is under ``max_wait_seconds``; otherwise :class:`DeliveryError` (``rate_limited``).
- Every failure is a :class:`DeliveryError` with a ``kind`` and a one-line ``reason`` a
  user can act on (no tokens, URLs with credentials or exception reprs in it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import gidgethub
import gidgethub.apps
import gidgethub.httpx
import httpx

REQUESTER = "edge-worker"
RENEW_BEFORE_SECONDS = 300.0
MAX_RETRIES = 3

ErrorKind = Literal[
    "auth", "installation", "not_found", "rejected", "rate_limited", "unavailable", "push", "merge"
]
REASONS: dict[ErrorKind, str] = {
    "auth": "GitHub refused the daemon's credentials; check its token or GitHub App key.",
    "installation": "The GitHub App is not installed on this repository any more; reinstall it.",
    "not_found": "GitHub says the repository does not exist or the app cannot see it.",
    "rejected": "GitHub rejected the pull request",
    "rate_limited": "GitHub's rate limit is exhausted; delivery will need to be retried later.",
    "unavailable": "GitHub is not answering properly right now; delivery can be retried.",
    "push": "The push to GitHub was rejected",
    "merge": "The sub-tasks could not be merged into one branch",
}


class DeliveryError(Exception):
    """A delivery step failed; ``reason`` is safe to show on Linear."""

    def __init__(self, kind: ErrorKind, detail: str = "") -> None:
        self.kind = kind
        self.reason = REASONS[kind] + (f": {detail}" if detail else "")
        super().__init__(self.reason)


@dataclass(frozen=True)
class PullRequest:
    """The fields of a pull request delivery needs."""

    number: int
    html_url: str
    state: str
    merged: bool
    head: str
    base: str
    body: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PullRequest:
        """Read GitHub's pull request (full or simple) JSON."""
        return cls(
            number=int(data["number"]),
            html_url=str(data["html_url"]),
            state=str(data["state"]),
            merged=bool(data.get("merged") or data.get("merged_at")),
            head=str(data["head"]["ref"]),
            base=str(data["base"]["ref"]),
            body=str(data.get("body") or ""),
        )


class GitHubAuth:
    """Where the daemon's GitHub token comes from."""

    async def token(self, api: gidgethub.httpx.GitHubAPI) -> str:
        """A token valid for at least the next few minutes."""
        raise NotImplementedError


class StaticToken(GitHubAuth):
    """A personal or fine-grained access token from the settings."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, api: gidgethub.httpx.GitHubAPI) -> str:
        return self._token


class AppInstallation(GitHubAuth):
    """A GitHub App installation: JWT → installation token, cached until near expiry."""

    def __init__(
        self,
        *,
        app_id: str,
        private_key: str,
        installation_id: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self._private_key = private_key
        self._clock = clock
        self._cached: tuple[str, float] | None = None
        self._lock = asyncio.Lock()  # concurrent deliveries share one exchange
        self.exchanges = 0

    async def token(self, api: gidgethub.httpx.GitHubAPI) -> str:
        async with self._lock:
            return await self._token(api)

    async def _token(self, api: gidgethub.httpx.GitHubAPI) -> str:
        if self._cached is not None and self._cached[1] - self._clock() > RENEW_BEFORE_SECONDS:
            return self._cached[0]
        try:
            answer = await gidgethub.apps.get_installation_access_token(
                api,
                installation_id=str(self.installation_id),
                app_id=self.app_id,
                private_key=self._private_key,
            )
        except gidgethub.BadRequest as refused:
            kind: ErrorKind = "installation" if refused.status_code == 404 else "auth"
            raise DeliveryError(kind) from None
        self.exchanges += 1
        expires = dt.datetime.fromisoformat(str(answer["expires_at"]).replace("Z", "+00:00"))
        self._cached = (str(answer["token"]), expires.timestamp())
        return self._cached[0]


class _RateLimitedAPI(gidgethub.httpx.GitHubAPI):
    """gidgethub's httpx adapter with GitHub's rate-limit rules applied."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        max_wait_seconds: float,
    ) -> None:
        # gidgethub types its adapter for ``httpx2`` when that is installed (the ``mcp`` SDK
        # brings it); the adapter only calls ``client.request``, which httpx's client has.
        super().__init__(client, REQUESTER, base_url=base_url)  # type: ignore[arg-type]
        self._sleep = sleep
        self._clock = clock
        self._max_wait = max_wait_seconds
        self.requests = 0

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def manage_rate_limit(self, *, method: str, url: str) -> None:
        self.requests += 1
        limit = self.rate_limit
        if limit is None or limit.remaining > 0:
            return
        wait = limit.reset_datetime.timestamp() - self._clock()
        if wait > self._max_wait:
            raise DeliveryError("rate_limited")
        if wait > 0:
            await self.sleep(wait)

    async def handle_rate_limit_error(
        self, *, method: str, url: str, exception: gidgethub.HTTPException, attempt: int
    ) -> bool:
        if exception.status_code not in (403, 429) or attempt > MAX_RETRIES:
            return False
        headers = {key.lower(): value for key, value in exception.headers.items()}
        if "retry-after" in headers:
            wait = float(headers["retry-after"])
        elif headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            wait = max(0.0, float(headers["x-ratelimit-reset"]) - self._clock())
        else:
            return False
        if wait > self._max_wait:
            return False
        await self.sleep(wait)
        self.rate_limit = None  # the wait is over; do not wait again before the retry
        return True


def _classify(error: gidgethub.HTTPException) -> DeliveryError:
    status = int(error.status_code)
    if status in (403, 429) and (
        isinstance(error, gidgethub.RateLimitExceeded)
        or "retry-after" in {key.lower() for key in error.headers}
    ):
        return DeliveryError("rate_limited")
    if status == 401:
        return DeliveryError("auth")
    if status == 404:
        return DeliveryError("not_found")
    if status == 422:
        errors = getattr(error, "errors", None)
        detail = _first_message(errors) or str(error) or "validation failed"
        return DeliveryError("rejected", detail)
    if status >= 500:
        return DeliveryError("unavailable")
    return DeliveryError("rejected", f"HTTP {status}")


def _first_message(errors: Any) -> str:
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            if item.get("message"):
                return str(item["message"])
            if item.get("field"):
                return f"{item['field']} is {item.get('code', 'invalid')}"
    return ""


class GitHubClient:
    """The calls delivery makes, each returning plain data or raising DeliveryError."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        auth: GitHubAuth,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        max_wait_seconds: float = 60.0,
    ) -> None:
        self.api = _RateLimitedAPI(
            http,
            base_url=base_url.rstrip("/"),
            sleep=sleep,
            clock=clock,
            max_wait_seconds=max_wait_seconds,
        )
        self.auth = auth

    @property
    def requests(self) -> int:
        """HTTP requests made so far (including retries and token exchanges)."""
        return self.api.requests

    async def token(self) -> str:
        """The current token (for git's askpass)."""
        try:
            return await self.auth.token(self.api)
        except gidgethub.HTTPException as error:
            raise _classify(error) from None

    async def _call(self, method: str, url: str, url_vars: dict[str, Any], data: Any) -> Any:
        token = await self.token()
        try:
            if method == "GET":
                return await self.api.getitem(url, url_vars, oauth_token=token)
            if method == "POST":
                return await self.api.post(url, url_vars, data=data, oauth_token=token)
            return await self.api.patch(url, url_vars, data=data, oauth_token=token)
        except gidgethub.HTTPException as error:
            raise _classify(error) from None
        except httpx.HTTPError:
            raise DeliveryError("unavailable") from None

    async def find_pull(self, owner: str, repo: str, head: str) -> PullRequest | None:
        """The newest pull request (any state) whose head is ``head`` in ``owner/repo``."""
        found = await self._call(
            "GET",
            "/repos/{owner}/{repo}/pulls{?head,state}",
            {"owner": owner, "repo": repo, "head": f"{owner}:{head}", "state": "all"},
            None,
        )
        pulls = [PullRequest.from_json(item) for item in found or []]
        open_first = sorted(pulls, key=lambda pull: (pull.state != "open", -pull.number))
        return open_first[0] if open_first else None

    async def create_pull(
        self, owner: str, repo: str, *, title: str, body: str, head: str, base: str, draft: bool
    ) -> PullRequest:
        """Open a pull request of ``head`` into ``base``."""
        data = {"title": title, "body": body, "head": head, "base": base, "draft": draft}
        created = await self._call(
            "POST", "/repos/{owner}/{repo}/pulls", {"owner": owner, "repo": repo}, data
        )
        return PullRequest.from_json(created)

    async def update_pull(
        self, owner: str, repo: str, number: int, *, title: str, body: str, base: str
    ) -> PullRequest:
        """Rewrite the daemon's pull request text and base."""
        updated = await self._call(
            "PATCH",
            "/repos/{owner}/{repo}/pulls/{number}",
            {"owner": owner, "repo": repo, "number": number},
            {"title": title, "body": body, "base": base},
        )
        return PullRequest.from_json(updated)

    async def add_labels(self, owner: str, repo: str, number: int, labels: list[str]) -> None:
        """Add ``labels`` to the pull request (its issue)."""
        await self._call(
            "POST",
            "/repos/{owner}/{repo}/issues/{number}/labels",
            {"owner": owner, "repo": repo, "number": number},
            {"labels": labels},
        )

    async def request_reviewers(
        self, owner: str, repo: str, number: int, reviewers: list[str]
    ) -> None:
        """Ask ``reviewers`` (logins) to review the pull request."""
        await self._call(
            "POST",
            "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers",
            {"owner": owner, "repo": repo, "number": number},
            {"reviewers": reviewers},
        )
