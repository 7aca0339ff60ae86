"""Process supervision with real subprocesses: streaming, tails, timeouts, kills, reaping."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_worker.executors.process import (
    RUN_MARKER_ENV,
    ProcessOutcome,
    ProcessSpec,
    StopReason,
    SupervisedProcess,
    group_alive,
    reap_leftovers,
    scrubbed_env,
)
from tests.support.local_agents import nothing_left, pid_alive

IGNORE_TERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"


def spec(tmp_path: Path, code: str, **overrides: object) -> ProcessSpec:
    values: dict[str, object] = {
        "argv": [sys.executable, "-c", code],
        "cwd": tmp_path,
        "env": scrubbed_env(),
        "timeout_seconds": 10.0,
        "kill_grace_seconds": 0.5,
        "run_id": "test-run",
    }
    values.update(overrides)
    return ProcessSpec(**values)  # type: ignore[arg-type]


async def collect(process: SupervisedProcess) -> tuple[list[str], ProcessOutcome]:
    lines: list[str] = []

    async def on_line(line: str) -> None:
        lines.append(line)

    outcome = await process.run(on_line)
    return lines, outcome


async def test_streams_stdout_lines_in_order_and_reports_the_exit_code(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(3): print(f'line {i}', flush=True)\nsys.exit(4)"
    process = await SupervisedProcess.spawn(spec(tmp_path, code))
    lines, outcome = await collect(process)
    assert lines == ["line 0", "line 1", "line 2"]
    assert outcome.exit_code == 4
    assert outcome.stopped is None


async def test_keeps_only_a_bounded_tail_of_stderr(tmp_path: Path) -> None:
    code = "import sys\nsys.stderr.write('x' * 20000 + 'THE END')"
    process = await SupervisedProcess.spawn(spec(tmp_path, code, stderr_tail_bytes=1000))
    _lines, outcome = await collect(process)
    tail = outcome.stderr_tail
    assert len(tail) == 1000
    assert tail.endswith("THE END")


async def test_an_over_long_line_is_dropped_and_the_stream_goes_on(tmp_path: Path) -> None:
    code = "print('a' * 5000)\nprint('after')"
    process = await SupervisedProcess.spawn(spec(tmp_path, code, max_line_bytes=1024))
    lines, outcome = await collect(process)
    assert lines == ["after"]
    assert outcome.truncated_lines == 1


async def test_timeout_sends_sigterm_first(tmp_path: Path) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    process = await SupervisedProcess.spawn(spec(tmp_path, code, timeout_seconds=0.5))
    lines, outcome = await collect(process)
    assert lines == ["started"]
    assert outcome.stopped is StopReason.TIMED_OUT
    assert outcome.killed is False
    assert outcome.exit_code == -signal.SIGTERM


async def test_a_group_that_ignores_sigterm_is_killed_within_the_grace_period(
    tmp_path: Path,
) -> None:
    # The child ignores SIGTERM and starts a grandchild that ignores it too and holds stdout.
    code = (
        IGNORE_TERM
        + "import subprocess, sys\n"
        + f"g = subprocess.Popen([sys.executable, '-c', {IGNORE_TERM + 'time.sleep(60)'!r}])\n"
        + "print(g.pid, flush=True)\ntime.sleep(60)\n"
    )
    process = await SupervisedProcess.spawn(
        spec(tmp_path, code, timeout_seconds=0.5, kill_grace_seconds=0.5)
    )
    started = time.monotonic()
    lines, outcome = await collect(process)
    elapsed = time.monotonic() - started
    grandchild = int(lines[0])
    assert outcome.stopped is StopReason.TIMED_OUT
    assert outcome.killed is True
    assert outcome.exit_code == -signal.SIGKILL
    assert elapsed < 0.5 + 0.5 + 2.0
    assert nothing_left(process.pgid, process.pid, grandchild)


async def test_grandchildren_left_behind_by_a_normal_exit_are_ended(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(g.pid, flush=True)\n"
    )
    process = await SupervisedProcess.spawn(spec(tmp_path, code, timeout_seconds=30))
    started = time.monotonic()
    lines, outcome = await collect(process)
    assert time.monotonic() - started < 5  # not held up by the grandchild's stdout
    assert outcome.exit_code == 0
    assert outcome.stopped is None
    assert nothing_left(process.pgid, int(lines[0]))


async def test_request_stop_cancels_the_run(tmp_path: Path) -> None:
    process = await SupervisedProcess.spawn(spec(tmp_path, "import time\ntime.sleep(60)"))
    asyncio.get_running_loop().call_later(0.3, process.request_stop)
    _lines, outcome = await collect(process)
    assert outcome.stopped is StopReason.CANCELLED
    assert not group_alive(process.pgid)


async def test_cancelling_the_awaiting_task_kills_the_group(tmp_path: Path) -> None:
    process = await SupervisedProcess.spawn(
        spec(tmp_path, IGNORE_TERM + "time.sleep(60)", kill_grace_seconds=0.3)
    )
    task = asyncio.create_task(collect(process))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert nothing_left(process.pgid, process.pid)


async def test_a_failing_line_callback_stops_the_group_and_propagates(tmp_path: Path) -> None:
    process = await SupervisedProcess.spawn(
        spec(tmp_path, "import time\nprint('x', flush=True)\ntime.sleep(60)")
    )

    async def explode(line: str) -> None:
        raise RuntimeError(f"cannot handle {line}")

    with pytest.raises(RuntimeError, match="cannot handle x"):
        await process.run(explode)
    assert not group_alive(process.pgid)


def test_scrubbed_env_keeps_the_allowlist_and_pass_env_only() -> None:
    source = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm",
        "TMPDIR": "/tmp",
        "USER": "u",
        "SHELL": "/bin/sh",
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "EDGE_WORKER_LINEAR__API_KEY": "lin-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "WANTED": "yes",
    }
    env = scrubbed_env(["WANTED", "ABSENT"], source=source, extra={"GIT_TERMINAL_PROMPT": "0"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm",
        "TMPDIR": "/tmp",
        "USER": "u",
        "SHELL": "/bin/sh",
        "WANTED": "yes",
        "GIT_TERMINAL_PROMPT": "0",
    }
    assert "ANTHROPIC_API_KEY" in scrubbed_env(["ANTHROPIC_API_KEY"], source=source)


async def test_the_child_sees_the_scrubbed_environment_and_the_run_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_WORKER_CODEGEN__API_TOKEN", "cg-secret")
    code = "import json, os\nprint(json.dumps(dict(os.environ)))"
    process = await SupervisedProcess.spawn(spec(tmp_path, code, env=scrubbed_env()))
    lines, _ = await collect(process)
    env = json.loads(lines[0])
    assert "EDGE_WORKER_CODEGEN__API_TOKEN" not in env
    assert "cg-secret" not in lines[0]
    assert env[RUN_MARKER_ENV] == "test-run"


def orphan(marked: bool) -> subprocess.Popen[bytes]:
    """A process group left behind as if by a crashed daemon."""
    env = dict(os.environ)
    if marked:
        env[RUN_MARKER_ENV] = "crashed-run"
    else:
        env.pop(RUN_MARKER_ENV, None)
    return subprocess.Popen(
        [sys.executable, "-c", IGNORE_TERM + "time.sleep(60)"], env=env, start_new_session=True
    )


async def _wait_started(process: subprocess.Popen[bytes]) -> None:
    # Let the interpreter install its SIGTERM handler before we signal it.
    await asyncio.sleep(0.3)
    assert process.poll() is None


async def test_reap_leftovers_kills_marked_orphan_groups(tmp_path: Path) -> None:
    left = orphan(marked=True)
    try:
        await _wait_started(left)
        reaped = await reap_leftovers([left.pid, left.pid], grace_seconds=0.3)
        assert reaped == [left.pid]
        assert not group_alive(left.pid)
        assert left.wait(timeout=5) == -signal.SIGKILL
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()


async def test_reap_leftovers_spares_groups_that_are_not_ours(tmp_path: Path) -> None:
    stranger = orphan(marked=False)
    try:
        await _wait_started(stranger)
        assert await reap_leftovers([stranger.pid], grace_seconds=0.1) == []
        assert pid_alive(stranger.pid)
        assert await reap_leftovers([999_999_999, 0, 1, os.getpgid(0)]) == []
    finally:
        stranger.kill()
        stranger.wait()
