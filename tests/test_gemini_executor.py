"""The Gemini executor against the fake ``gemini`` CLI, as real subprocesses in real git
worktrees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_worker.costs.prices import DEFAULT_PRICES, price_usage, usage_without_cache_reads
from edge_worker.executors.base import (
    Executor,
    ExecutorUnavailable,
    RunStatus,
    TaskLimits,
    Usage,
)
from edge_worker.executors.gemini import (
    SETTINGS_PATH_ENV,
    GeminiExecutor,
    gemini_argv,
)
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.orchestration.strategy import LOCAL_PREFERENCE
from edge_worker.sandbox.fake_agents import FakeAgents
from edge_worker.settings import GeminiSettings
from tests.support.local_agents import (
    CACHED,
    INPUT,
    OUTPUT,
    OneModelPricer,
    cli_values,
    fake_state,
    make_task,
    nothing_left,
    scenario,
)

pytest_plugins = ("tests.support.local_agent_fixtures",)

STATE = "fake-gemini-state.json"
MODEL = "gemini-2.5-pro"


class Pricer(OneModelPricer):
    model = MODEL


def make_executor(
    fakes: FakeAgents, worktrees: WorktreeManager, pricer: Pricer, **overrides: Any
) -> GeminiExecutor:
    values = cli_values(fakes.gemini, model=MODEL, **overrides)
    return GeminiExecutor(GeminiSettings(**values), worktrees, pricer=pricer)


USAGE = {"input_tokens": 20000, "cached": 15000, "output_tokens": 300, "thoughts": 200}
GREETING = {"edits": [{"path": "hello.txt", "content": "hello\n"}], "usage": USAGE}


async def test_a_run_is_priced_from_its_tokens_per_model(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, GREETING, session_id="session-1")
    pricer = Pricer()
    executor = make_executor(fakes, worktrees, pricer, max_turns=7)
    assert isinstance(executor, Executor) and executor.name == "gemini"
    task = make_task(repo)

    handle = await executor.start(task)
    result = await executor.follow(handle)

    assert result.status is RunStatus.SUCCEEDED, result.error
    # thinking tokens (total beyond prompt and candidates) are billed as output
    expected = (5000 * INPUT + 15000 * CACHED + 500 * OUTPUT) / 1_000_000
    assert result.cost_usd == pytest.approx(expected)
    assert result.usage == Usage(
        input_tokens=20000,
        cached_input_tokens=15000,
        output_tokens=500,
        reasoning_output_tokens=200,
    )
    assert pricer.asked == [(MODEL, usage_without_cache_reads(result.usage))]
    assert result.model == MODEL
    assert result.session_id == "session-1"
    assert result.summary == "Done: applied the requested change."
    assert (await executor.verify(handle, task.verification)).passed

    workdir = Path(handle.workdir or "")
    (call,) = fake_state(workdir, STATE)["calls"]
    argv = call["argv"]
    assert argv[:5] == ["gemini", "--output-format", "stream-json", "--approval-mode", "yolo"]
    assert argv[5:7] == ["--model", MODEL]
    assert "--resume" not in argv
    assert argv[-1] == f"--prompt={call['prompt']}"
    assert call["prompt"].startswith(task.role_prompt.strip())  # no system-prompt option
    assert task.description in call["prompt"]
    # the turn limit reached the CLI through its settings file, written outside the worktree
    assert call["settings"] == {"model": {"maxSessionTurns": 7}}
    assert not any(workdir.rglob("*.json"))


async def test_an_unknown_model_leaves_the_run_unpriced_not_free(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, GREETING)
    executor = make_executor(fakes, worktrees, Pricer(known=False))
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.SUCCEEDED
    assert result.cost_usd is None
    assert result.usage.output_tokens == 500


async def test_resume_continues_the_session_with_feedback(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = {"edits": [{"path": "hello.txt", "content": "world\n", "append": True}]}
    scenario(monkeypatch, GREETING, {**append, "usage": USAGE}, session_id="session-2")
    pricer = Pricer()
    executor = make_executor(fakes, worktrees, pricer)
    task = make_task(repo)
    first = await executor.start(task)
    await executor.follow(first)

    second = await executor.resume(first, task, "Also add 'world'.")
    result = await executor.follow(second)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.session_id == "session-2"
    assert (Path(second.workdir or "") / "hello.txt").read_text() == "hello\nworld\n"
    calls = fake_state(Path(second.workdir or ""), STATE)["calls"]
    argv = calls[1]["argv"]
    assert argv[argv.index("--resume") + 1] == "session-2"
    assert "Also add 'world'." in calls[1]["prompt"]
    assert task.role_prompt.strip() not in calls[1]["prompt"]  # the session has it already
    # the CLI counts per invocation: each run is charged its own tokens
    assert len(pricer.asked) == 2 and pricer.asked[0] == pricer.asked[1]


async def test_a_reported_error_is_a_failure_with_its_message(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"outcome": "error", "errors": ["quota exceeded for model"]})
    executor = make_executor(fakes, worktrees, Pricer())
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "quota exceeded for model" in result.error


async def test_the_turn_limit_stops_the_run_as_a_failure(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {**GREETING, "turns": 5})
    executor = make_executor(fakes, worktrees, Pricer(), max_turns=20)
    task = make_task(repo, limits=TaskLimits(wall_clock_seconds=30, max_turns=3))
    handle = await executor.start(task)
    result = await executor.follow(handle)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "turn limit" in result.error
    (call,) = fake_state(Path(handle.workdir or ""), STATE)["calls"]
    assert call["settings"]["model"]["maxSessionTurns"] == 3  # the task's limit wins


async def test_a_hanging_gemini_times_out_and_leaves_nothing(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"behaviour": "hang_ignore_term", "grandchild": True})
    executor = make_executor(fakes, worktrees, Pricer(), kill_grace_seconds=0.3)
    task = make_task(repo, limits=TaskLimits(wall_clock_seconds=1.0))
    handle = await executor.start(task)
    result = await executor.follow(handle)
    assert result.status is RunStatus.TIMED_OUT
    (call,) = fake_state(Path(handle.workdir or ""), STATE)["calls"]
    assert handle.pgid is not None
    assert nothing_left(handle.pgid, call["pid"], call["grandchild_pid"])


async def test_the_daemons_secrets_never_reach_gemini(
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dump = tmp_path / "gemini-env.json"
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-daemon-secret")
    monkeypatch.setenv("EDGE_WORKER_LINEAR__WEBHOOK_SECRET", "whsec-daemon-secret")
    scenario(monkeypatch, {**GREETING, "dump_env": str(dump)})
    executor = make_executor(fakes, worktrees, Pricer())
    handle = await executor.start(make_task(repo))
    await executor.follow(handle)
    env = json.loads(dump.read_text())
    assert "daemon-secret" not in dump.read_text()
    assert Path(env[SETTINGS_PATH_ENV]).is_file()
    assert not Path(env[SETTINGS_PATH_ENV]).is_relative_to(Path(handle.workdir or ""))
    (call,) = fake_state(Path(handle.workdir or ""), STATE)["calls"]
    assert not any("daemon-secret" in arg for arg in call["argv"])


async def test_a_missing_cli_is_an_immediate_clear_unavailability(
    worktrees: WorktreeManager, repo: Path, tmp_path: Path
) -> None:
    executor = GeminiExecutor(
        GeminiSettings(binary=str(tmp_path / "no-such-gemini")), worktrees, pricer=Pricer()
    )
    with pytest.raises(ExecutorUnavailable) as raised:
        await executor.start(make_task(repo))
    assert raised.value.reason == "gemini unavailable: its CLI is not installed on this host"


async def test_a_cli_that_cannot_be_executed_is_unavailable_too(
    worktrees: WorktreeManager, repo: Path, tmp_path: Path
) -> None:
    not_runnable = tmp_path / "gemini"
    not_runnable.write_text("not a program\n")
    not_runnable.chmod(0o644)
    executor = GeminiExecutor(GeminiSettings(binary=str(not_runnable)), worktrees, pricer=Pricer())
    with pytest.raises(ExecutorUnavailable, match="cannot be started"):
        await executor.start(make_task(repo))


async def test_a_cli_dying_at_start_fails_at_once_with_its_stderr(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"behaviour": "die_at_start", "exit_code": 1})
    executor = make_executor(fakes, worktrees, Pricer())
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "exited with code 1 without a result" in result.error


def test_command_line_without_a_model_or_tools() -> None:
    argv = gemini_argv(GeminiSettings(binary="gemini"), prompt="-starts with a dash")
    assert argv == [
        "gemini",
        "--output-format",
        "stream-json",
        "--approval-mode",
        "yolo",
        "--prompt=-starts with a dash",
    ]
    tools = gemini_argv(
        GeminiSettings(allowed_tools="read_file,run_shell_command"), prompt="p", resume_session="s"
    )
    assert tools[tools.index("--allowed-tools") + 1] == "read_file,run_shell_command"
    assert tools[tools.index("--resume") + 1] == "s"


def test_gemini_models_are_priced_and_the_strategy_knows_gemini() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert price_usage(DEFAULT_PRICES, "gemini-2.5-flash", usage) == pytest.approx(2.80)
    assert price_usage(DEFAULT_PRICES, "gemini-9-unreleased", usage) is None
    assert "gemini" in LOCAL_PREFERENCE
