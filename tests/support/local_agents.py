"""Helpers for the local-executor tests: real git repositories and the fake agent CLIs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edge_worker.executors.base import Task, TaskLimits, Usage, VerificationCommand
from edge_worker.executors.process import group_alive, proc_stat

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
    stat = proc_stat(pid)
    if stat is not None:
        return stat.alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def nothing_left(pgid: int, *pids: int | None) -> bool:
    """No live process in the group, nor any of ``pids``."""
    return not group_alive(pgid) and not any(pid and pid_alive(pid) for pid in pids)


CLI_TEST_SETTINGS: dict[str, Any] = {
    "pass_env": ["FAKE_AGENT_SCENARIO"],
    "timeout_seconds": 30,
    "kill_grace_seconds": 0.5,
}
"""What every local CLI's settings say in these tests (the scenario passed, short limits)."""


def cli_values(binary: Path, **overrides: Any) -> dict[str, Any]:
    """Settings values for a fake CLI at ``binary``: :data:`CLI_TEST_SETTINGS` and ``overrides``."""
    return {"binary": str(binary), **CLI_TEST_SETTINGS, **overrides}


def scenario(monkeypatch: pytest.MonkeyPatch, *runs: dict[str, Any], **top: Any) -> None:
    """Script the fake CLIs: ``runs`` in order (the last repeats), ``top`` beside them."""
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", json.dumps({**top, "runs": list(runs)}))


# USD per million tokens, written out here so the tests do not lean on the price module.
INPUT, CACHED, OUTPUT = 1.25, 0.125, 10.0


class OneModelPricer:
    """A price table of one model (``model``, at INPUT/CACHED/OUTPUT); records what it was
    asked. ``known=False``: no model has a price."""

    model: ClassVar[str]

    def __init__(self, known: bool = True) -> None:
        self.known = known
        self.asked: list[tuple[str | None, Usage]] = []

    def __call__(self, model: str | None, usage: Usage) -> float | None:
        # The pricer's convention: input_tokens without the cache reads.
        self.asked.append((model, usage))
        if not self.known or model != self.model:
            return None
        cost = (
            usage.input_tokens * INPUT
            + usage.cached_input_tokens * CACHED
            + usage.output_tokens * OUTPUT
        )
        return cost / 1_000_000


@contextmanager
def traversable_dir(prefix: str) -> Iterator[Path]:
    """A new directory every user may traverse (mode 0755, outside ``tmp_path``, whose
    parents may not be), for a CLI that may run unprivileged; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
