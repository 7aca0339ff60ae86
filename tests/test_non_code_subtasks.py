"""A sub-task that changes no code (a scoper's) carries no verification commands: plan
validation asks checks of code tasks only. Its run's own outcome decides it, and the report
says it was not verified instead of failing it for want of checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_worker.reporting.report import NOT_VERIFIED
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import row_of, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCOPE = {
    "key": "scope",
    "title": "Scope the calculator work",
    "description": "Objective: list what the calculator lacks.\n\nAcceptance criteria: a list.",
    "role": "scoper",
    "executor": "any",
    "depends_on": [],
    "verification": [],
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    plan = {"summary": "Scope the calculator.", "subtasks": [SCOPE]}
    with SandboxWorld(tmp_path / "world", plan=plan) as started:
        yield started


def test_a_scoping_sub_task_without_checks_passes_on_its_run_and_says_not_verified(
    world: SandboxWorld, tmp_path: Path
) -> None:
    world.tasks["scope"] = {"runs": [{"text": "The calculator lacks division."}]}
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done"
        identifier = world.linear.store.find_issue(issue_id).identifier
        assert len(e2e.agent_calls(identifier, "scope")) == 1  # no feedback iterations
        (child,) = e2e.children(issue_id).values()
        row = row_of(e2e.report(issue_id), child.identifier)
        assert NOT_VERIFIED in row, row


def test_a_scoping_sub_task_whose_run_fails_is_failed(world: SandboxWorld, tmp_path: Path) -> None:
    world.tasks["scope"] = {
        "runs": [{"text": "x", "fail": {"stderr": "unexpected end of input", "exit_code": 1}}]
    }
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) != "done"
