"""Linear's rate limits, read from response headers, and our own request budget.

Linear meters each user with a leaky bucket of requests an hour (2,500 for an API key,
5,000 for an OAuth app, by Linear's rate-limiting page), plus a complexity budget, and
reports it on every response::

    X-RateLimit-Requests-Limit / -Remaining / -Reset      (reset: epoch milliseconds)
    X-RateLimit-Complexity-Limit / -Remaining / -Reset    and X-Complexity (this query)

Some queries and mutations have their own, lower limit; their responses also carry::

    X-RateLimit-Endpoint-Requests-Limit / -Remaining / -Reset   and X-RateLimit-Endpoint-Name

A request over the limit is answered with a GraphQL error whose
``extensions.code == "RATELIMITED"`` (HTTP 400) or with HTTP 429.

Contract:
- :func:`read_rate_limit_headers` turns headers into a :class:`RateLimitSnapshot`; absent
  or malformed headers become ``None`` fields, never an exception.
- :func:`default_requests_per_hour` is the budget for an auth mode when the
  configuration names none: :data:`API_KEY_REQUESTS_PER_HOUR` for an API key,
  :data:`OAUTH_REQUESTS_PER_HOUR` for an OAuth token (access token or client credentials).
- :func:`rate_limited_wait` says how long to wait after a rate-limited answer:
  ``Retry-After`` when present, else until the exhausted dimension (requests, complexity
  or the endpoint's own limit) resets, clamped to ``[MIN_WAIT_SECONDS, max_wait]``.
- :class:`RequestBudget` is a client-side leaky bucket of ``requests_per_hour`` tokens;
  ``acquire(priority)`` waits (on the injected clock) until a request may be sent. Low
  priority requests may not dip into the reserve kept for normal ones, and also hold
  back when Linear itself reports the token running low; so when the budget runs low,
  low-priority writes wait first. ``acquire(priority, operation)`` also waits for the
  operation's endpoint limit, as last reported for that operation (exhausted: every
  priority waits for its reset; running low: low priority waits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

import structlog

from edge_worker.linear.clock import Clock
from edge_worker.settings import LinearSettings

log = structlog.get_logger(__name__)

Priority = Literal["low", "normal"]

API_KEY_REQUESTS_PER_HOUR = 2500
OAUTH_REQUESTS_PER_HOUR = 5000

MIN_WAIT_SECONDS = 1.0
DEFAULT_WAIT_SECONDS = 60.0
DEFAULT_MAX_WAIT_SECONDS = 3600.0
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_MILLISECONDS_THRESHOLD = 1e11


@dataclass(frozen=True)
class RateLimitSnapshot:
    """What Linear said about our token's limits on one response."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_at: float | None = None
    complexity_limit: int | None = None
    complexity_remaining: int | None = None
    complexity_reset_at: float | None = None
    complexity: int | None = None
    endpoint_name: str | None = None
    endpoint_requests_limit: int | None = None
    endpoint_requests_remaining: int | None = None
    endpoint_requests_reset_at: float | None = None

    @property
    def empty(self) -> bool:
        """True when the response carried no rate-limit header at all."""
        return self == RateLimitSnapshot()


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def parse_epoch(value: str | None) -> float | None:
    """An epoch timestamp header in seconds, accepting milliseconds or seconds."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return number / 1000.0 if number > _MILLISECONDS_THRESHOLD else number


def read_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitSnapshot:
    """The rate-limit state carried by ``headers`` (case-insensitive mapping)."""
    lower = {key.lower(): value for key, value in headers.items()}
    return RateLimitSnapshot(
        requests_limit=_int(lower.get("x-ratelimit-requests-limit")),
        requests_remaining=_int(lower.get("x-ratelimit-requests-remaining")),
        requests_reset_at=parse_epoch(lower.get("x-ratelimit-requests-reset")),
        complexity_limit=_int(lower.get("x-ratelimit-complexity-limit")),
        complexity_remaining=_int(lower.get("x-ratelimit-complexity-remaining")),
        complexity_reset_at=parse_epoch(lower.get("x-ratelimit-complexity-reset")),
        complexity=_int(lower.get("x-complexity")),
        endpoint_name=lower.get("x-ratelimit-endpoint-name") or None,
        endpoint_requests_limit=_int(lower.get("x-ratelimit-endpoint-requests-limit")),
        endpoint_requests_remaining=_int(lower.get("x-ratelimit-endpoint-requests-remaining")),
        endpoint_requests_reset_at=parse_epoch(lower.get("x-ratelimit-endpoint-requests-reset")),
    )


def default_requests_per_hour(settings: LinearSettings) -> int:
    """The hourly request budget: the configured one, else the auth mode's default."""
    if settings.requests_per_hour is not None:
        return settings.requests_per_hour
    if settings.api_key is not None:
        return API_KEY_REQUESTS_PER_HOUR
    return OAUTH_REQUESTS_PER_HOUR


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or an HTTP date), if present."""
    lower = {key.lower(): value for key, value in headers.items()}
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def rate_limited_wait(
    headers: Mapping[str, str], now: float, *, max_wait: float = DEFAULT_MAX_WAIT_SECONDS
) -> float:
    """Seconds to wait before retrying a rate-limited request; see the module contract."""
    explicit = retry_after_seconds(headers, now)
    if explicit is None:
        snapshot = read_rate_limit_headers(headers)
        pairs = [
            (snapshot.requests_remaining, snapshot.requests_reset_at),
            (snapshot.complexity_remaining, snapshot.complexity_reset_at),
            (snapshot.endpoint_requests_remaining, snapshot.endpoint_requests_reset_at),
        ]
        exhausted = [reset for remaining, reset in pairs if reset and (remaining or 0) <= 0]
        known = exhausted or [reset for _, reset in pairs if reset]
        explicit = max(known) - now if known else DEFAULT_WAIT_SECONDS
    return min(max(explicit, MIN_WAIT_SECONDS), max_wait)


class RequestBudget:
    """A leaky bucket of requests per hour shared by every caller of one Linear token.

    ``reserve_fraction`` of the bucket is kept for normal-priority requests. Share one
    instance between clients that use the same token.
    """

    def __init__(
        self, requests_per_hour: int, *, clock: Clock, reserve_fraction: float = 0.2
    ) -> None:
        if requests_per_hour < 1:
            raise ValueError("requests_per_hour must be at least 1")
        self._clock = clock
        self.capacity = float(requests_per_hour)
        self._rate = requests_per_hour / 3600.0
        self.reserve = max(1.0, math.ceil(requests_per_hour * reserve_fraction))
        self._tokens = self.capacity
        self._updated = clock.time()
        self._server: RateLimitSnapshot = RateLimitSnapshot()
        self._endpoints: dict[str, RateLimitSnapshot] = {}
        self._reserve_fraction = reserve_fraction

    @property
    def available(self) -> float:
        """Requests that could be sent right now at normal priority."""
        self._refill(self._clock.time())
        return self._tokens

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self._rate)
        self._updated = now

    def observe(self, snapshot: RateLimitSnapshot, operation: str | None = None) -> None:
        """Remember what Linear last said about the token, and about ``operation``'s own
        endpoint limit when the response carried one (absent headers are ignored)."""
        if snapshot.requests_remaining is not None:
            self._server = snapshot
        if operation is not None and snapshot.endpoint_requests_remaining is not None:
            self._endpoints[operation] = snapshot

    def _wait_for(
        self,
        remaining: int | None,
        limit: int | None,
        reset_at: float | None,
        priority: Priority,
        now: float,
    ) -> float:
        """How long a request at ``priority`` waits for one reported limit."""
        if remaining is None or not reset_at:
            return 0.0
        until_reset = reset_at - now
        if until_reset <= 0:
            return 0.0
        if remaining <= 0:
            return until_reset
        running_low = limit is not None and remaining <= limit * self._reserve_fraction
        return until_reset if priority == "low" and running_low else 0.0

    def _server_wait(self, priority: Priority, now: float, operation: str | None) -> float:
        server = self._server
        wait = self._wait_for(
            server.requests_remaining,
            server.requests_limit,
            server.requests_reset_at,
            priority,
            now,
        )
        endpoint = self._endpoints.get(operation) if operation is not None else None
        if endpoint is not None:
            wait = max(
                wait,
                self._wait_for(
                    endpoint.endpoint_requests_remaining,
                    endpoint.endpoint_requests_limit,
                    endpoint.endpoint_requests_reset_at,
                    priority,
                    now,
                ),
            )
        return wait

    async def acquire(self, priority: Priority = "normal", operation: str | None = None) -> None:
        """Wait until one request (of ``operation``, if named) may be sent at ``priority``,
        then take it from the bucket."""
        floor = 1.0 if priority == "normal" else 1.0 + self.reserve
        while True:
            now = self._clock.time()
            self._refill(now)
            server_wait = self._server_wait(priority, now, operation)
            if self._tokens >= floor and server_wait <= 0:
                self._tokens -= 1.0
                return
            wait = max(server_wait, (floor - self._tokens) / self._rate, 0.001)
            log.info(
                "linear.budget.wait",
                priority=priority,
                operation=operation,
                wait_seconds=round(wait, 3),
                tokens=round(self._tokens, 2),
            )
            await self._clock.sleep(wait)
