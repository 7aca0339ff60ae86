"""Helpers for the local-executor tests: real git repositories and the fake agent CLIs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from edge_worker.executors.base import Task, TaskLimits, VerificationCommand
from edge_worker.executors.process import group_alive

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def init_repo(path: Path) -> Path:
    """A repository with one commit on ``main`` (a README)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@localhost")
    (path / "README.md").write_text("# demo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


def make_task(repo: Path, **overrides: Any) -> Task:
    """A builder sub-task of ENG-42 in ``repo``."""
    values: dict[str, Any] = {
        "issue_id": "6c1f0e8e-0000-4000-8000-000000000042",
        "issue_identifier": "ENG-42",
        "key": "greeting",
        "title": "Add a greeting file",
        "description": "Create hello.txt containing 'hello'.",
        "repository_path": str(repo),
        "base_branch": "main",
        "role_prompt": (PROMPTS_DIR / "builder.md").read_text(),
        "verification": [VerificationCommand(command="grep -q hello hello.txt")],
        "limits": TaskLimits(wall_clock_seconds=30),
    }
    values.update(overrides)
    return Task(**values)


def fake_state(worktree: Path, name: str) -> dict[str, Any]:
    """The state a fake CLI kept in the worktree's private git dir."""
    git_dir = Path(git(worktree, "rev-parse", "--absolute-git-dir"))
    data = json.loads((git_dir / name).read_text())
    assert isinstance(data, dict)
    return data


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat[stat.rfind(")") + 2] not in ("Z", "X")


def nothing_left(pgid: int, *pids: int | None) -> bool:
    """No live process in the group, nor any of ``pids``."""
    return not group_alive(pgid) and not any(pid and pid_alive(pid) for pid in pids)
