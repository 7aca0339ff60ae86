"""``edge-worker costs`` against a real SQLite ledger: table and JSON, to the cent."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge_worker.costs.cli import EXIT_OK, EXIT_UNREADABLE, EXIT_USAGE, run_costs_command
from edge_worker.costs.ledger import Ledger
from edge_worker.settings import BudgetSettings, Settings
from tests.support.costs import FakeClock, entry, sqlite_engine

MONDAY = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # 13:00 in Berlin


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'state' / 'edge-worker.sqlite'}",
        budget=BudgetSettings(timezone="Europe/Berlin"),
    )


@pytest.fixture
def recorded(settings: Settings, clock: FakeClock, tmp_path: Path) -> None:
    """Two issues over two days: planner, runs, resumes, verifications, unpriced Codegen."""
    engine = sqlite_engine(tmp_path / "state" / "edge-worker.sqlite")
    ledger = Ledger(engine, "Europe/Berlin", clock)
    monday = [
        entry(
            "plan",
            kind="planner",
            key=None,
            executor="anthropic",
            usd="0.12",
            tokens=(1200, 0, 800),
        ),
        entry("run:parser", usd="1.10", tokens=(10_000, 5_000, 2_000)),
        entry("verify:parser", kind="verification", usd="0.05", tokens=(100, 0, 50)),
        entry("resume:parser", kind="resume", attempt=2, usd="0.70", tokens=(4_000, 1_000, 900)),
        entry("verify:parser", kind="verification", attempt=2, usd="0.05", tokens=(100, 0, 50)),
        entry("run:docs", key="docs", executor="codegen", model=None, usd=None),
        entry(
            "run:api",
            issue_id="issue-2",
            identifier="ENG-2",
            key="api",
            executor="codex",
            model="gpt-5",
            usd="0.333333",
            tokens=(20_000, 0, 3_000),
        ),
    ]
    for item in monday:
        clock.advance(seconds=1)
        assert ledger.record(item)
    clock.now = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)  # 00:30 on Tuesday in Berlin
    assert ledger.record(entry("run:docs", key="docs", executor="codegen", model=None, attempt=2))
    assert ledger.record(
        entry(
            "resume:api",
            kind="resume",
            issue_id="issue-2",
            identifier="ENG-2",
            key="api",
            executor="codex",
            model="gpt-5",
            usd="1.006",
            tokens=(8_000, 2_000, 1_000),
        )
    )
    engine.dispose()


def run(settings: Settings, clock: FakeClock, **options: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    arguments: dict[str, object] = {"day": None, "issue": None, "as_json": False}
    arguments.update(options)
    code = run_costs_command(settings, out=out, err=err, clock=clock, **arguments)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def test_table_for_a_day_groups_and_totals_to_the_cent(
    settings: Settings, clock: FakeClock, recorded: None
) -> None:
    code, out, err = run(settings, clock, day="2025-03-10")
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert lines[0] == "Costs for 2025-03-10 (time zone Europe/Berlin)"
    assert lines[2].split() == [
        "ISSUE",
        "SUB-TASK",
        "EXECUTOR",
        "MODEL",
        "ATTEMPTS",
        "INPUT",
        "CACHED",
        "OUTPUT",
        "USD",
    ]
    rows = {tuple(line.split()[:4]): line for line in lines[3:8]}
    assert rows[("ENG-1", "(planner)", "anthropic", "claude-sonnet-4-5")].split()[4:] == [
        "1",
        "1,200",
        "0",
        "800",
        "$0.12",
    ]
    assert rows[("ENG-1", "parser", "claude-code", "claude-sonnet-4-5")].split()[4:] == [
        "2",
        "14,200",
        "6,000",
        "3,000",
        "$1.90",
    ]
    assert rows[("ENG-1", "docs", "codegen", "-")].split()[4:] == ["1", "0", "0", "0", "unpriced"]
    assert rows[("ENG-2", "api", "codex", "gpt-5")].split()[4:] == [
        "1",
        "20,000",
        "0",
        "3,000",
        "$0.33",
    ]
    assert "ENG-1: $2.02 + 1 unpriced run" in lines
    assert "ENG-2: $0.33" in lines
    assert "Total: $2.35 + 1 unpriced run over 7 entries" in lines
    assert "Unpriced parts (cost unknown, not zero):" in lines
    assert "  ENG-1 docs: codegen/-, 1 run" in lines


def test_json_for_an_issue_spans_days_to_the_cent(
    settings: Settings, clock: FakeClock, recorded: None
) -> None:
    code, out, _ = run(settings, clock, issue="ENG-1", as_json=True)
    assert code == EXIT_OK
    data = json.loads(out)
    assert (data["day"], data["issue"], data["timezone"]) == (None, "ENG-1", "Europe/Berlin")
    assert round(data["total"]["usd"], 2) == 2.02
    assert data["total"]["unpriced"] == 2
    assert data["total"]["display"] == "$2.02 + 2 unpriced runs"
    docs = next(line for line in data["lines"] if line["subtask_key"] == "docs")
    assert (docs["attempts"], docs["entries"], docs["unpriced"], docs["display"]) == (
        2,
        2,
        2,
        "unpriced",
    )
    parser = next(line for line in data["lines"] if line["subtask_key"] == "parser")
    assert parser["usd"] == 1.9
    assert parser["kinds"] == ["resume", "run", "verification"]
    assert (parser["input_tokens"], parser["cached_input_tokens"], parser["output_tokens"]) == (
        14_200,
        6_000,
        3_000,
    )
    assert [e["day"] for e in data["entries"]].count("2025-03-11") == 1
    assert {e["usd"] for e in data["entries"] if e["executor"] == "codegen"} == {None}


def test_without_filters_it_shows_today_in_the_configured_zone(
    settings: Settings, clock: FakeClock, recorded: None
) -> None:
    clock.now = datetime(2025, 3, 11, 8, 0, tzinfo=UTC)
    _, out, _ = run(settings, clock)
    assert out.startswith("Costs for 2025-03-11 (time zone Europe/Berlin)")
    assert "Total: $1.01 + 1 unpriced run over 2 entries" in out
    _, yesterday, _ = run(settings, clock, day="yesterday", as_json=True)
    assert round(json.loads(yesterday)["total"]["usd"], 2) == 2.35


def test_a_day_and_an_issue_together(settings: Settings, clock: FakeClock, recorded: None) -> None:
    _, out, _ = run(settings, clock, day="2025-03-11", issue="issue-2", as_json=True)
    data = json.loads(out)
    assert data["total"] == {
        "usd": 1.006,
        "priced": 1,
        "unpriced": 0,
        "uncertain": 0,
        "display": "$1.01",
    }


def test_a_day_without_entries_says_so(
    settings: Settings, clock: FakeClock, recorded: None
) -> None:
    code, out, _ = run(settings, clock, day="2025-01-01")
    assert code == EXIT_OK
    assert out.splitlines()[1] == "No cost entries for 2025-01-01."


def test_a_missing_database_reads_as_empty_and_is_not_created(
    settings: Settings, clock: FakeClock
) -> None:
    code, out, _ = run(settings, clock, as_json=True)
    assert code == EXIT_OK
    assert json.loads(out)["total"] == {
        "usd": 0.0,
        "priced": 0,
        "unpriced": 0,
        "uncertain": 0,
        "display": "$0.00",
    }
    assert not Path(settings.resolved_database_url.removeprefix("sqlite:///")).exists()


def test_a_database_without_the_table_reads_as_empty(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "edge-worker.sqlite"
    path.parent.mkdir()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE unrelated (x INTEGER)"))
    engine.dispose()
    code, out, _ = run(settings, clock, day="today")
    assert code == EXIT_OK and "No cost entries for 2025-03-10." in out


def test_a_bad_day_is_a_usage_error_on_stderr(settings: Settings, clock: FakeClock) -> None:
    code, out, err = run(settings, clock, day="10/03/2025", as_json=True)
    assert (code, out) == (EXIT_USAGE, "")
    assert "--day must be a date like 2025-01-31" in err and "10/03/2025" in err


def test_an_unreachable_database_is_reported_without_its_password(clock: FakeClock) -> None:
    settings = Settings(database_url="postgresql://ledger:s3cret@127.0.0.1:1/edge")
    code, out, err = run(settings, clock, day="2025-03-10")
    assert (code, out) == (EXIT_UNREADABLE, "")
    assert "cannot read the cost ledger at" in err and "127.0.0.1:1" in err
    assert "s3cret" not in err


def test_verification_without_a_model_is_labelled_as_verification(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    engine = sqlite_engine(tmp_path / "state" / "edge-worker.sqlite")
    ledger = Ledger(engine, "Europe/Berlin", clock)
    assert ledger.record(entry("run:parser", usd="0.12", tokens=(100, 0, 10)))
    assert ledger.record(entry("verify:parser", kind="verification", model=None, usd="0"))
    engine.dispose()

    code, out, _ = run(settings, clock, day="2025-03-10")

    assert code == EXIT_OK
    rows = [line.split() for line in out.splitlines() if line.startswith("ENG-1")]
    assert [row[3] for row in rows] == ["claude-sonnet-4-5", "(verification)"]
    assert rows[1][-1] == "$0.00"
