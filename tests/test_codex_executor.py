"""The Codex executor against the fake ``codex`` CLI, as real subprocesses in real git
worktrees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from edge_worker.executors.base import Executor, RunHandle, RunStatus, TaskLimits, Usage
from edge_worker.executors.codex import CodexExecutor, codex_argv
from edge_worker.executors.session_usage import SESSION_USAGE_BEFORE
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.fake_agents import FakeAgents
from edge_worker.settings import CodexSettings
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

STATE = "fake-codex-state.json"
MODEL = "gpt-5-codex"


class Pricer(OneModelPricer):
    model = MODEL


def make_executor(
    fakes: FakeAgents, worktrees: WorktreeManager, pricer: Pricer, **overrides: Any
) -> CodexExecutor:
    values = cli_values(fakes.codex, model=MODEL, **overrides)
    return CodexExecutor(CodexSettings(**values), worktrees, pricer=pricer)


USAGE = {
    "input_tokens": 24763,
    "cached_input_tokens": 24448,
    "cache_write_input_tokens": 0,
    "output_tokens": 122,
    "reasoning_output_tokens": 64,
}
GREETING = {"edits": [{"path": "hello.txt", "content": "hello\n"}], "usage": USAGE}


async def test_a_run_is_priced_from_its_tokens(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, GREETING, session_id="thread-1")
    pricer = Pricer()
    executor = make_executor(fakes, worktrees, pricer)
    assert isinstance(executor, Executor) and executor.name == "codex"
    task = make_task(repo)

    handle = await executor.start(task)
    result = await executor.follow(handle)

    assert result.status is RunStatus.SUCCEEDED, result.error
    expected = (315 * INPUT + 24448 * CACHED + 122 * OUTPUT) / 1_000_000
    assert result.cost_usd == pytest.approx(expected)
    assert result.usage == Usage(**USAGE)
    assert result.model == MODEL
    assert pricer.asked == [(MODEL, Usage(**{**USAGE, "input_tokens": 315}))]
    assert result.session_id == "thread-1"
    assert result.summary == "Done: applied the requested change."
    assert (await executor.verify(handle, task.verification)).passed

    workdir = Path(handle.workdir or "")
    (call,) = fake_state(workdir, STATE)["calls"]
    argv = call["argv"]
    assert argv[:7] == [
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "-C",
        str(workdir),
    ]
    assert argv[7:9] == ["--model", MODEL]
    assert call["prompt"] == argv[-1]
    assert call["prompt"].startswith(task.role_prompt.strip())  # no system-prompt option


async def test_an_unknown_model_leaves_the_run_unpriced_not_free(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, GREETING)
    executor = make_executor(fakes, worktrees, Pricer(known=False))
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.SUCCEEDED
    assert result.cost_usd is None
    assert result.usage.output_tokens == 122


async def test_resume_continues_the_thread_with_feedback(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(
        monkeypatch,
        GREETING,
        {"edits": [{"path": "hello.txt", "content": "world\n", "append": True}], "usage": USAGE},
        session_id="thread-2",
    )
    executor = make_executor(fakes, worktrees, Pricer())
    task = make_task(repo)
    first = await executor.start(task)
    await executor.follow(first)

    second = await executor.resume(first, task, "Also add 'world'.")
    result = await executor.follow(second)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.session_id == "thread-2"
    assert (Path(second.workdir or "") / "hello.txt").read_text() == "hello\nworld\n"
    calls = fake_state(Path(second.workdir or ""), STATE)["calls"]
    argv = calls[1]["argv"]
    assert argv[argv.index("resume") : argv.index("resume") + 2] == ["resume", "thread-2"]
    assert argv.index("--json") < argv.index("resume")  # exec options precede the subcommand
    assert "Also add 'world'." in argv[-1]


async def test_a_failed_turn_is_a_failure_and_unpriced(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario(monkeypatch, {"outcome": "turn_failed", "errors": ["model overloaded"]})
    pricer = Pricer()
    executor = make_executor(fakes, worktrees, pricer)
    result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "model overloaded" in result.error
    assert result.cost_usd is None
    assert pricer.asked == []  # no completed turn, no token count to price


async def test_a_hanging_codex_times_out_and_leaves_nothing(
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


async def test_the_daemons_secrets_never_reach_codex(
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dump = tmp_path / "codex-env.json"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-daemon-secret")
    monkeypatch.setenv("EDGE_WORKER_LINEAR__WEBHOOK_SECRET", "whsec-daemon-secret")
    scenario(monkeypatch, {**GREETING, "dump_env": str(dump)})
    executor = make_executor(fakes, worktrees, Pricer())
    await executor.follow(await executor.start(make_task(repo)))
    assert "daemon-secret" not in dump.read_text()


def test_command_line_without_a_model(tmp_path: Path) -> None:
    settings = CodexSettings(binary="codex")
    argv = codex_argv(settings, workdir=tmp_path, prompt="# Task")
    assert argv == [
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "-C",
        str(tmp_path),
        "# Task",
    ]


SECOND = {
    "input_tokens": 3000,
    "cached_input_tokens": 1000,
    "cache_write_input_tokens": 0,
    "output_tokens": 40,
    "reasoning_output_tokens": 10,
}
APPEND_WORLD = {"edits": [{"path": "hello.txt", "content": "world\n", "append": True}]}


def cost_of(usage: dict[str, int]) -> float:
    fresh = usage["input_tokens"] - usage["cached_input_tokens"]
    return (
        fresh * INPUT + usage["cached_input_tokens"] * CACHED + usage["output_tokens"] * OUTPUT
    ) / 1_000_000


async def test_a_resumed_run_is_charged_its_own_tokens_not_the_threads(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake, like the real CLI, reports the thread's running total after a resume.
    scenario(monkeypatch, GREETING, {**APPEND_WORLD, "usage": SECOND}, session_id="thread-3")
    executor = make_executor(fakes, worktrees, Pricer())
    task = make_task(repo)
    first = await executor.start(task)
    await executor.follow(first)

    second = await executor.resume(first, task, "Also add 'world'.")
    result = await executor.follow(second)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.usage == Usage(**SECOND)
    assert result.cost_usd == pytest.approx(cost_of(SECOND))
    assert not result.cost_uncertain


async def test_the_thread_total_before_a_run_survives_a_daemon_restart(
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Handles go through a real database between daemons, as the workflows keep them."""
    scenario(monkeypatch, GREETING, {**APPEND_WORLD, "usage": SECOND}, session_id="thread-4")
    database = HandleStore(tmp_path / "daemon.sqlite")
    task = make_task(repo)

    before_restart = make_executor(fakes, worktrees, Pricer())
    first = await before_restart.start(task)
    assert (await before_restart.follow(first)).usage == Usage(**USAGE)
    database.save("run-1", first)

    after_restart = make_executor(fakes, worktrees, Pricer())
    second = await after_restart.resume(database.load("run-1"), task, "Also add 'world'.")
    database.save("run-2", second)
    await after_restart.follow(second)  # the run ends while this daemon watches it

    # A third daemon knows the run only from the database (and its transcript).
    third_daemon = make_executor(fakes, worktrees, Pricer())
    result = await third_daemon.follow(database.load("run-2"))

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.usage == Usage(**SECOND)
    assert result.cost_usd == pytest.approx(cost_of(SECOND))


