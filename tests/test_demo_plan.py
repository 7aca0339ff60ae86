"""The demo plan is valid, has the promised graph, and its checks really decide the work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_worker.orchestration.plan import Plan, topological_layers, validate_plan
from edge_worker.sandbox.demo_plan import (
    DEMO_SOLUTIONS,
    demo_plan,
    init_demo_repository,
    write_files,
)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return validate_plan(demo_plan(sys.executable), max_subtasks=8)


def passes(repo: Path, plan: Plan, key: str) -> list[bool]:
    results = []
    for check in plan.subtask(key).verification:
        completed = subprocess.run(
            check.command, shell=True, cwd=repo, capture_output=True, timeout=60
        )
        results.append(completed.returncode == check.expect_exit)
    return results


def test_the_graph_has_two_roots_a_join_and_a_final_review(plan: Plan) -> None:
    layers = [[s.key for s in layer] for layer in topological_layers(plan)]
    assert layers == [["add-function", "multiply-function"], ["cli", "unit-tests"], ["review"]]
    assert plan.subtask("cli").depends_on == ["add-function", "multiply-function"]
    assert plan.subtask("review").role == "reviewer"
    assert all(s.verification for s in plan.subtasks)


def test_the_python_in_the_commands_is_configurable() -> None:
    commands = [
        check["command"]
        for task in demo_plan("/opt/py 3/bin/python")["subtasks"]
        for check in task["verification"]
    ]
    assert all("'/opt/py 3/bin/python'" in command for command in commands)


def test_checks_fail_before_the_work_and_pass_after_it(tmp_path: Path, plan: Plan) -> None:
    repo = init_demo_repository(tmp_path / "demo")
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=repo, capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    for subtask in plan.subtasks:
        assert not any(passes(repo, plan, subtask.key)), subtask.key
    for layer in topological_layers(plan):
        for subtask in layer:
            write_files(repo, DEMO_SOLUTIONS[subtask.key])
        for subtask in layer:
            assert all(passes(repo, plan, subtask.key)), subtask.key
