"""Local verification: real ``bash -lc`` commands in a real git worktree."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge_worker.executors.base import VerificationCommand
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.verification.local import run_local_verification
from tests.support.local_agents import init_repo


@pytest.fixture
async def worktree(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "project")
    manager = WorktreeManager(tmp_path / "worktrees")
    made = await manager.ensure(repo, "ENG-42", "check", "main")
    (made.path / "hello.txt").write_text("hello\n")
    return made.path


async def test_passing_and_failing_checks_record_exit_code_output_and_duration(
    worktree: Path,
) -> None:
    report = await run_local_verification(
        worktree,
        [
            VerificationCommand(command="cat hello.txt && pwd"),
            VerificationCommand(command="echo to-stderr >&2; exit 3"),
            VerificationCommand(command="exit 3", expect_exit=3),
        ],
        timeout_seconds=10,
    )
    passing, failing, expected_failure = report.checks
    assert passing.exit_code == 0 and passing.passed
    assert passing.output_tail.endswith(f"hello\n{worktree}")
    assert passing.duration_seconds > 0
    assert failing.exit_code == 3 and not failing.passed
    assert failing.output_tail.endswith("to-stderr")
    assert expected_failure.passed
    assert not report.passed
    assert report.cost_usd == 0.0  # no model involved: a known zero


async def test_a_command_that_hangs_times_out_as_a_failed_check(worktree: Path) -> None:
    # The timeout leaves a loaded machine ample time to start the shell and echo (with
    # 0.5 s the echo was sometimes not reached); the bound on the wait only proves the
    # 60 s sleep was killed, not how fast.
    started = time.monotonic()
    report = await run_local_verification(
        worktree,
        [VerificationCommand(command="echo waiting; sleep 60")],
        timeout_seconds=3,
        kill_grace_seconds=0.3,
    )
    (check,) = report.checks
    assert time.monotonic() - started < 45
    assert check.exit_code is None
    assert check.reason == "timed out after 3 s"
    assert check.output_tail.endswith("waiting")
    assert not check.passed and not report.passed


async def test_only_the_tail_of_long_output_is_kept(worktree: Path) -> None:
    command = "python3 -c \"print('x' * 5000); print('y' * 10); print('THE END')\""
    report = await run_local_verification(
        worktree, [VerificationCommand(command=command)], timeout_seconds=10
    )
    (check,) = report.checks
    assert len(check.output_tail) == 2000
    assert check.output_tail.endswith("yyyyyyyyyy\nTHE END")


async def test_commands_see_the_scrubbed_environment(
    worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-do-not-leak")
    monkeypatch.setenv("EDGE_WORKER_LINEAR__API_KEY", "lin-do-not-leak")
    monkeypatch.setenv("TEST_DATABASE_URL", "sqlite:///test.db")
    report = await run_local_verification(
        worktree,
        [VerificationCommand(command="env")],
        timeout_seconds=10,
        pass_env=["TEST_DATABASE_URL"],
    )
    output = report.checks[0].output_tail
    assert "do-not-leak" not in output
    assert "TEST_DATABASE_URL=sqlite:///test.db" in output


async def test_an_empty_command_list_never_passes(worktree: Path) -> None:
    report = await run_local_verification(worktree, [], timeout_seconds=10)
    assert report.checks == []
    assert not report.passed
