"""Worktrees per sub-task, on real git repositories."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_worker.executors.worktrees import (
    WorktreeError,
    WorktreeManager,
    branch_name,
    safe_name,
)
from edge_worker.sandbox.demo_plan import add_origin, push_branch
from tests.support.local_agents import git, init_repo

DAY = 86400.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "project")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(tmp_path: Path, clock: FakeClock) -> WorktreeManager:
    return WorktreeManager(tmp_path / "worktrees", keep_failed_days=7, clock=clock)


def branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--format=%(refname:short)").splitlines()


async def test_creates_a_worktree_on_its_own_branch_from_the_base(
    repo: Path, manager: WorktreeManager, tmp_path: Path
) -> None:
    git(repo, "checkout", "-q", "-b", "develop")
    (repo / "only-on-develop.txt").write_text("x")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "develop work")
    git(repo, "checkout", "-q", "main")

    worktree = await manager.ensure(repo, "ENG-42", "api", "develop")

    assert worktree.path == tmp_path / "worktrees" / "project" / "ENG-42-api"
    assert worktree.branch == "edge-worker/ENG-42-api"
    assert not worktree.reused
    assert git(worktree.path, "symbolic-ref", "--short", "HEAD") == "edge-worker/ENG-42-api"
    assert (worktree.path / "only-on-develop.txt").exists()
    assert git(repo, "rev-parse", "HEAD") != git(worktree.path, "rev-parse", "HEAD")


async def test_an_existing_worktree_is_reused_as_it_is(
    repo: Path, manager: WorktreeManager
) -> None:
    first = await manager.ensure(repo, "ENG-42", "api", "main")
    (first.path / "work-in-progress.txt").write_text("unsaved")

    again = await manager.ensure(repo, "ENG-42", "api", "main")

    assert again.reused
    assert again.path == first.path
    assert (again.path / "work-in-progress.txt").read_text() == "unsaved"
    assert len(git(repo, "worktree", "list", "--porcelain").split("worktree ")) == 3


async def test_success_commits_leftovers_removes_the_worktree_and_keeps_the_branch(
    repo: Path, manager: WorktreeManager
) -> None:
    worktree = await manager.ensure(repo, "ENG-42", "api", "main")
    (worktree.path / "feature.txt").write_text("done\n")

    await manager.release(worktree.path, succeeded=True)

    assert not worktree.path.exists()
    assert "edge-worker/ENG-42-api" in branches(repo)
    assert git(repo, "show", "edge-worker/ENG-42-api:feature.txt") == "done"
    assert "edge-worker/ENG-42-api" not in git(repo, "worktree", "list")


async def test_a_branch_without_its_worktree_is_checked_out_again_with_its_commits(
    repo: Path, manager: WorktreeManager
) -> None:
    worktree = await manager.ensure(repo, "ENG-42", "api", "main")
    (worktree.path / "feature.txt").write_text("done\n")
    await manager.release(worktree.path, succeeded=True)

    again = await manager.ensure(repo, "ENG-42", "api", "main")

    assert (again.path / "feature.txt").read_text() == "done\n"


async def test_a_worktree_left_by_a_lost_daemon_on_this_host_is_taken_over(
    repo: Path, manager: WorktreeManager, tmp_path: Path
) -> None:
    # Two daemons on one host share the repository; the first was killed mid-run and
    # its workflow recovered onto the second, whose worktree root is elsewhere.
    lost = await manager.ensure(repo, "ENG-42", "api", "main")
    (lost.path / "half-done.txt").write_text("uncommitted work\n")
    survivor = WorktreeManager(tmp_path / "survivor-worktrees")

    taken = await survivor.ensure(repo, "ENG-42", "api", "main")

    assert taken.path == tmp_path / "survivor-worktrees" / "project" / "ENG-42-api"
    assert taken.branch == lost.branch
    assert taken.reused
    assert (taken.path / "half-done.txt").read_text() == "uncommitted work\n"
    assert not lost.path.exists()
    listed = git(repo, "worktree", "list", "--porcelain")
    assert str(taken.path) in listed and str(lost.path) not in listed


async def test_a_branch_checked_out_in_the_main_checkout_is_a_clear_error(
    repo: Path, manager: WorktreeManager
) -> None:
    git(repo, "branch", "edge-worker/ENG-42-api")
    git(repo, "checkout", "-q", "edge-worker/ENG-42-api")

    with pytest.raises(WorktreeError, match="edge-worker/ENG-42-api"):
        await manager.ensure(repo, "ENG-42", "api", "main")


async def test_failed_worktrees_are_kept_until_they_expire(
    repo: Path, manager: WorktreeManager, clock: FakeClock
) -> None:
    failed = await manager.ensure(repo, "ENG-42", "api", "main")
    in_progress = await manager.ensure(repo, "ENG-42", "docs", "main")
    await manager.release(failed.path, succeeded=False)
    assert failed.path.exists()

    clock.now += 6.9 * DAY
    assert await manager.sweep() == []
    assert failed.path.exists()

    clock.now += 0.2 * DAY
    assert await manager.sweep() == [failed.path]
    assert not failed.path.exists()
    assert in_progress.path.exists()  # never stamped: still someone's work
    assert "edge-worker/ENG-42-api" in branches(repo)


async def test_reusing_a_failed_worktree_clears_its_expiry(
    repo: Path, manager: WorktreeManager, clock: FakeClock
) -> None:
    worktree = await manager.ensure(repo, "ENG-42", "api", "main")
    await manager.release(worktree.path, succeeded=False)
    await manager.ensure(repo, "ENG-42", "api", "main")  # a retry picks it up again

    clock.now += 30 * DAY
    assert await manager.sweep() == []
    assert worktree.path.exists()


async def test_a_stale_directory_is_replaced_by_a_real_worktree(
    repo: Path, manager: WorktreeManager
) -> None:
    path = manager.path_for(repo, "ENG-42", "api")
    path.mkdir(parents=True)
    (path / "junk").write_text("left by a crash")

    worktree = await manager.ensure(repo, "ENG-42", "api", "main")

    assert not (worktree.path / "junk").exists()
    assert (worktree.path / "README.md").exists()


async def test_concurrent_sub_tasks_get_their_own_worktrees(
    repo: Path, manager: WorktreeManager
) -> None:
    keys = [f"part-{n}" for n in range(4)]
    worktrees = await asyncio.gather(*(manager.ensure(repo, "ENG-7", k, "main") for k in keys))
    assert sorted(w.branch for w in worktrees) == [f"edge-worker/ENG-7-{k}" for k in keys]
    assert all((w.path / "README.md").exists() for w in worktrees)


def test_names_are_made_safe_for_git_and_the_file_system(repo: Path) -> None:
    name = branch_name("ENG-42", "fix the/api..v2 ~^:?*[")
    assert name == "edge-worker/ENG-42-fix-the-api.v2"
    git(repo, "check-ref-format", "--branch", name)
    with pytest.raises(ValueError):
        safe_name("///")


async def test_a_missing_base_branch_is_a_clear_error(repo: Path, manager: WorktreeManager) -> None:
    with pytest.raises(WorktreeError, match="no-such-branch"):
        await manager.ensure(repo, "ENG-42", "api", "no-such-branch")


async def test_a_cloud_dependencys_branch_is_fetched_from_the_remote_and_merged(
    repo: Path, manager: WorktreeManager, tmp_path: Path
) -> None:
    origin = add_origin(repo, tmp_path / "origin.git")
    push_branch(origin, "codegen-bot/api-7", {"api.py": "def api(): ...\n"})
    push_branch(origin, "codegen-bot/db-8", {"db.py": "def db(): ...\n"})
    assert "codegen-bot/api-7" not in git(repo, "branch", "-a")  # only on the remote

    worktree = await manager.ensure(
        repo, "ENG-9", "review", "main", fetch=["codegen-bot/api-7", "codegen-bot/db-8"]
    )

    assert (worktree.path / "api.py").read_text() == "def api(): ...\n"
    assert (worktree.path / "db.py").is_file()
    assert git(worktree.path, "status", "--porcelain") == ""


async def test_a_branch_missing_on_the_remote_is_a_clear_error(
    repo: Path, manager: WorktreeManager, tmp_path: Path
) -> None:
    add_origin(repo, tmp_path / "origin.git")
    with pytest.raises(WorktreeError, match="cannot fetch branch codegen-bot/gone-1 from origin"):
        await manager.ensure(repo, "ENG-9", "review", "main", fetch=["codegen-bot/gone-1"])
