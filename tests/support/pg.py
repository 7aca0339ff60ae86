"""A throw-away PostgreSQL database per test, on the server named by the test URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from edge_worker.storage.db import create_engine_for, create_tables


def _admin_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"ew_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _db = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def set_connections_allowed(url: str, database: str, allowed: bool) -> None:
    """Take a database down (refuse and cut connections) or bring it back."""
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )


@contextmanager
def engine_for_param(request: pytest.FixtureRequest, sqlite_file: Path) -> Iterator[sa.Engine]:
    """An engine with the project's tables, disposed afterwards: on SQLite at
    ``sqlite_file`` when the fixture's param is ``"sqlite"``, else on a scratch PostgreSQL
    database (the ``postgres_url`` fixture's server)."""
    if request.param == "sqlite":
        made = create_engine_for(f"sqlite:///{sqlite_file}")
        create_tables(made)
        yield made
        made.dispose()
        return
    with scratch_database(request.getfixturevalue("postgres_url")) as url:
        made = create_engine_for(url)
        create_tables(made)
        yield made
        made.dispose()
