"""The Claude Code executor against the fake ``claude`` CLI, as real subprocesses in real
git worktrees."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from edge_worker.executors.base import (
    Executor,
    ExecutorUnavailable,
    RunHandle,
    RunStatus,
    TaskLimits,
    VerificationCommand,
)
from edge_worker.executors.claude_code import ClaudeCodeExecutor, claude_argv
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.fake_agents import FakeAgents
from edge_worker.settings import ClaudeSettings
from tests.support.local_agents import (
    cli_values,
    fake_state,
    git,
    make_task,
    nothing_left,
    scenario,
)

pytest_plugins = ("tests.support.local_agent_fixtures",)

STATE = "fake-claude-state.json"


def settings_for(fakes: FakeAgents, **overrides: Any) -> ClaudeSettings:
    return ClaudeSettings(**cli_values(fakes.claude, **overrides))


@pytest.fixture
def executor(fakes: FakeAgents, worktrees: WorktreeManager) -> ClaudeCodeExecutor:
    return ClaudeCodeExecutor(settings_for(fakes), worktrees, verification_timeout_seconds=10)


async def until_in_transcript(handle: RunHandle, text: str) -> None:
    transcript = Path(handle.extra["transcript"])
    for _ in range(200):
        if transcript.is_file() and text in transcript.read_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {transcript}")


GREETING = {"edits": [{"path": "hello.txt", "content": "hello\n"}], "cost_usd": 0.0421}


def test_the_executor_satisfies_the_protocol(executor: ClaudeCodeExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.name == "claude-code"


async def test_a_run_edits_a_file_reports_its_cost_and_passes_verification(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, GREETING, session_id="sess-greeting")
    task = make_task(repo, limits=TaskLimits(wall_clock_seconds=30, max_usd=2.5, max_turns=8))
    progress: list[tuple[str, str]] = []

    async def on_progress(kind: str, text: str) -> None:
        progress.append((kind, text))

    handle = await executor.start(task)
    result = await executor.follow(handle, on_progress)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.cost_usd == 0.0421
    assert result.session_id == "sess-greeting"
    assert result.branch == "edge-worker/ENG-42-greeting"
    assert result.run_id == handle.run_id
    assert result.summary == "Done: applied the requested change."
    assert result.usage.output_tokens == 250
    assert ("action", f"Write: {Path(handle.workdir or '') / 'hello.txt'}") in progress
    workdir = Path(handle.workdir or "")
    assert git(workdir, "log", "-1", "--format=%s") == "fake agent: apply scripted edits"

    report = await executor.verify(handle, task.verification)
    assert report.passed, report.checks

    (call,) = fake_state(workdir, STATE)["calls"]
    argv = call["argv"]
    assert argv[1:3] == ["-p", call["prompt"]]
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert "--verbose" in argv
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--max-budget-usd") + 1] == "2.5"
    assert argv[argv.index("--max-turns") + 1] == "8"
    assert argv[argv.index("--append-system-prompt") + 1] == task.role_prompt
    assert call["cwd"] == str(workdir)
    assert "<untrusted-issue-text>\nCreate hello.txt containing 'hello'." in call["prompt"]

    await executor.release(handle, succeeded=True)
    assert not workdir.exists()
    assert git(repo, "show", "edge-worker/ENG-42-greeting:hello.txt") == "hello"


async def test_a_run_that_hangs_and_ignores_sigterm_is_killed_with_its_group(
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario(monkeypatch, {"behaviour": "hang_ignore_term", "grandchild": True})
    executor = ClaudeCodeExecutor(settings_for(fakes, kill_grace_seconds=0.5), worktrees)
    task = make_task(repo, limits=TaskLimits(wall_clock_seconds=1.0))

    started = time.monotonic()
    handle = await executor.start(task)
    result = await executor.follow(handle)
    elapsed = time.monotonic() - started

    assert result.status is RunStatus.TIMED_OUT
    assert result.cost_usd is None
    assert result.session_id is not None  # from system/init, so the run can be resumed
    assert elapsed < 1.0 + 0.5 + 3.0
    assert handle.pgid is not None
    (call,) = fake_state(Path(handle.workdir or ""), STATE)["calls"]
    assert call["pgid"] == handle.pgid
    assert call["grandchild_pid"]  # started, and it ignores SIGTERM: only SIGKILL ends it
    assert nothing_left(handle.pgid, call["pid"], call["grandchild_pid"])


async def test_junk_lines_are_skipped_and_the_run_still_succeeds(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = ["Update available! Run: npm i -g @anthropic-ai/claude-code", "{oops", "42"]
    scenario(monkeypatch, {**GREETING, "junk": junk})
    handle = await executor.start(make_task(repo))
    result = await executor.follow(handle)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.cost_usd == 0.0421
    transcript = Path(handle.extra["transcript"]).read_text()
    assert "{oops" in transcript


async def test_a_crash_mid_stream_fails_with_the_stderr_tail(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"behaviour": "crash", "exit_code": 3})
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert "exited with code 3 without a result line" in result.error
    assert "crashed mid-stream" in result.error
    assert result.cost_usd is None


async def test_resume_with_feedback_continues_the_session_in_the_same_worktree(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(
        monkeypatch,
        GREETING,
        {"edits": [{"path": "hello.txt", "content": "world\n", "append": True}], "cost_usd": 0.01},
        session_id="sess-resume",
    )
    task = make_task(repo, verification=[VerificationCommand(command="grep -q world hello.txt")])
    first = await executor.start(task)
    assert (await executor.follow(first)).status is RunStatus.SUCCEEDED
    assert not (await executor.verify(first, task.verification)).passed

    feedback = "Verification failed: `grep -q world hello.txt` exited 1. Add 'world'."
    second = await executor.resume(first, task, feedback)
    result = await executor.follow(second)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.session_id == "sess-resume"
    assert result.cost_usd == 0.01  # this attempt's own cost, as the CLI reported it
    last_line = json.loads(Path(second.extra["transcript"]).read_text().splitlines()[-1])
    assert last_line["total_cost_usd"] == pytest.approx(0.0521)  # the session's, not ours
    assert second.workdir == first.workdir and second.run_id != first.run_id
    assert (await executor.verify(second, task.verification)).passed
    calls = fake_state(Path(second.workdir or ""), STATE)["calls"]
    assert [c["resume"] for c in calls] == [None, "sess-resume"]
    assert feedback in calls[1]["prompt"]
    assert calls[1]["argv"][calls[1]["argv"].index("--resume") + 1] == "sess-resume"


async def test_the_daemons_secrets_never_reach_the_cli(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dump = tmp_path / "child-env.json"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-daemon-secret")
    monkeypatch.setenv("EDGE_WORKER_LINEAR__API_KEY", "lin_api_daemon_secret")
    monkeypatch.setenv("EDGE_WORKER_CODEGEN__API_TOKEN", "codegen-daemon-secret")
    scenario(monkeypatch, {**GREETING, "dump_env": str(dump)})
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.SUCCEEDED
    child_env = json.loads(dump.read_text())
    assert not [name for name in child_env if name.startswith("EDGE_WORKER_")]
    assert "ANTHROPIC_API_KEY" not in child_env
    assert "daemon-secret" not in dump.read_text()
    assert child_env["PATH"]
    assert "FAKE_AGENT_SCENARIO" in child_env  # configured in pass_env


async def test_a_key_listed_in_pass_env_does_reach_the_cli(
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dump = tmp_path / "child-env.json"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-meant-for-claude")
    scenario(monkeypatch, {**GREETING, "dump_env": str(dump)})
    settings = settings_for(fakes, pass_env=["FAKE_AGENT_SCENARIO", "ANTHROPIC_API_KEY"])
    executor = ClaudeCodeExecutor(settings, worktrees)
    await executor.follow(await executor.start(make_task(repo)))
    assert json.loads(dump.read_text())["ANTHROPIC_API_KEY"] == "sk-ant-meant-for-claude"


async def test_a_run_over_its_budget_is_reported_over_budget(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"turns": 50, "cost_per_turn": 0.3})
    task = make_task(repo, limits=TaskLimits(wall_clock_seconds=30, max_usd=1.0))
    result = await executor.follow(await executor.start(task))
    assert result.status is RunStatus.OVER_BUDGET
    assert result.cost_usd == pytest.approx(1.2)  # what the CLI spent before it stopped
    assert result.error == "Reached maximum budget ($1)"
    assert result.num_turns == 4


async def test_max_turns_fails_with_the_reason(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"turns": 5, "cost_per_turn": 0.01})
    task = make_task(repo, limits=TaskLimits(wall_clock_seconds=30, max_turns=2))
    result = await executor.follow(await executor.start(task))
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error == "Reached maximum number of turns (2)"
    assert result.cost_usd == pytest.approx(0.02)


async def test_cancel_stops_a_running_cli_and_leaves_nothing(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"behaviour": "hang_ignore_term"})
    handle = await executor.start(make_task(repo))
    following = asyncio.create_task(executor.follow(handle))
    await until_in_transcript(handle, '"subtype":"init"')
    await executor.cancel(handle)
    result = await following
    assert result.status is RunStatus.CANCELLED
    assert handle.pgid is not None and nothing_left(handle.pgid, handle.pid)


async def test_cancelling_the_follower_stops_the_run(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"behaviour": "hang"})
    handle = await executor.start(make_task(repo))
    following = asyncio.create_task(executor.follow(handle))
    await until_in_transcript(handle, '"subtype":"init"')
    following.cancel()
    with pytest.raises(asyncio.CancelledError):
        await following
    assert handle.pgid is not None and nothing_left(handle.pgid, handle.pid)


async def test_a_restarted_daemon_reads_a_finished_run_from_its_transcript(
    executor: ClaudeCodeExecutor,
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario(monkeypatch, GREETING)
    handle = await executor.start(make_task(repo))
    await executor.follow(handle)

    restarted = ClaudeCodeExecutor(settings_for(fakes), worktrees)
    stored = type(handle).model_validate_json(handle.model_dump_json())
    result = await restarted.follow(stored)

    assert result.status is RunStatus.SUCCEEDED
    assert result.cost_usd == 0.0421
    assert len(fake_state(Path(handle.workdir or ""), STATE)["calls"]) == 1  # not run again


async def test_a_restarted_daemon_reaps_an_interrupted_run_and_can_resume_it(
    executor: ClaudeCodeExecutor,
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario(monkeypatch, {"behaviour": "hang_ignore_term"}, GREETING, session_id="sess-crash")
    task = make_task(repo)
    handle = await executor.start(task)
    await until_in_transcript(handle, '"subtype":"init"')  # then the CLI hangs

    restarted = ClaudeCodeExecutor(settings_for(fakes), worktrees)
    result = await restarted.follow(handle)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.startswith("interrupted")
    assert result.session_id == "sess-crash"
    assert handle.pgid is not None and nothing_left(handle.pgid)

    resumed = await restarted.resume(handle, task, "Carry on where you stopped.")
    assert (await restarted.follow(resumed)).status is RunStatus.SUCCEEDED
    assert (await executor.follow(handle)).status is RunStatus.FAILED  # the old supervisor


async def test_a_run_that_died_before_its_session_began_is_started_afresh_with_the_feedback(
    executor: ClaudeCodeExecutor, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed with its daemon the moment it was spawned: no session id to continue.
    scenario(monkeypatch, {"behaviour": "die_at_start"}, GREETING)
    task = make_task(repo)
    first = await executor.start(task)
    died = await executor.follow(first)
    assert died.status is RunStatus.FAILED
    assert died.session_id is None

    second = await executor.resume(first, task, "The previous run never started.")
    result = await executor.follow(second)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.session_id is not None
    assert second.workdir == first.workdir
    assert (await executor.verify(second, task.verification)).passed
    calls = fake_state(Path(second.workdir or ""), STATE)["calls"]
    assert [c["resume"] for c in calls] == [None, None]  # a new session, not a bogus resume
    assert task.description in calls[1]["prompt"]
    assert "The previous run never started." in calls[1]["prompt"]


async def test_a_missing_binary_makes_the_executor_unavailable(
    worktrees: WorktreeManager, repo: Path, tmp_path: Path
) -> None:
    settings = ClaudeSettings(binary=str(tmp_path / "no-such-claude"))
    executor = ClaudeCodeExecutor(settings, worktrees)
    with pytest.raises(ExecutorUnavailable, match="claude-code unavailable"):
        await executor.start(make_task(repo))


def test_configured_tools_model_and_limits_reach_the_command_line(tmp_path: Path) -> None:
    settings = ClaudeSettings(
        binary="claude",
        model="claude-opus-4-1",
        max_turns=30,
        permission_mode="bypassPermissions",
        allowed_tools=["Read", "Edit", "Bash(git:*)"],
        disallowed_tools=["WebFetch"],
    )
    task = make_task(tmp_path, role_prompt="", limits=TaskLimits(max_usd=0.75))
    argv = claude_argv(settings, task, prompt="- starts like an option", resume_session="s1")
    assert argv[:3] == ["claude", "-p", "\n- starts like an option"]
    assert argv[argv.index("--model") + 1] == "claude-opus-4-1"
    assert argv[argv.index("--max-turns") + 1] == "30"
    assert argv[argv.index("--max-budget-usd") + 1] == "0.75"
    assert argv[argv.index("--permission-mode") + 1] == "bypassPermissions"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Edit,Bash(git:*)"
    assert argv[argv.index("--disallowedTools") + 1] == "WebFetch"
    assert argv[argv.index("--resume") + 1] == "s1"
    assert "--append-system-prompt" not in argv
