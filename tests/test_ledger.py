"""The cost ledger on SQLite and PostgreSQL: one entry per step, exact sums, local days."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from edge_worker.costs.ledger import COST_ENTRIES, CostEntry, Ledger, cost_entry_id
from edge_worker.costs.money import Total
from edge_worker.executors.base import Usage
from tests.conftest import REPO_ROOT
from tests.support.costs import FakeClock, clock, engine, entry, ledger

__all__ = ["clock", "engine", "ledger"]  # fixtures used by name below


def _row_count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(COST_ENTRIES)).scalar_one()
        )


def test_recording_the_same_entry_twice_leaves_one_row(ledger: Ledger, engine: sa.Engine) -> None:
    first = entry("run:parser", usd="1.25", tokens=(100, 20, 30))
    assert ledger.record(first) is True
    assert ledger.record(first) is False
    assert _row_count(engine) == 1
    assert ledger.issue_total("issue-1") == Total(micros=1_250_000, priced=1)


def test_totals_sum_planner_attempts_resumes_and_verifications(ledger: Ledger) -> None:
    ledger.record(entry("plan", kind="planner", key=None, executor="anthropic", usd="0.12"))
    ledger.record(entry("run:parser", attempt=1, usd="1.10"))
    ledger.record(entry("verify:parser", kind="verification", attempt=1, usd="0.05"))
    ledger.record(entry("resume:parser", kind="resume", attempt=2, usd="0.70"))
    ledger.record(entry("verify:parser", kind="verification", attempt=2, usd="0.05"))
    ledger.record(entry("run:docs", key="docs", executor="codex", model="gpt-5", usd="0.333333"))
    ledger.record(entry("run:other", issue_id="issue-2", identifier="ENG-2", usd="9.00"))

    parser = ledger.subtask_total("issue-1", "parser")
    assert parser == Total(micros=1_900_000, priced=4)
    assert parser.format() == "$1.90"
    issue = ledger.issue_total("issue-1")
    assert issue.usd == Decimal("2.353333")
    assert issue.parts == 6
    assert ledger.issue_total("issue-2").format() == "$9.00"


def test_unpriced_entries_are_counted_not_summed_as_zero(ledger: Ledger) -> None:
    ledger.record(entry("run:a", key="a", executor="codegen", model=None, usd=None))
    ledger.record(entry("run:b", key="b", usd="3.42"))
    ledger.record(entry("run:c", key="c", executor="codex", model="gpt-unknown", usd=None))

    total = ledger.issue_total("issue-1")
    assert total == Total(micros=3_420_000, priced=1, unpriced=2)
    assert total.format() == "$3.42 + 2 unpriced runs"
    assert ledger.subtask_total("issue-1", "a").format() == "unpriced"
    rows = {row.subtask_key: row for row in ledger.entries()}
    assert rows["a"].usd is None and rows["a"].total.unpriced == 1
    assert rows["b"].usd == 3.42


def test_an_empty_issue_totals_to_nothing(ledger: Ledger) -> None:
    assert ledger.issue_total("nobody") == Total()
    assert ledger.day_total(date(2025, 3, 10)) == Total()


def test_entries_keep_what_was_observed(ledger: Ledger, clock: FakeClock) -> None:
    recorded = entry("run:parser", attempt=2, usd="0.5", tokens=(1000, 200, 300))
    ledger.record(recorded)
    (row,) = ledger.entries()
    assert row.entry_id == recorded.entry_id
    assert row.created_at == clock.now
    assert row.created_at.tzinfo is not None
    assert (row.issue_id, row.issue_identifier, row.subtask_key) == ("issue-1", "ENG-1", "parser")
    assert (row.kind, row.executor, row.model, row.attempt) == (
        "run",
        "claude-code",
        "claude-sonnet-4-5",
        2,
    )
    assert row.usage == Usage(input_tokens=1000, cached_input_tokens=200, output_tokens=300)
    assert row.usd_micros == 500_000


def test_the_day_rolls_over_in_the_configured_time_zone(ledger: Ledger, clock: FakeClock) -> None:
    clock.now = datetime(2025, 3, 10, 22, 30, tzinfo=UTC)  # 23:30 in Berlin (UTC+1)
    assert ledger.today() == date(2025, 3, 10)
    ledger.record(entry("run:late", key="late", usd="1.00"))
    clock.advance(minutes=45)  # 23:15 UTC, still the 10th in UTC; 00:15 on the 11th in Berlin
    assert ledger.today() == date(2025, 3, 11)
    ledger.record(entry("run:early", key="early", usd="2.00"))

    assert ledger.day_total(date(2025, 3, 10)).format() == "$1.00"
    assert ledger.day_total(date(2025, 3, 11)).format() == "$2.00"
    assert [row.subtask_key for row in ledger.entries(day=date(2025, 3, 11))] == ["early"]


def test_the_same_instant_is_another_day_elsewhere(engine: sa.Engine) -> None:
    clock = FakeClock(datetime(2025, 3, 11, 3, 0, tzinfo=UTC))
    assert Ledger(engine, "America/Los_Angeles", clock).today() == date(2025, 3, 10)
    assert Ledger(engine, "Asia/Tokyo", clock).today() == date(2025, 3, 11)
    assert Ledger(engine, "UTC", clock).today() == date(2025, 3, 11)


def test_entries_filter_by_day_and_by_issue_id_or_identifier(
    ledger: Ledger, clock: FakeClock
) -> None:
    ledger.record(entry("run:1", usd="1"))
    clock.advance(seconds=1)
    ledger.record(entry("run:2", issue_id="issue-2", identifier="ENG-2", usd="2"))
    clock.advance(days=1)
    ledger.record(entry("run:3", usd="3"))

    assert [row.usd for row in ledger.entries(issue="ENG-1")] == [1.0, 3.0]
    assert [row.usd for row in ledger.entries(issue="issue-1")] == [1.0, 3.0]
    assert [row.usd for row in ledger.entries(day=date(2025, 3, 10))] == [1.0, 2.0]
    assert [row.usd for row in ledger.entries(day=date(2025, 3, 11), issue="ENG-2")] == []
    assert len(ledger.entries()) == 3


def test_concurrent_writers_of_one_entry_write_it_once(ledger: Ledger, engine: sa.Engine) -> None:
    same = entry("run:parser", usd="0.75")
    barrier = threading.Barrier(6)
    results: list[bool] = []

    def write() -> None:
        barrier.wait()
        results.append(ledger.record(same))

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert _row_count(engine) == 1


CRASHING_STEP = """
import os, sys
from datetime import UTC, datetime
from edge_worker.costs.ledger import Ledger
from edge_worker.storage.db import create_engine_for
from tests.support.costs import entry

