"""One client-credentials token for every daemon on a database.

Linear keeps one active client-credentials token per app (the stand-in too: a new grant
revokes the one before). Each "daemon" here is its own LinearClient with its own engine
on the same database (real PostgreSQL, and SQLite for the single-machine case), talking
to the Linear stand-in over loopback HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import SystemClock
from edge_worker.linear.errors import LinearAuthError
from edge_worker.sandbox.linear import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, LinearStandIn
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import LinearSettings
from edge_worker.storage.db import create_engine_for, create_tables
from edge_worker.storage.tokens import SharedTokenStore, linear_tokens
from tests.support.linear import make_standin, settings_for
from tests.support.pg import scratch_database

Daemon = Callable[..., LinearClient]


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.sqlite'}"
        return
    base = request.getfixturevalue("postgres_url")
    with scratch_database(base) as url:
        yield url


@pytest.fixture
def standin() -> LinearStandIn:
    return make_standin()


@pytest.fixture
def base_url(standin: LinearStandIn) -> Iterator[str]:
    with serve_in_thread(standin.app) as url:
        yield url


def app_settings(base_url: str, secret: str = DEFAULT_CLIENT_SECRET) -> LinearSettings:
    return settings_for(
        base_url, api_key=None, client_id=DEFAULT_CLIENT_ID, client_secret=SecretStr(secret)
    )


@pytest.fixture
async def daemon(base_url: str, database_url: str) -> AsyncIterator[Daemon]:
    """A factory of "daemons": a client with its own engine and token store on the DB."""
    engines: list[sa.Engine] = []
    clients: list[LinearClient] = []

    def make(*, shared: bool = True, secret: str = DEFAULT_CLIENT_SECRET) -> LinearClient:
        engine = create_engine_for(database_url)
        create_tables(engine)
        engines.append(engine)
        store = SharedTokenStore(engine, DEFAULT_CLIENT_ID, clock=SystemClock())
        client = LinearClient(app_settings(base_url, secret), token_store=store if shared else None)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
    for engine in engines:
        engine.dispose()


def stored_version(database_url: str) -> int:
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(linear_tokens.c.version)).scalar_one())
    finally:
        engine.dispose()


async def all_ok(calls: list[Awaitable[object]]) -> None:
    await asyncio.gather(*calls)


async def test_the_stand_in_keeps_one_token_per_app(standin: LinearStandIn, daemon: Daemon) -> None:
    # Without the shared store two daemons revoke each other's token (the bug fixed here).
    alpha, beta = daemon(shared=False), daemon(shared=False)
    await alpha.prepare()
    await beta.prepare()
    await alpha.team_states(standin.store.team.id)
    assert standin.token_requests == 3  # alpha's token died when beta fetched one
    assert [r.status for r in standin.requests] == [401, 200]


async def test_daemons_starting_together_fetch_one_token(
    standin: LinearStandIn, daemon: Daemon, database_url: str
) -> None:
    daemons = [daemon() for _ in range(4)]
    await asyncio.gather(*(d.prepare() for d in daemons))
    await all_ok([d.team_states(standin.store.team.id) for d in daemons])

    assert standin.token_requests == 1
    assert sum(d.token_requests for d in daemons) == 1
    assert {r.status for r in standin.requests} == {200}
    assert len({r.authorization for r in standin.requests}) == 1
    assert stored_version(database_url) == 1


async def test_a_401_seen_by_every_daemon_causes_one_refresh(
    standin: LinearStandIn, daemon: Daemon, database_url: str
) -> None:
    daemons = [daemon() for _ in range(3)]
    await asyncio.gather(*(d.prepare() for d in daemons))
    standin.revoke_tokens()  # Linear says 401 to the token every daemon holds

    await all_ok([d.team_states(standin.store.team.id) for d in daemons for _ in range(3)])

    assert standin.token_requests == 2  # the first grant, and one refresh
    refused = [r for r in standin.requests if r.status == 401]
    assert len(refused) == 9  # every request first met the 401 ...
    assert {r.status for r in standin.requests[-9:]} == {200}  # ... then went through
    assert stored_version(database_url) == 2


async def test_a_daemon_that_restarts_uses_the_stored_token(
    standin: LinearStandIn, daemon: Daemon
) -> None:
    await daemon().prepare()
    restarted = daemon()
    await restarted.team_states(standin.store.team.id)
    assert standin.token_requests == 1
    assert restarted.token_requests == 0
    assert standin.requests[-1].status == 200


async def test_a_daemon_late_to_a_refresh_does_not_fetch_again(
    standin: LinearStandIn, daemon: Daemon
) -> None:
    alpha, beta = daemon(), daemon()
    await asyncio.gather(alpha.prepare(), beta.prepare())
    fetched_by_beta = beta.token_requests  # 0 or 1: whichever came first fetched
    standin.revoke_tokens()
    await alpha.team_states(standin.store.team.id)  # alpha meets the 401 and refreshes
    await beta.team_states(standin.store.team.id)  # beta meets it later, with version 1
    assert standin.token_requests == 2
    assert beta.token_requests == fetched_by_beta
    assert [r.status for r in standin.requests] == [401, 200, 401, 200]


async def test_a_refused_grant_releases_the_turn(
    standin: LinearStandIn, daemon: Daemon, database_url: str
) -> None:
    wrong = daemon(secret="not-the-secret")
    with pytest.raises(LinearAuthError, match="client-credentials grant"):
        await wrong.prepare()
    right = daemon()
    await right.team_states(standin.store.team.id)  # not left waiting for a dead turn
    assert standin.token_requests == 2
    assert stored_version(database_url) == 1


async def test_a_turn_left_by_a_dead_daemon_expires(
    standin: LinearStandIn, base_url: str, database_url: str
) -> None:
    engine = create_engine_for(database_url)
    create_tables(engine)
    try:
        dead = SharedTokenStore(engine, DEFAULT_CLIENT_ID, clock=SystemClock(), lease_seconds=0.3)
        assert dead._claim(None, SystemClock().time())  # claimed, then the process died
        store = SharedTokenStore(engine, DEFAULT_CLIENT_ID, clock=SystemClock())
        async with LinearClient(app_settings(base_url), token_store=store) as client:
            await asyncio.wait_for(client.team_states(standin.store.team.id), timeout=10)
        assert standin.token_requests == 1
    finally:
        engine.dispose()
