"""The ``Authorization`` header for Linear, and app tokens from client credentials.

Contract:
- A personal API key is sent as is (``Authorization: <key>``); it cannot be refreshed.
- An OAuth access token is sent as ``Authorization: Bearer <token>``.
- With ``client_id`` and ``client_secret`` (and no API key), an app token is obtained
  with the client-credentials grant (``POST {oauth_url}/oauth/token``) on first use and
  again when it expires or Linear answers 401. :meth:`LinearAuth.refresh` is guarded by an
  ``asyncio.Lock`` and compares the rejected header with the current one, so concurrent
  callers hit by the same 401 cause exactly one token request.
- Linear keeps one active client-credentials token per app, so with a ``token_store``
  (:class:`TokenStore`, the database the daemons share) the token is obtained through
  it: a stored token is used as it is, and a replacement is fetched by one daemon at a
  time, only when the stored version is still the one that failed or expired. Daemons on
  one database then never invalidate each other's token, and a 401 seen by all of them
  causes one token request.
- No usable credentials: :class:`LinearAuthError` naming the settings to set.
- Secrets and tokens are never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
import structlog

from edge_worker.linear.clock import Clock
from edge_worker.linear.errors import LinearAuthError
from edge_worker.settings import LinearSettings

log = structlog.get_logger(__name__)

# Fetch a new app token this long before Linear says the current one expires.
_EXPIRY_MARGIN_SECONDS = 60.0


class SharedToken(Protocol):
    """A token version as a :class:`TokenStore` hands it out."""

    @property
    def token(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def expires_at(self) -> float | None: ...


class TokenStore(Protocol):
    """Where daemons sharing a database keep the one client-credentials token."""

    async def obtain(
        self,
        seen_version: int | None,
        fetch: Callable[[], Awaitable[tuple[str, float | None]]],
    ) -> SharedToken:
        """A usable token other than ``seen_version``, calling ``fetch`` (in one daemon
        at a time) only when none is stored."""
        ...


class LinearAuth:
    """Produces ``Authorization`` header values; see the module contract."""

    def __init__(
        self,
        settings: LinearSettings,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        token_store: TokenStore | None = None,
    ) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._store = token_store
        self._lock = asyncio.Lock()
        self._current: str | None = None
        self._expires_at: float | None = None
        self._version: int | None = None
        self.token_requests = 0
        if settings.api_key is not None:
            self._current = settings.api_key.get_secret_value()
        elif settings.access_token is not None:
            self._current = "Bearer " + settings.access_token.get_secret_value()
        elif not self.can_refresh:
            raise LinearAuthError(
                "no Linear credentials: set EDGE_WORKER_LINEAR__API_KEY, "
                "EDGE_WORKER_LINEAR__ACCESS_TOKEN, or EDGE_WORKER_LINEAR__CLIENT_ID and "
                "EDGE_WORKER_LINEAR__CLIENT_SECRET"
            )

    @property
    def can_refresh(self) -> bool:
        """True when a refused or expired token can be replaced (client credentials)."""
        return (
            self._settings.api_key is None
            and bool(self._settings.client_id)
            and self._settings.client_secret is not None
        )

    def _expired(self) -> bool:
        return self._expires_at is not None and self._clock.time() >= self._expires_at

    async def authorization(self) -> str:
        """The header value to send now (fetching an app token first if needed)."""
        current = self._current
        if current is not None and not self._expired():
            return current
        async with self._lock:
            if self._current is None or self._expired():
                await self._obtain()
            assert self._current is not None
            return self._current

    async def refresh(self, rejected: str) -> str | None:
        """After a 401 for ``rejected``: a new header value, or ``None`` if none can be had.

        If another caller already replaced ``rejected``, its result is returned without
        another token request.
        """
        if not self.can_refresh:
            return None
        async with self._lock:
            if self._current is not None and self._current != rejected and not self._expired():
                return self._current
            await self._obtain()
            return self._current

    async def _obtain(self) -> None:
        """Replace the current token (which failed, expired, or was never had)."""
        if self._store is None:
            token, expires_at = await self._fetch_token()
            version = (self._version or 0) + 1
        else:
            seen = self._version if self._current is not None else None
            shared = await self._store.obtain(seen, self._fetch_token)
            token, expires_at, version = shared.token, shared.expires_at, shared.version
        log.info("linear.auth.token_in_use", version=version, shared=self._store is not None)
        self._current = "Bearer " + token
        self._expires_at = expires_at
        self._version = version

    async def _fetch_token(self) -> tuple[str, float | None]:
        """A new token from the client-credentials grant, and when to stop using it."""
        settings = self._settings
        assert settings.client_id is not None and settings.client_secret is not None
        url = settings.oauth_url.rstrip("/") + "/oauth/token"
        self.token_requests += 1
        response = await self._http.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret.get_secret_value(),
                "scope": settings.oauth_scopes,
            },
            headers={"Accept": "application/json"},
        )
        payload = _json_object(response)
        token = payload.get("access_token")
        if response.status_code != 200 or not isinstance(token, str) or not token:
            reason = payload.get("error_description") or payload.get("error") or response.text
            raise LinearAuthError(
                f"Linear refused the client-credentials grant ({response.status_code}): "
                f"{str(reason)[:200]}"
            )
        expires_in = payload.get("expires_in")
        expires_at: float | None = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            margin = min(_EXPIRY_MARGIN_SECONDS, float(expires_in) / 10)
            expires_at = self._clock.time() + float(expires_in) - margin
        log.info("linear.auth.token_obtained", expires_in=expires_in)
        return token, expires_at


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
