"""The daily cost summary line: which day, what it says, and that it is written once.

The rules (which day is due, the line's fields) are checked with a fake clock and ledger
rows built in memory. The integration tests run the real daemon (``edge-worker serve``) on
a real ledger: on SQLite one daemon crashes and comes back; on PostgreSQL two daemons
share the database and one restarts. Every time, the log holds exactly one summary line
for yesterday, and its figures agree with ``edge-worker costs --day`` to the cent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_worker.costs.daily import (
    SETTLE,
    SUMMARY_EVENT,
    DayRollover,
    day_to_summarise,
    summarise_day,
    summary_workflow_id,
)
from edge_worker.costs.daily_workflow import CHECKED_EVENT
from edge_worker.costs.ledger import Ledger, LedgerRow
from edge_worker.costs.money import Total, format_usd
from edge_worker.executors.base import Usage
from edge_worker.storage.db import create_engine_for, create_tables
from tests.support.costs import FakeClock, entry
from tests.support.daemon import Daemon, log_events, wait_for
from tests.support.pg import scratch_database

BIN = Path(sys.executable).parent / "edge-worker"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- which day is due ---------------------------------------------------------------------


def test_the_day_rolls_over_at_local_midnight_plus_the_margin_in_a_non_utc_zone() -> None:
    # Kolkata is UTC+05:30: its midnight before 11 March is 18:30 UTC on 10 March.
    assert timedelta(minutes=5) == SETTLE
    clock = FakeClock(utc(2025, 3, 10, 18, 20))  # 23:50 on the 10th in Kolkata
    assert day_to_summarise(clock(), "Asia/Kolkata") == date(2025, 3, 9)
    clock.advance(minutes=14)  # 00:04 on the 11th: the 10th is still settling
    assert day_to_summarise(clock(), "Asia/Kolkata") == date(2025, 3, 9)
    clock.advance(minutes=1)  # 00:05 on the 11th
    assert day_to_summarise(clock(), "Asia/Kolkata") == date(2025, 3, 10)
    # The same instant in UTC is still the 10th, whose summary is not due there yet.
    assert day_to_summarise(clock(), "UTC") == date(2025, 3, 9)


def test_one_instant_is_a_different_day_to_summarise_in_different_zones() -> None:
    now = utc(2025, 3, 10, 23, 30)
    assert day_to_summarise(now, "UTC") == date(2025, 3, 9)  # 23:25 on the 10th
    assert day_to_summarise(now, "America/Los_Angeles") == date(2025, 3, 9)  # 16:30
    assert day_to_summarise(now, "Pacific/Auckland") == date(2025, 3, 10)  # 12:30 on the 11th


@pytest.mark.parametrize(
    ("midnight_utc", "ended"),
    [
        (utc(2025, 3, 10, 4, 0), date(2025, 3, 9)),  # New York springs forward: 23 hours
        (utc(2025, 11, 3, 5, 0), date(2025, 11, 2)),  # and falls back: 25 hours
    ],
)
def test_days_of_23_and_25_hours_end_at_their_local_midnight(
    midnight_utc: datetime, ended: date
) -> None:
    before = midnight_utc + SETTLE - timedelta(seconds=1)
    assert day_to_summarise(before, "America/New_York") == ended - timedelta(days=1)
    assert day_to_summarise(midnight_utc + SETTLE, "America/New_York") == ended


def test_a_naive_time_or_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        day_to_summarise(datetime(2025, 3, 10, 12, 0), "UTC")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        day_to_summarise(utc(2025, 3, 10, 12, 0), "Mars/Olympus")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        DayRollover("Mars/Olympus")


def test_each_day_is_due_once_as_the_clock_runs_over_three_days() -> None:
    zone = ZoneInfo("Europe/Berlin")
    clock = FakeClock(datetime(2025, 3, 10, 21, 0, tzinfo=zone).astimezone(UTC))
    rollover = DayRollover("Europe/Berlin")
    asked: list[tuple[date, datetime]] = []
    for _ in range(3 * 24 * 12):  # a look every five minutes
        day = rollover.due(clock())
        if day is not None:
            asked.append((day, clock().astimezone(zone)))
            rollover.done(day)
        clock.advance(minutes=5)
    assert [day for day, _ in asked] == [date(2025, 3, d) for d in (9, 10, 11, 12)]
    # The first look asks for yesterday at once; each later day just after local midnight.
    assert [at.strftime("%d %H:%M") for _, at in asked] == [
        "10 21:00",
        "11 00:05",
        "12 00:05",
        "13 00:05",
    ]


def test_a_day_not_done_is_asked_again_and_a_clock_stepped_back_asks_nothing() -> None:
    rollover = DayRollover("Asia/Kolkata")
    now = utc(2025, 3, 11, 6, 0)
    assert rollover.due(now) == date(2025, 3, 10)
    assert rollover.due(now + timedelta(minutes=1)) == date(2025, 3, 10)  # not done yet
    rollover.done(date(2025, 3, 10))
    assert rollover.due(now + timedelta(minutes=2)) is None
    assert rollover.due(now - timedelta(days=2)) is None  # NTP stepped the clock back
    rollover.done(date(2025, 3, 8))  # an older day never moves the mark back
    assert rollover.last_done == date(2025, 3, 10)


def test_the_workflow_id_names_the_day() -> None:
    assert summary_workflow_id(date(2025, 3, 9)) == "daily-cost-summary-2025-03-09"


# -- what the line says -------------------------------------------------------------------


def row(
    n: int,
    executor: str,
    usd_micros: int | None,
    *,
    issue: str = "issue-1",
    day: date = date(2025, 3, 10),
) -> LedgerRow:
    return LedgerRow(
        entry_id=f"e{n}",
        created_at=utc(2025, 3, 10, 12, n),
        day=day,
        issue_id=issue,
        issue_identifier=issue.replace("issue-", "ENG-"),
        subtask_key="parser",
        kind="run",
        executor=executor,
        model=None,
        attempt=1,
        usage=Usage(),
        usd_micros=usd_micros,
    )


def test_the_line_sums_exactly_counts_unpriced_parts_and_names_the_limit() -> None:
    rows = [
        row(1, "claude-code", 1_105_000),
        row(2, "codex", 333_333),
        row(3, "codex", 333_333, issue="issue-2"),
        row(4, "codegen", None, issue="issue-2"),
        row(5, "claude-code", 2_202_500, issue="issue-3"),
        row(6, "codex", 333_334),
    ]
    summary = summarise_day(date(2025, 3, 10), "Europe/Berlin", rows, daily_limit=25.5)
    assert summary.total == Total(micros=4_307_500, priced=5, unpriced=1)
    fields = summary.log_fields()
    assert fields == {
        "day": "2025-03-10",
        "timezone": "Europe/Berlin",
        "total": "$4.31 + 1 unpriced run",
        "total_usd": "4.307500",
        "unpriced": 1,
        "entries": 6,
        "issues": 3,
        "executors": {
            "claude-code": {"total": "$3.31", "usd": "3.307500", "unpriced": 0},
            "codegen": {"total": "unpriced", "usd": "0.000000", "unpriced": 1},
            "codex": {"total": "$1.00", "usd": "1.000000", "unpriced": 0},
        },
        "daily_limit_usd": "25.500000",
    }
    assert json.loads(json.dumps(fields)) == fields  # the JSON log carries it as is


def test_a_day_without_entries_or_limit_reads_zero_spent_not_unpriced() -> None:
    fields = summarise_day(date(2025, 3, 10), "UTC", []).log_fields()
    assert fields["total"] == "$0.00"
    assert fields["total_usd"] == "0.000000"
    assert (fields["unpriced"], fields["entries"], fields["issues"]) == (0, 0, 0)
    assert fields["executors"] == {}
    assert fields["daily_limit_usd"] is None


def test_rows_of_another_day_are_refused() -> None:
    rows = [row(1, "codex", 1), row(2, "codex", 1, day=date(2025, 3, 11))]
    with pytest.raises(ValueError, match="2025-03-11"):
        summarise_day(date(2025, 3, 10), "UTC", rows)


# -- the real daemon ----------------------------------------------------------------------

CANDIDATE_ZONES = ("Asia/Kolkata", "America/Los_Angeles", "Pacific/Auckland", "Europe/Berlin")


def _zone_far_from_midnight() -> str:
    """A non-UTC zone whose clock is between 01:00 and 23:00 now, so the day cannot roll
    over while the test runs (the offsets are hours apart: one always qualifies)."""
    now = datetime.now(UTC)
    for name in CANDIDATE_ZONES:
        if 1 <= now.astimezone(ZoneInfo(name)).hour < 23:
            return name
    raise AssertionError("no candidate zone is away from midnight")


def _noon(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _seed(url: str, zone: str) -> date:
    """Yesterday's entries (and one of the day before and one of today, which the line must
    leave out) in the ledger at ``url``; returns yesterday in ``zone``."""
    today = datetime.now(ZoneInfo(zone)).date()
    yesterday = today - timedelta(days=1)
    engine = create_engine_for(url)
    try:
        create_tables(engine)
        clock = FakeClock(_noon(yesterday, zone))
        ledger = Ledger(engine, zone, clock)
        yesterdays = [
            entry("plan", kind="planner", key=None, executor="anthropic", usd="0.0049"),
            entry("run:parser", usd="1.105", tokens=(10_000, 2_000, 900)),
            entry("verify:parser", kind="verification", usd=None),
            entry("run:docs", key="docs", executor="codex", model="gpt-5", usd="0.333333"),
            entry("resume:docs", kind="resume", key="docs", executor="codex", usd="0.333333"),
            entry("run:api", issue_id="i-2", identifier="ENG-2", key="api", usd="2.2025"),
            entry("run:ui", issue_id="i-2", identifier="ENG-2", executor="codegen", usd=None),
            entry("run:db", issue_id="i-3", identifier="ENG-3", executor="codex", usd="0.333333"),
        ]
        for item in yesterdays:
            assert ledger.record(item)
        assert ledger.day_total(yesterday).usd == Decimal("4.312399")
        clock.advance(days=-1)
        ledger.record(entry("run:older", issue_id="i-9", identifier="ENG-9", usd="50"))
        clock.now = datetime.now(UTC)
        ledger.record(entry("run:today", issue_id="i-8", identifier="ENG-8", usd="70"))
    finally:
        engine.dispose()
    return yesterday


def _events(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    return log_events(daemon.log_text(), event)


def _summaries(*daemons: Daemon) -> list[dict[str, Any]]:
    return [line for daemon in daemons for line in _events(daemon, SUMMARY_EVENT)]


def _checks(daemon: Daemon) -> int:
    return len(_events(daemon, CHECKED_EVENT))


def _costs_json(daemon: Daemon, day: date) -> dict[str, Any]:
    done = subprocess.run(
        [str(BIN), "costs", "--day", day.isoformat(), "--json"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _assert_agrees_with_costs_command(line: dict[str, Any], costs: dict[str, Any]) -> None:
    """The line's figures are ``edge-worker costs --day``'s, to the cent (and exactly)."""
    assert line["day"] == costs["day"]
    assert line["timezone"] == costs["timezone"]
    assert line["total"] == costs["total"]["display"] == "$4.31 + 2 unpriced runs"
    assert format_usd(line["total_usd"]) == format_usd(costs["total"]["usd"])
    assert line["total_usd"] == "4.312399"
    assert line["unpriced"] == costs["total"]["unpriced"] == 2
    assert line["entries"] == len(costs["entries"]) == 8
    assert line["issues"] == len(costs["issues"]) == 3
    by_executor: dict[str, Total] = {}
    for item in costs["entries"]:
        by_executor[item["executor"]] = by_executor.get(item["executor"], Total()).add(item["usd"])
    assert (
        set(line["executors"])
        == set(by_executor)
        == {
            "anthropic",
            "claude-code",
            "codex",
            "codegen",
        }
    )
    for name, total in by_executor.items():
        shown = line["executors"][name]
        assert shown["total"] == total.format()
        assert format_usd(shown["usd"]) == format_usd(total.usd)
        assert shown["unpriced"] == total.unpriced
    assert line["executors"]["codex"]["total"] == "$1.00"
    assert line["executors"]["claude-code"]["total"] == "$3.31 + 1 unpriced run"
    assert line["daily_limit_usd"] == "25.000000"


def _env(zone: str, **extra: str) -> dict[str, str]:
    return {
        "EDGE_WORKER_BUDGET__TIMEZONE": zone,
        "EDGE_WORKER_BUDGET__PER_DAY_USD": "25",
        "EDGE_WORKER_LOG_LEVEL": "debug",  # the "checked" line tells the check ran
        **extra,
    }


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """The daemons a test runs, stopped afterwards whatever happens (stopping one that
    never started does nothing)."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


