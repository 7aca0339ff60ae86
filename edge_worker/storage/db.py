"""The daemon's own tables, next to DBOS's, in one database (SQLite file or PostgreSQL).

Contract:
- ``METADATA`` holds every table the daemon owns; modules declare their tables on it and
  ``create_engine_for(url)`` + ``create_tables(engine)`` make them exist (idempotently).
- Daemons starting together on one PostgreSQL database create the tables in turn.
- SQLite is opened in WAL mode with ``synchronous=FULL`` and a busy timeout, so a commit
  survives a killed process and concurrent writers wait instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()


def sqlalchemy_url(url: str) -> str:
    """Map a user-facing URL to the SQLAlchemy driver we ship (psycopg 3 for Postgres)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def ensure_sqlite_dir(url: str) -> None:
    """Create the parent directory of a SQLite database file."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine_for(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for ``url`` with the pragmas/pool settings the daemon relies on."""
    ensure_sqlite_dir(url)
    engine_url = sqlalchemy_url(url)
    if engine_url.startswith("sqlite"):
        engine = sa.create_engine(
            engine_url, connect_args={"check_same_thread": False, "timeout": 10}, **kwargs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(engine_url, pool_pre_ping=True, **kwargs)


# pg_advisory_xact_lock key serialising schema creation ("ew-schema" as an integer).
_SCHEMA_LOCK_KEY = 0x65772D736368656D


def create_tables(engine: sa.Engine) -> None:
    """Create every table in ``METADATA`` that does not exist yet.

    On PostgreSQL daemons starting together take turns (an advisory lock held for the
    transaction): two concurrent ``CREATE TABLE`` of the same table would fail one start.
    """
    import edge_worker.storage.tables  # noqa: F401  (registers the tables on METADATA)

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        METADATA.create_all(conn)
