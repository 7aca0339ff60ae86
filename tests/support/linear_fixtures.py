"""Fixtures for Linear tests: a stand-in on loopback sharing a ManualClock with clients.

Use with ``pytest_plugins = ("tests.support.linear_fixtures",)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import ManualClock
from edge_worker.sandbox.linear import LinearStandIn
from edge_worker.sandbox.server import serve_in_thread
from tests.support.linear import make_standin, settings_for


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def standin(clock: ManualClock) -> LinearStandIn:
    return make_standin(clock=clock.time)


@pytest.fixture
def base_url(standin: LinearStandIn) -> Iterator[str]:
    with serve_in_thread(standin.app) as url:
        yield url


@pytest.fixture
async def make_client(
    base_url: str, clock: ManualClock
) -> AsyncIterator[Callable[..., LinearClient]]:
    """A factory of clients on the stand-in; ``settings=`` overrides, other kwargs pass on."""
    made: list[LinearClient] = []

    def factory(**kwargs: Any) -> LinearClient:
        settings = kwargs.pop("settings", None) or settings_for(base_url)
        kwargs.setdefault("clock", clock)
        client = LinearClient(settings, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()
