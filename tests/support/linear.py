"""Helpers for Linear client and stand-in tests (fixtures: ``linear_fixtures``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from edge_worker.sandbox.linear import DEFAULT_API_KEY, LinearStandIn
from edge_worker.sandbox.linear_schema import default_schema_path
from edge_worker.settings import LinearSettings
from tests.conftest import require_shared_file


def make_standin(**kwargs: Any) -> LinearStandIn:
    """A stand-in on Linear's real schema (required in CI; the built-in subset elsewhere)."""
    if os.environ.get("CI"):
        require_shared_file("linear/schema.graphql")
    return LinearStandIn(schema_path=default_schema_path(), **kwargs)


def settings_for(base_url: str, **overrides: Any) -> LinearSettings:
    """Settings pointing at a stand-in served at ``base_url`` (API key auth by default)."""
    values: dict[str, Any] = {
        "api_url": base_url + "/graphql",
        "oauth_url": base_url,
        "api_key": SecretStr(DEFAULT_API_KEY),
    }
    values.update(overrides)
    return LinearSettings(**values)


async def until(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Yield to the loop until ``condition()`` holds (for I/O to finish; not a time
    measurement). Fails the test after ``timeout`` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.005)
