"""End to end: an issue's own choice of agent ([agent=...] tag) with the real daemon, the
Linear, Anthropic and Codegen stand-ins, real git and the fake agent CLIs over loopback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from edge_worker.sandbox.demo_plan import DEMO_ISSUE_DESCRIPTION, demo_plan
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def two_subtasks() -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    chosen = [s for s in plan["subtasks"] if s["key"] in ("add-function", "multiply-function")]
    for subtask in chosen:
        subtask["depends_on"] = []
    return {"summary": plan["summary"], "subtasks": chosen}


def test_a_tag_runs_the_issues_subtasks_on_the_chosen_agent(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world", plan=two_subtasks()) as world:
        issue_id = world.new_issue(description=DEMO_ISSUE_DESCRIPTION + "\n[agent=gemini]")
        with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="hybrid-smart") as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]
            identifier = world.linear.store.find_issue(issue_id).identifier
            for key in ("add-function", "multiply-function"):
                calls = e2e.agent_calls(identifier, key)
                assert [c["argv"][0] for c in calls] == ["gemini"], key
            assert world.codegen.records("create") == []  # the strategy did not choose
            rows = e2e.subtask_rows(issue_id)
            assert {executor for _, executor in rows.values()} == {"gemini"}


def test_an_unknown_agent_gets_a_reply_and_nothing_runs(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world", plan=two_subtasks()) as world:
        issue_id = world.new_issue(description=DEMO_ISSUE_DESCRIPTION + "\n[agent=copilot]")
        with running(world, tmp_path / "state") as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "failed", e2e.log()[-4000:]
            report = e2e.report(issue_id)
            assert "agent `copilot`" in report and "does not exist here" in report
            assert world.linear.store.children_of(issue_id) == []
            identifier = world.linear.store.find_issue(issue_id).identifier
            for key in ("add-function", "multiply-function"):
                assert e2e.agent_calls(identifier, key) == []


def test_a_chosen_agent_whose_cli_is_missing_fails_at_once_with_why(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world", plan=two_subtasks()) as world:
        issue_id = world.new_issue(description=DEMO_ISSUE_DESCRIPTION + "\n[agent=gemini]")
        missing = str(tmp_path / "not-installed" / "gemini")
        with running(world, tmp_path / "state", EDGE_WORKER_GEMINI__BINARY=missing) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "failed", e2e.log()[-4000:]
            report = e2e.report(issue_id)
            assert "chooses gemini, which cannot run here" in report
            assert "not installed on this host" in report
            assert missing not in report  # no paths on Linear
            identifier = world.linear.store.find_issue(issue_id).identifier
            for key in ("add-function", "multiply-function"):
                assert e2e.agent_calls(identifier, key) == []  # no other agent stood in
