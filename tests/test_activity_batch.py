"""A run's progress lines reach the activity log a transaction per batch, in order, on a
real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from edge_worker.orchestration.activity_batch import ActivityBatch
from edge_worker.storage import activity_log
from edge_worker.storage.activity_log import NewLine
from edge_worker.storage.db import create_engine_for, create_tables


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = create_engine_for(f"sqlite:///{tmp_path / 'activity.sqlite'}")
    create_tables(made)
    yield made
    made.dispose()


def commits(engine: sa.Engine) -> list[int]:
    """A list that grows by one on each commit the engine makes from now on."""
    seen: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: seen.append(1))
    return seen


async def test_a_burst_of_progress_lines_is_one_transaction_in_order(engine: sa.Engine) -> None:
    seen = commits(engine)
    batch = ActivityBatch(engine)
    for number in range(50):
        batch.add("i-1", "action" if number % 2 else "thought", f"line {number}", "run-1")
    await batch.drain()

    assert len(seen) == 1
    with engine.connect() as conn:
        lines = activity_log.for_issue(conn, "i-1")
    assert [line.body for line in lines] == [f"line {n}" for n in range(50)]
    assert {line.run_workflow_id for line in lines} == {"run-1"}
    assert [line.kind for line in lines[:2]] == ["thought", "action"]


async def test_lines_that_come_during_a_write_go_in_the_next_one(engine: sa.Engine) -> None:
    seen = commits(engine)
    batch = ActivityBatch(engine)
    batch.add("i-1", "thought", "first", None)
    await batch.drain()
    batch.add("i-1", "thought", "second", None)
    batch.add("i-1", "thought", "third", None)
    await batch.drain()

    assert len(seen) == 2
    with engine.connect() as conn:
        assert [line.body for line in activity_log.for_issue(conn, "i-1")] == [
            "first",
            "second",
            "third",
        ]


def test_record_many_never_raises_and_logs_what_it_dropped(engine: sa.Engine) -> None:
    activity_log.activity_log.drop(engine)
    with capture_logs() as logs:
        activity_log.record_many(engine, [NewLine("i-1", "thought", "lost")])
    assert [entry["event"] for entry in logs] == ["activity lines not recorded"]
