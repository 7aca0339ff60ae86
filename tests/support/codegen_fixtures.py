"""Fixtures of the Codegen tests: a fake clock, the Codegen stand-in on that clock, and
the stand-in served on loopback (``base_url``).

Use with ``pytest_plugins = ("tests.support.codegen_fixtures",)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_worker.sandbox.codegen import CodegenStandIn
from edge_worker.sandbox.server import serve_in_thread
from tests.support.codegen import ORG_ID, TOKEN, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stand_in(clock: FakeClock) -> CodegenStandIn:
    return CodegenStandIn(org_id=ORG_ID, api_token=TOKEN, clock=clock)


@pytest.fixture
def base_url(stand_in: CodegenStandIn) -> Iterator[str]:
    with serve_in_thread(stand_in.app) as url:
        yield url
