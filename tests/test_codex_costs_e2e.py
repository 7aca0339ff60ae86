"""Codex money through the real daemon with the stand-in ``codex`` (which, like the real
CLI, reports the thread's running total after a resume): each iteration is charged its
own tokens, and a total that does not add up reads "uncertain" on Linear."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import SandboxWorld, solved_runs
from tests.support.e2e import running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KEY = "add-function"
OWN = {
    "input_tokens": 400_000,
    "cached_input_tokens": 0,
    "cache_write_input_tokens": 0,
    "output_tokens": 10_000,
    "reasoning_output_tokens": 0,
}
# gpt-5-codex: 400,000 x $1.25 + 10,000 x $10 per million = $0.60 a run.
SMALLER = {**OWN, "input_tokens": 200_000, "output_tokens": 5_000}  # $0.30
PLANNING = "$0.02"  # the planner's call, at the stand-in's default usage


def one_codex_subtask(tmp_path: Path, second_run: dict[str, Any]) -> tuple[str, str, str]:
    """Run ``KEY`` (fails verification once, then ``second_run`` solves it) on Codex;
    returns the issue's report, the sub-issue's result comment and the daemon's log."""
    plan = demo_plan(sys.executable)
    subtask = next(s for s in plan["subtasks"] if s["key"] == KEY)
    plan = {"summary": plan["summary"], "subtasks": [{**subtask, "depends_on": []}]}
    solved = solved_runs(KEY)["runs"][0]
    with SandboxWorld(tmp_path / "world", plan=plan) as world:
        world.tasks[KEY] = {
            "runs": [{"text": "Not done yet.", "usage": OWN}, {**solved, **second_run}]
        }
        issue_id = world.new_issue()
        env = {"EDGE_WORKER_STRATEGY": "cost-optimized", "EDGE_WORKER_CODEX__MODEL": "gpt-5-codex"}
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]
            (child,) = world.linear.store.children_of(issue_id)
            calls = e2e.agent_calls(world.linear.store.find_issue(issue_id).identifier, KEY)
            assert [call["argv"][0] for call in calls] == ["codex", "codex"]
            assert "resume" in calls[1]["argv"]
            return e2e.report(issue_id), e2e.result_comment(child.id), e2e.log()


def test_each_codex_iteration_is_charged_its_own_tokens(tmp_path: Path) -> None:
    report, result, _ = one_codex_subtask(tmp_path, {"usage": OWN})
    # Two runs of $0.60 each; counting the thread's total again would make it $1.80.
    assert f"**Planning:** {PLANNING}" in report
    assert "**Total:** $1.22" in report
    assert "| $1.20 |" in report
    assert "$1.20" in result and "uncertain" not in result + report


def test_a_thread_total_that_does_not_add_up_reads_uncertain(tmp_path: Path) -> None:
    # The resume reports less than the thread had before (a CLI that changed to per-turn
    # figures): its own figure, $0.30, is kept as reported, never negative.
    report, result, log = one_codex_subtask(tmp_path, {"usage": SMALLER, "report": "turn"})
    assert "**Total:** $0.92 (uncertain)" in report
    assert "| $0.90 (uncertain) |" in report
    assert "$0.90 (uncertain)" in result
    assert log.count("codex.usage_uncertain") == 1
