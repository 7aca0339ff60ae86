"""``edge-worker demo`` shows the mix of agents a user would run, in the printed report.

The demo runs end to end here (stand-ins on loopback, the real daemon as a subprocess,
stand-in agent CLIs as real executables); the tests read the executor column of the report
comment it prints.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from edge_worker.cli import build_parser
from edge_worker.demo import parse_agents, role_profiles, run_demo
from edge_worker.orchestration.plan import validate_plan
from edge_worker.sandbox.demo_plan import CLOUD_SUBTASK, demo_mix_plan

_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")
LOCAL = {"claude-code", "codex", "gemini"}


def report_executors(output: str) -> dict[str, str]:
    """Sub-issue title -> executor, from the report table the demo printed."""
    start = output.index("== the report comment on the issue")
    end = output.index("== sub-issues", start)
    executors: dict[str, str] = {}
    for line in output[start:end].splitlines():
        if not line.startswith("| ["):
            continue
        cells = [cell.strip() for cell in _CELL_SEPARATOR.split(line)]
        title = re.sub(r"^\[ENG-\d+ (.*)\]\(.*\)$", r"\1", cells[1])
        executors[title] = cells[2]
    return executors


@pytest.mark.slow
def test_default_demo_runs_a_codegen_sub_task_beside_local_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(root=tmp_path) == 0
    output = capsys.readouterr().out
    executors = report_executors(output)
    assert len(executors) == 5
    assert executors["Add calc.add(a, b)"] == "codegen"
    assert set(executors.values()) - {"codegen"} == {"claude-code"}
    assert "## edge-worker: ENG-1 is done" in output


@pytest.mark.slow
def test_demo_with_agents_runs_each_named_local_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["demo", "--agents", "gemini,codex,claude"])
    assert run_demo(root=tmp_path, agents=args.agents) == 0
    output = capsys.readouterr().out
    executors = report_executors(output)
    assert executors["Scope the calculator change"] == "gemini"
    assert executors["Review the calculator change against the issue"] == "claude-code"
    builders = set(executors.values()) - {"gemini", "claude-code"}
    assert builders == {"codex"}
    assert set(executors.values()) == LOCAL
    assert "## edge-worker: ENG-1 is done" in output


def test_agents_are_parsed_with_aliases_and_given_the_roles_in_turn() -> None:
    agents = parse_agents(" gemini, codex ,claude")
    assert agents == ["gemini", "codex", "claude-code"]
    assert role_profiles(agents) == {
        "scoper": {"executor": "gemini"},
        "builder": {"executor": "codex"},
        "reviewer": {"executor": "claude-code"},
    }
    assert role_profiles(["codex"]) == {
        role: {"executor": "codex"} for role in ("scoper", "builder", "reviewer")
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gemini,copilot", "unknown agent 'copilot'"),
        (" , ", "name at least one agent"),
        ("gemini,codex,claude,codegen", "at most 3 agents"),
    ],
)
def test_bad_agents_get_a_clear_error(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_agents(text)
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["demo", "--agents", text])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_mix_plan_hints_one_cloud_sub_task_and_stays_valid() -> None:
    for scoping in (False, True):
        plan = validate_plan(demo_mix_plan(sys.executable, scoping=scoping), max_subtasks=8)
        hints = {subtask.key: subtask.executor for subtask in plan.subtasks}
        assert hints.pop(CLOUD_SUBTASK) == "cloud"
        assert set(hints.values()) == {"local"}
        roles = {subtask.role for subtask in plan.subtasks}
        assert ("scoper" in roles) is scoping


@pytest.mark.slow
def test_demo_runs_on_a_machine_without_linears_schema_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's machine has no ``../shared``: the stand-in serves its own subset of the
    schema, which must carry every field and argument the daemon sends."""
    monkeypatch.setenv("EDGE_WORKER_SHARED_DIR", str(tmp_path / "no-shared-here"))
    assert run_demo(root=tmp_path / "demo") == 0
    assert "schema validation: off" in capsys.readouterr().out