async def test_a_thread_total_lower_than_before_is_kept_as_reported_and_uncertain(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CLI whose semantics changed: after the resume it prints the turn's own (smaller) use.
    scenario(
        monkeypatch,
        GREETING,
        {**APPEND_WORLD, "usage": SECOND, "report": "turn"},
        session_id="thread-5",
    )
    executor = make_executor(fakes, worktrees, Pricer())
    task = make_task(repo)
    first = await executor.start(task)
    await executor.follow(first)
    with capture_logs() as logs:
        result = await executor.follow(await executor.resume(first, task, "Also add 'world'."))

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.usage == Usage(**SECOND)  # the figure reported, neither negative nor doubled
    assert result.cost_usd == pytest.approx(cost_of(SECOND))
    assert result.cost_uncertain
    assert [entry["event"] for entry in logs].count("codex.usage_uncertain") == 1


async def test_a_notice_the_cli_continues_past_does_not_fail_the_run(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notice = "Model metadata for `gpt-5-codex` not found. Defaulting to fallback metadata."
    scenario(monkeypatch, {**GREETING, "notice": notice})
    executor = make_executor(fakes, worktrees, Pricer())
    with capture_logs() as logs:
        result = await executor.follow(await executor.start(make_task(repo)))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.usage == Usage(**USAGE)
    assert {"event": "codex_stream.notice", "message": notice} in [
        {"event": entry["event"], "message": entry.get("message")} for entry in logs
    ]


class HandleStore:
    """Run handles in a SQLite table: what a daemon reads back after a restart."""

    def __init__(self, path: Path) -> None:
        self.engine = sa.create_engine(f"sqlite:///{path}")
        with self.engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE handles (key TEXT PRIMARY KEY, body TEXT)"))

    def save(self, key: str, handle: RunHandle) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO handles VALUES (:key, :body)"),
                {"key": key, "body": handle.model_dump_json()},
            )

    def load(self, key: str) -> RunHandle:
        with self.engine.connect() as connection:
            body = connection.execute(
                sa.text("SELECT body FROM handles WHERE key = :key"), {"key": key}
            ).scalar_one()
        return RunHandle.model_validate_json(body)


async def test_a_follow_up_after_success_resumes_the_thread_and_its_delta(
    fakes: FakeAgents,
    worktrees: WorktreeManager,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A success removes the worktree (and the transcript in it); a later follow-up that
    reopens the thread still knows its id and what it had used."""
    monkeypatch.setenv("FAKE_AGENT_STATE", str(tmp_path / "fake-state"))
    scenario(monkeypatch, GREETING, {**APPEND_WORLD, "usage": SECOND})
    executor = make_executor(
        fakes, worktrees, Pricer(), pass_env=["FAKE_AGENT_SCENARIO", "FAKE_AGENT_STATE"]
    )
    task = make_task(repo)
    first = await executor.start(task)
    thread = (await executor.follow(first)).session_id
    await executor.release(first, succeeded=True)
    assert not Path(first.workdir or "").exists()

    second = await executor.resume(first, task, "Also add 'world'.")
    result = await executor.follow(second)

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert second.session_id == thread and result.session_id == thread
    assert result.usage == Usage(**SECOND)
    assert not result.cost_uncertain


async def test_a_resumed_run_without_a_known_thread_total_is_uncertain(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume started by a daemon that kept no total (before an upgrade) is not taken
    for a first run: its figure is the thread's, and says it is uncertain."""
    scenario(monkeypatch, GREETING, {**APPEND_WORLD, "usage": SECOND}, session_id="thread-6")
    executor = make_executor(fakes, worktrees, Pricer())
    task = make_task(repo)
    first = await executor.start(task)
    await executor.follow(first)
    second = await executor.resume(first, task, "Also add 'world'.")
    await executor.follow(second)
    extra = {k: v for k, v in second.extra.items() if k != SESSION_USAGE_BEFORE}
    older = second.model_copy(update={"extra": extra})

    result = await make_executor(fakes, worktrees, Pricer()).follow(older)

    assert result.cost_uncertain
    assert result.usage == Usage(**{name: USAGE[name] + SECOND[name] for name in USAGE})


async def test_what_a_failed_first_turn_used_is_charged_with_the_resume(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn that failed reported no tokens (unpriced), yet the thread counts them: the
    resume's delta from zero charges them once, with certainty."""
    scenario(
        monkeypatch,
        {"outcome": "turn_failed", "errors": ["stream disconnected"], "usage": USAGE},
        {**APPEND_WORLD, "usage": SECOND},
        session_id="thread-7",
    )
    executor = make_executor(fakes, worktrees, Pricer())
    task = make_task(repo)
    first = await executor.start(task)
    failed = await executor.follow(first)
    assert failed.status is RunStatus.FAILED and failed.cost_usd is None

    result = await executor.follow(await executor.resume(first, task, "Try again."))

    both = {name: USAGE[name] + SECOND[name] for name in USAGE}
    assert result.usage == Usage(**both)
    assert result.cost_usd == pytest.approx(cost_of(both))
    assert not result.cost_uncertain