url, search_path = sys.argv[1], sys.argv[2]
options = {"connect_args": {"options": "-csearch_path=" + search_path}} if search_path else {}
ledger = Ledger(create_engine_for(url, **options), "Europe/Berlin",
                lambda: datetime(2025, 3, 10, 12, tzinfo=UTC))
print(ledger.record(entry("run:parser", usd="1.25")), flush=True)
os._exit(137)  # killed after the entry, before the durable step could checkpoint
"""


def test_a_step_replayed_after_a_crash_leaves_the_entry_once(
    ledger: Ledger, engine: sa.Engine
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    search_path = ""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            search_path = str(connection.execute(sa.text("SHOW search_path")).scalar_one())
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_STEP, url, search_path],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == 137, crashed.stderr
    assert crashed.stdout.strip() == "True"

    # The restarted daemon replays the step: same workflow, step and attempt, same id.
    assert ledger.record(entry("run:parser", usd="1.25")) is False
    assert _row_count(engine) == 1
    assert ledger.issue_total("issue-1").format() == "$1.25"


def test_entry_ids_are_deterministic_per_workflow_step_and_attempt() -> None:
    assert cost_entry_id("wf", "run:a", 1) == cost_entry_id("wf", "run:a", 1)
    assert cost_entry_id("wf", "run:a", 1) != cost_entry_id("wf", "run:a", 2)
    assert cost_entry_id("wf", "run:a", 1) != cost_entry_id("wf", "verify:a", 1)
    assert cost_entry_id("wf", "run:a", 1) != cost_entry_id("wf2", "run:a", 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "lunch"}, "kind must be one of planner, run, resume, verification"),
        ({"attempt": 0}, "attempt counts from 1"),
        ({"usd": -1}, "negative"),
        ({"usd": float("nan")}, "finite"),
        ({"entry_id": ""}, "entry_id"),
        ({"usage": Usage(input_tokens=-5)}, "token counts"),
    ],
)
def test_bad_entries_are_refused_before_anything_is_written(
    changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "entry_id": "e1",
        "issue_id": "i",
        "issue_identifier": "ENG-1",
        "kind": "run",
        "executor": "codex",
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        CostEntry(**fields)  # type: ignore[arg-type]


def test_a_naive_clock_and_an_unknown_zone_are_refused(engine: sa.Engine) -> None:
    naive = Ledger(engine, "UTC", lambda: datetime(2025, 3, 10, 12))
    with pytest.raises(ValueError, match="timezone-aware"):
        naive.today()
    with pytest.raises(ValueError, match="unknown time zone"):
        Ledger(engine, "Mars/Olympus_Mons")


def test_the_ledger_table_is_registered_with_the_daemons_tables() -> None:
    import edge_worker.storage.tables  # noqa: F401  (what create_tables imports)
    from edge_worker.storage.db import METADATA

    assert METADATA.tables["cost_entries"] is COST_ENTRIES


def test_an_uncertain_entry_makes_its_totals_say_so(ledger: Ledger) -> None:
    ledger.record(entry("run:certain", key="a", usd="1.00"))
    uncertain = entry(
        "resume:doubtful", key="b", kind="resume", attempt=2, usd="2.00", uncertain=True
    )
    ledger.record(uncertain)
    ledger.record(uncertain)  # a replayed step flags it once

    total = ledger.issue_total("issue-1")
    assert total == Total(micros=3_000_000, priced=2, uncertain=1)
    assert total.format() == "$3.00 (uncertain)"
    assert ledger.subtask_total("issue-1", "a").format() == "$1.00"
    assert ledger.subtask_total("issue-1", "b").format() == "$2.00 (uncertain)"
    rows = {row.subtask_key: row for row in ledger.entries(issue="ENG-1")}
    assert not rows["a"].uncertain and rows["a"].total.uncertain == 0
    assert rows["b"].uncertain and rows["b"].total.uncertain == 1


def test_cache_writes_and_reasoning_tokens_are_kept(ledger: Ledger) -> None:
    usage = Usage(
        input_tokens=1000,
        cached_input_tokens=200,
        cache_write_input_tokens=100,
        output_tokens=50,
        reasoning_output_tokens=20,
    )
    ledger.record(dataclasses.replace(entry("run:codex", usd="0.01"), usage=usage))
    ledger.record(entry("run:plain", key="plain", usd="0.01", tokens=(1, 0, 1)))
    rows = {row.subtask_key: row for row in ledger.entries()}
    assert rows["parser"].usage == usage and not rows["parser"].uncertain
    assert rows["plain"].usage == Usage(input_tokens=1, output_tokens=1)
    assert ledger.issue_total("issue-1").uncertain == 0
