"""Fixtures shared by every test module.

Area-specific fixtures live in ``tests/support/`` modules, imported where needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``../shared`` (or ``EDGE_WORKER_SHARED_DIR``): the schema and API contracts."""
    return Path(os.environ.get("EDGE_WORKER_SHARED_DIR", REPO_ROOT.parent / "shared"))


def require_shared_file(relative: str) -> Path:
    """Path of a contract file; skip with a reason when absent, but fail in CI."""
    path = shared_dir() / relative
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is required in CI and is missing")
        pytest.skip(f"{path} not present on this machine")
    return path


@pytest.fixture(scope="session")
def linear_schema_path() -> Path:
    return require_shared_file("linear/schema.graphql")


@pytest.fixture(scope="session")
def codegen_openapi_path() -> Path:
    return require_shared_file("codegen/openapi3.json")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("EDGE_WORKER_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("EDGE_WORKER_TEST_POSTGRES_URL is required in CI")
        pytest.skip("EDGE_WORKER_TEST_POSTGRES_URL not set")
    return url
