"""The fault-injection soak, short: 20 issues in app mode against the stand-ins while the
daemon is SIGKILLed 5 times (and SIGTERMed now and then) and Linear, Codegen, the model
API and the local agent CLI misbehave in bursts (see ``bench/soak.py``; the long run and
its figures are in ``bench/README.md``). At the end every issue is terminal on Linear and
nothing was duplicated or lost, as the stand-ins' own records show."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import run_soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_twenty_issues_survive_kills_and_misbehaving_apis(tmp_path: Path) -> None:
    result = run_soak(tmp_path, issues=20, kills=5, seed=7)
    assert result.kills == 5
    assert sum(result.faults.values()) >= 5
    assert result.problems == []
    assert (result.duplicates, result.lost, result.non_terminal) == (0, 0, 0)
    assert sum(result.end_states.values()) == 20
