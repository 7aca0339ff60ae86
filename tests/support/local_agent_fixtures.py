"""Fixtures of the local-executor tests: a git repository, the fake agent CLIs installed as
real executables, and a worktree manager, all under the test's ``tmp_path``.

Use with ``pytest_plugins = ("tests.support.local_agent_fixtures",)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.fake_agents import FakeAgents, install_fake_agents
from tests.support.local_agents import init_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "project")


@pytest.fixture
def fakes(tmp_path: Path) -> FakeAgents:
    return install_fake_agents(tmp_path / "bin")


@pytest.fixture
def worktrees(tmp_path: Path) -> WorktreeManager:
    return WorktreeManager(tmp_path / "worktrees")
