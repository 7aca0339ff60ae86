"""``proc_stat`` reads a process's state, parent and group from ``/proc``, for real ones."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from edge_worker.executors.process import all_pids, group_members, proc_stat


def _wait_until_zombie(proc: subprocess.Popen[bytes]) -> None:
    """Wait until the killed child is a zombie (nobody has reaped it yet)."""
    deadline = time.monotonic() + 30
    while (stat := proc_stat(proc.pid)) is not None and stat.state != "Z":
        assert time.monotonic() < deadline, f"{proc.pid} is still {stat.state}"
        os.sched_yield()


def test_a_command_name_with_spaces_and_a_parenthesis_parses(tmp_path: Path) -> None:
    odd = tmp_path / "a) b c"
    odd.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(odd), "60"], start_new_session=True)
    try:
        stat = proc_stat(proc.pid)
        assert stat is not None
        assert stat.ppid == os.getpid()
        assert stat.pgrp == proc.pid  # a new session leads its own group
        assert stat.alive
        assert proc.pid in all_pids()
        assert group_members(proc.pid) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


def test_a_zombie_is_not_alive_and_a_reaped_process_is_gone() -> None:
    proc = subprocess.Popen(["/bin/sleep", "60"], start_new_session=True)
    os.kill(proc.pid, signal.SIGKILL)
    _wait_until_zombie(proc)
    stat = proc_stat(proc.pid)
    assert stat is not None and stat.state == "Z" and not stat.alive
    assert group_members(proc.pid) == []

    proc.wait()
    assert proc_stat(proc.pid) is None
