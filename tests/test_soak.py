"""The fault-injection soak, short: issues in app mode against the stand-ins while the
daemons are SIGKILLed (and SIGTERMed now and then) and Linear, Codegen, the model API and
the local agent CLI misbehave in bursts (see ``bench/soak.py``; the long runs and their
figures are in ``bench/README.md``). At the end every issue is terminal on Linear, nothing
was duplicated or lost, and the ledger holds no more than the stand-ins billed, as their
own records show: once with one daemon on SQLite, once with two daemons sharing a
PostgreSQL database that also refuses connections for a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakResult, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def assert_clean(result: SoakResult, issues: int) -> None:
    """No invariant violated; the ledger holds no more than was billed, unit by unit."""
    assert result.problems == []
    assert (result.duplicates, result.lost, result.non_terminal) == (0, 0, 0)
    assert result.activities_after_stop == 0
    assert sum(result.end_states.values()) == issues
    ledger = result.ledger
    assert ledger.excess == 0
    assert ledger.billed_usd > 0
    assert 0 < ledger.ledger_usd <= ledger.billed_usd


def test_twenty_issues_survive_kills_and_misbehaving_apis(tmp_path: Path) -> None:
    result = run_soak(tmp_path, issues=20, kills=5, seed=7)
    assert result.kills == 5
    assert sum(result.faults.values()) >= 5
    assert_clean(result, 20)


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_two_daemons_on_postgres_survive_kills_and_a_database_pause(
    tmp_path: Path, postgres_url: str
) -> None:
    result = run_soak(tmp_path, issues=6, kills=2, seed=3, postgres=postgres_url, pauses=1)
    assert (result.mode, result.daemons) == ("postgres", 2)
    assert (result.kills, result.pauses) == (2, 1)
    assert_clean(result, 6)
