"""Fixtures for the cost tests: a fake clock and ledgers on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge_worker.costs.ledger import (
    COST_ENTRIES,
    COST_ENTRY_DETAILS,
    CostEntry,
    EntryKind,
    Ledger,
    cost_entry_id,
)
from edge_worker.executors.base import Usage
from edge_worker.storage.db import create_engine_for


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def create_ledger_table(engine: sa.Engine) -> None:
    """Create the ledger's tables only, so these tests do not depend on other areas' tables."""
    COST_ENTRIES.create(engine, checkfirst=True)
    COST_ENTRY_DETAILS.create(engine, checkfirst=True)


def sqlite_engine(path: Path) -> sa.Engine:
    """An engine on a fresh SQLite file with the ledger's table created."""
    engine = create_engine_for(f"sqlite:///{path}")
    create_ledger_table(engine)
    return engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 10, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The daemon's tables on SQLite, then on PostgreSQL in a schema of their own."""
    if request.param == "sqlite":
        engine = sqlite_engine(tmp_path / "ledger.sqlite")
        yield engine
        engine.dispose()
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"ew_costs_{uuid.uuid4().hex[:12]}"
    admin = create_engine_for(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine_for(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        create_ledger_table(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def ledger(engine: sa.Engine, clock: FakeClock) -> Ledger:
    return Ledger(engine, "Europe/Berlin", clock)


def entry(
    step: str,
    *,
    kind: EntryKind = "run",
    issue_id: str = "issue-1",
    identifier: str = "ENG-1",
    key: str | None = "parser",
    executor: str = "claude-code",
    model: str | None = "claude-sonnet-4-5",
    attempt: int = 1,
    usd: float | str | None = None,
    tokens: tuple[int, int, int] = (0, 0, 0),
    uncertain: bool = False,
) -> CostEntry:
    """A cost entry whose id derives from the issue's workflow and ``step``."""
    return CostEntry(
        entry_id=cost_entry_id(f"issue:{issue_id}", step, attempt),
        issue_id=issue_id,
        issue_identifier=identifier,
        kind=kind,
        executor=executor,
        attempt=attempt,
        subtask_key=key,
        model=model,
        usage=Usage(input_tokens=tokens[0], cached_input_tokens=tokens[1], output_tokens=tokens[2]),
        usd=usd,
        uncertain=uncertain,
    )
