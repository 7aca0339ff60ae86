"""The request budget's defaults by auth mode, and endpoint-specific rate limits.

Linear's rate-limiting page: 2,500 requests an hour for an API key, 5,000 for an OAuth
app; some operations carry their own lower limit, reported in
``X-RateLimit-Endpoint-Requests-*`` and ``X-RateLimit-Endpoint-Name``. The HTTP cases run
against the Linear stand-in over loopback, waits measured on a ManualClock.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from edge_worker.ids import stable_uuid4
from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import ManualClock
from edge_worker.linear.limits import (
    API_KEY_REQUESTS_PER_HOUR,
    OAUTH_REQUESTS_PER_HOUR,
    RateLimitSnapshot,
    RequestBudget,
    default_requests_per_hour,
    rate_limited_wait,
    read_rate_limit_headers,
)
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import LinearSettings
from tests.support.linear import make_standin, settings_for

NOW = 1_700_000_000.0


# -- defaults by auth mode ------------------------------------------------------------------


def test_linear_figures_are_the_defaults() -> None:
    assert API_KEY_REQUESTS_PER_HOUR == 2500
    assert OAUTH_REQUESTS_PER_HOUR == 5000


def test_an_api_key_gets_the_api_key_budget() -> None:
    settings = LinearSettings(api_key=SecretStr("lin_api_x"))
    assert default_requests_per_hour(settings) == 2500
    assert LinearClient(settings).budget.capacity == 2500


@pytest.mark.parametrize(
    "credentials",
    [
        {"access_token": SecretStr("tok")},
        {"client_id": "cid", "client_secret": SecretStr("secret")},
    ],
    ids=["access-token", "client-credentials"],
)
def test_an_oauth_app_gets_the_oauth_budget(credentials: dict[str, object]) -> None:
    settings = LinearSettings.model_validate(credentials)
    assert default_requests_per_hour(settings) == 5000
    assert LinearClient(settings).budget.capacity == 5000


def test_a_configured_budget_wins_over_the_default() -> None:
    settings = LinearSettings(api_key=SecretStr("lin_api_x"), requests_per_hour=100)
    assert default_requests_per_hour(settings) == 100


# -- endpoint headers (sans-I/O) ------------------------------------------------------------

ENDPOINT_HEADERS = {
    "X-RateLimit-Requests-Limit": "5000",
    "X-RateLimit-Requests-Remaining": "4000",
    "X-RateLimit-Requests-Reset": str(int((NOW + 3000) * 1000)),
    "X-RateLimit-Endpoint-Name": "issueCreate",
    "X-RateLimit-Endpoint-Requests-Limit": "30",
    "X-RateLimit-Endpoint-Requests-Remaining": "0",
    "X-RateLimit-Endpoint-Requests-Reset": str(int((NOW + 90) * 1000)),
}


def test_endpoint_headers_are_read() -> None:
    snapshot = read_rate_limit_headers(httpx.Headers(ENDPOINT_HEADERS))
    assert snapshot.endpoint_name == "issueCreate"
    assert snapshot.endpoint_requests_limit == 30
    assert snapshot.endpoint_requests_remaining == 0
    assert snapshot.endpoint_requests_reset_at == NOW + 90


def test_a_refusal_for_an_exhausted_endpoint_waits_for_the_endpoint_reset() -> None:
    assert rate_limited_wait(ENDPOINT_HEADERS, NOW) == pytest.approx(90)


async def test_an_exhausted_endpoint_holds_back_only_its_own_operation() -> None:
    clock = ManualClock(NOW, auto_advance=True)
    budget = RequestBudget(5000, clock=clock)
    budget.observe(read_rate_limit_headers(ENDPOINT_HEADERS), "IssueCreate")
    await budget.acquire("normal", "CommentCreate")
    assert clock.sleeps == []
    await budget.acquire("normal", "IssueCreate")
    assert clock.sleeps == [pytest.approx(90)]


async def test_low_priority_holds_back_when_an_endpoint_runs_low() -> None:
    clock = ManualClock(NOW, auto_advance=True)
    budget = RequestBudget(5000, clock=clock)
    low_left = RateLimitSnapshot(
        endpoint_requests_limit=30,
        endpoint_requests_remaining=3,
        endpoint_requests_reset_at=NOW + 120,
    )
    budget.observe(low_left, "CommentCreate")
    await budget.acquire("normal", "CommentCreate")
    assert clock.sleeps == []
    await budget.acquire("low", "CommentCreate")
    assert clock.sleeps == [pytest.approx(120)]


# -- over HTTP ------------------------------------------------------------------------------


async def test_the_client_waits_for_an_endpoint_limit_instead_of_being_refused() -> None:
    clock = ManualClock(NOW, auto_advance=True)
    standin = make_standin(clock=clock.time)
    standin.limit_endpoint("CommentCreate", 2)
    issue = standin.store.add_issue("Parent")
    with serve_in_thread(standin.app) as url:
        async with LinearClient(settings_for(url), clock=clock) as client:
            for n in range(2):
                await client.create_comment(
                    id=stable_uuid4("c", str(n)), issue_id=issue.id, body="x"
                )
            await client.team_states(standin.store.team.id)  # another operation: no wait
            assert clock.sleeps == []
            assert client.rate_limit.endpoint_requests_remaining is None  # TeamStates has none
            await client.create_comment(id=stable_uuid4("c", "2"), issue_id=issue.id, body="x")
    assert clock.sleeps == [pytest.approx(3600, abs=1)]
    comments = standin.requests_for("CommentCreate")
    assert [r.status for r in comments] == [200, 200, 200]  # never refused
    assert comments[2].time >= comments[0].time + 3600
