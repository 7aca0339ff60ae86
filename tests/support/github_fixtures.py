"""Fixtures of the delivery tests: the GitHub App's keys, the GitHub stand-in served on
loopback with that App installed, and a client authenticated as the installation.

Use with ``pytest_plugins = ("tests.support.github_fixtures",)``; a module that needs the
stand-in set up otherwise defines its own ``github`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from edge_worker.delivery.github_client import AppInstallation, GitHubClient
from edge_worker.sandbox.github import GitHubStandIn
from tests.support.github import APP_ID, INSTALLATION_ID, AppKeys, app_keys, served_github


@pytest.fixture(scope="module")
def keys() -> AppKeys:
    return app_keys()


@pytest.fixture
def github(tmp_path: Path, keys: AppKeys) -> Iterator[GitHubStandIn]:
    with served_github(tmp_path / "github", keys, installation_id=INSTALLATION_ID) as stand_in:
        yield stand_in


@pytest.fixture
async def client(github: GitHubStandIn, keys: AppKeys) -> AsyncIterator[GitHubClient]:
    auth = AppInstallation(
        app_id=APP_ID, private_key=keys.private_pem, installation_id=INSTALLATION_ID
    )
    async with httpx.AsyncClient() as http:
        yield GitHubClient(http, base_url=github.base_url, auth=auth)