@pytest.mark.slow
def test_sqlite_daemon_writes_yesterdays_line_once_even_after_a_crash(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    zone = _zone_far_from_midnight()
    daemon = Daemon(tmp_path / "state", **_env(zone, EDGE_WORKER_EXECUTOR_ID="solo"))
    yesterday = _seed(f"sqlite:///{daemon.sqlite_path}", zone)
    daemons.append(daemon)
    daemon.start()

    wait_for(lambda: _checks(daemon) == 1, timeout=60)
    lines = _summaries(daemon)
    assert len(lines) == 1, daemon.log_text()[-3000:]
    assert lines[0]["day"] == yesterday.isoformat()
    assert lines[0]["level"] == "info"
    _assert_agrees_with_costs_command(lines[0], _costs_json(daemon, yesterday))

    daemon.kill()
    daemon.start()
    wait_for(lambda: _checks(daemon) == 2, timeout=60)
    assert len(_summaries(daemon)) == 1


@pytest.mark.slow
@pytest.mark.postgres
def test_daemons_sharing_postgres_write_one_line_between_them_across_a_restart(
    tmp_path: Path, postgres_url: str, daemons: list[Daemon]
) -> None:
    zone = _zone_far_from_midnight()
    with scratch_database(postgres_url) as url:
        yesterday = _seed(url, zone)
        alpha = Daemon(
            tmp_path / "alpha",
            **_env(zone, EDGE_WORKER_DATABASE_URL=url, EDGE_WORKER_EXECUTOR_ID="alpha"),
        )
        beta = Daemon(
            tmp_path / "beta",
            **_env(zone, EDGE_WORKER_DATABASE_URL=url, EDGE_WORKER_EXECUTOR_ID="beta"),
        )
        daemons.extend([alpha, beta])
        with ThreadPoolExecutor(max_workers=2) as pool:  # both look for yesterday at once
            list(pool.map(Daemon.start, daemons))

        wait_for(lambda: _checks(alpha) == 1 and _checks(beta) == 1, timeout=60)
        lines = _summaries(alpha, beta)
        assert len(lines) == 1, alpha.log_text()[-2000:] + beta.log_text()[-2000:]
        assert lines[0]["day"] == yesterday.isoformat()
        _assert_agrees_with_costs_command(lines[0], _costs_json(alpha, yesterday))

        beta.stop()
        beta.start()
        wait_for(lambda: _checks(beta) == 2, timeout=60)
        assert len(_summaries(alpha, beta)) == 1
        for daemon in daemons:
            daemon.stop()
