"""One git worktree per sub-task, for the local executors.

Contract:
- :meth:`WorktreeManager.ensure` gives the worktree of ``(repository, issue, key)`` at
  ``<root>/<repository name>/<ISSUE-ID>-<key>`` on branch ``edge-worker/<ISSUE-ID>-<key>``,
  created from the base branch, or reused as it is when it already exists (a retried step
  never starts over, and never makes a second one). When the branch is checked out in a
  worktree elsewhere (another daemon on this host ran the sub-task and was lost, and its
  workflow was recovered here), that worktree is moved here, uncommitted work and all:
  the workflow queue gives a sub-task to one executor at a time, so its branch is ours.
  A new worktree gets the branches of its dependencies merged in: local ones by name, and
  a cloud dependency's pull request branch fetched from the repository's remote first.
- :meth:`WorktreeManager.release` after the run: on success the worktree is removed and the
  branch kept (it holds the work); anything the agent left uncommitted is committed first so
  nothing is lost. On failure the worktree is kept and stamped with the time, for a human
  to inspect.
- :func:`commit_leftovers` and :func:`own_commits` serve delivery: the verified work is
  committed before its branch is pushed, and a branch with no commits of its own (beside
  its base and its dependencies) has nothing to deliver.
- :meth:`WorktreeManager.sweep` (at start-up) removes failed worktrees older than
  ``keep_failed_days``; worktrees without a stamp (in progress) are left alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

BRANCH_PREFIX = "edge-worker/"
FAILED_STAMP = "edge-worker-failed.json"
"""Written in the worktree's private git directory (never in the working tree)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_GIT_TIMEOUT_SECONDS = 120.0
_FALLBACK_IDENTITY = ("-c", "user.name=edge-worker", "-c", "user.email=edge-worker@localhost")


class WorktreeError(Exception):
    """A git operation on a worktree failed; the message carries git's own words."""


@dataclass(frozen=True)
class Worktree:
    """A sub-task's working directory and branch."""

    path: Path
    branch: str
    repository: Path
    reused: bool = False


async def holder_of(repository: Path, branch: str) -> Path | None:
    """The worktree (not the main checkout) that has ``branch`` checked out, if any."""
    listing = await git("worktree", "list", "--porcelain", cwd=repository)
    main_checkout = True
    holder: Path | None = None
    for line in [*listing.splitlines(), ""]:
        if line.startswith("worktree "):
            holder = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}" and holder is not None and not main_checkout:
            return holder
        elif not line:
            main_checkout, holder = False, None
    return None


async def commit_leftovers(path: Path) -> bool:
    """Commit what the agent left uncommitted in worktree ``path``; True if it did."""
    status = await git("status", "--porcelain", cwd=path)
    if not status.strip():
        return False
    await git("add", "-A", cwd=path)
    configured = await git("config", "user.email", cwd=path, check=False)
    identity = () if configured.strip() else _FALLBACK_IDENTITY
    await git(
        *identity,
        "commit",
        "--no-verify",
        "-m",
        "edge-worker: commit changes the agent left uncommitted",
        cwd=path,
    )
    log.info("worktree.committed_leftovers", path=str(path))
    return True


async def own_commits(repository: Path, branch: str, bases: Sequence[str]) -> int:
    """How many commits ``branch`` has that none of ``bases`` (refs that exist) has."""
    existing = []
    for ref in bases:
        found = await git("rev-parse", "--verify", "--quiet", ref, cwd=repository, check=False)
        if found.strip():
            existing.append(ref)
    counted = await git("rev-list", "--count", branch, "--not", *existing, cwd=repository)
    return int(counted.strip() or 0)


def safe_name(text: str) -> str:
    """``text`` reduced to characters valid in a branch and a directory name."""
    cleaned = _UNSAFE.sub("-", text).strip("-.")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    if not cleaned:
        raise ValueError(f"no usable characters in {text!r}")
    return cleaned.removesuffix(".lock")


def branch_name(issue_identifier: str, key: str) -> str:
    """``edge-worker/<ISSUE-ID>-<key>``."""
    return f"{BRANCH_PREFIX}{safe_name(issue_identifier)}-{safe_name(key)}"


async def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Run git in ``cwd``; return stdout, raise :class:`WorktreeError` on failure."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=str(cwd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # A fetch from a remote that wants credentials fails at once with git's message
        # instead of prompting on the daemon's terminal until the timeout.
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    try:
        async with asyncio.timeout(_GIT_TIMEOUT_SECONDS):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise WorktreeError(f"git {' '.join(args)} timed out in {cwd}") from None
    if check and proc.returncode != 0:
        message = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        raise WorktreeError(f"git {' '.join(args)} failed in {cwd}: {message}")
    return out.decode(errors="replace")


class WorktreeManager:
    """Creates, reuses, releases and sweeps the worktrees under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        keep_failed_days: float = 7.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root.expanduser()
        self.keep_failed_days = keep_failed_days
        self._clock = clock
        self._locks: dict[Path, asyncio.Lock] = {}

    def path_for(self, repository: Path, issue_identifier: str, key: str) -> Path:
        """Where the worktree of this sub-task lives."""
        name = f"{safe_name(issue_identifier)}-{safe_name(key)}"
        return self.root / safe_name(repository.resolve().name) / name

    def _lock(self, repository: Path) -> asyncio.Lock:
        # git serialises worktree administration badly under concurrency; one at a time.
        return self._locks.setdefault(repository.resolve(), asyncio.Lock())

    async def ensure(
        self,
        repository: Path,
        issue_identifier: str,
        key: str,
        base_branch: str,
        merge: Sequence[str] = (),
        fetch: Sequence[str] = (),
        remote: str = "origin",
    ) -> Worktree:
        """The sub-task's worktree, created from ``base_branch`` or reused if present.

        A new branch also gets ``merge`` (local branches of the sub-tasks it depends on)
        and ``fetch`` (branches on ``remote``: pull requests of cloud sub-tasks it depends
        on, fetched first) merged in, so dependent work starts from what its dependencies
        produced. A branch that cannot be fetched or merged raises :class:`WorktreeError`
        naming it.
        """
        repository = repository.resolve()
        path = self.path_for(repository, issue_identifier, key)
        branch = branch_name(issue_identifier, key)
        async with self._lock(repository):
            if await self._is_worktree_on(path, branch):
                (await self.private_dir(path) / FAILED_STAMP).unlink(missing_ok=True)
                log.info("worktree.reused", path=str(path), branch=branch)
                return Worktree(path=path, branch=branch, repository=repository, reused=True)
            if path.exists():
                # A leftover directory git no longer knows as this worktree: start clean.
                shutil.rmtree(path)
            await git("worktree", "prune", cwd=repository)
            path.parent.mkdir(parents=True, exist_ok=True)
            exists = await git(
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}",
                cwd=repository,
                check=False,
            )
            holder = await holder_of(repository, branch) if exists.strip() else None
            if holder is not None:
                await git("worktree", "move", str(holder), str(path), cwd=repository)
                log.warning("worktree.taken_over", path=str(path), previous=str(holder))
                return Worktree(path=path, branch=branch, repository=repository, reused=True)
            if exists.strip():
                await git("worktree", "add", str(path), branch, cwd=repository)
            else:
                await git("worktree", "add", "-b", branch, str(path), base_branch, cwd=repository)
                fetched = await self._fetch(repository, remote, fetch)
                await self._merge(path, [*merge, *fetched])
            log.info("worktree.created", path=str(path), branch=branch, base=base_branch)
            return Worktree(path=path, branch=branch, repository=repository)

    async def _fetch(self, repository: Path, remote: str, branches: Sequence[str]) -> list[str]:
        """Fetch ``branches`` from ``remote``; returns the refs to merge."""
        refs = []
        for name in branches:
            ref = f"refs/remotes/{remote}/{name}"
            try:
                await git("fetch", "--quiet", remote, f"+refs/heads/{name}:{ref}", cwd=repository)
            except WorktreeError as exc:
                raise WorktreeError(f"cannot fetch branch {name} from {remote}: {exc}") from exc
            refs.append(ref)
        return refs

    async def _merge(self, path: Path, branches: Sequence[str]) -> None:
        identity = ["-c", "user.name=edge-worker", "-c", "user.email=edge-worker@localhost"]
        for other in branches:
            try:
                await git(*identity, "merge", "--no-edit", "-q", other, cwd=path)
            except WorktreeError as exc:
                await git("merge", "--abort", cwd=path, check=False)
                raise WorktreeError(f"cannot merge dependency branch {other}: {exc}") from exc

    async def release(self, worktree_path: Path, *, succeeded: bool) -> None:
        """Remove the worktree after a success; keep and stamp it after a failure."""
        if not worktree_path.exists():
            return
        if not succeeded:
            stamp = {"failed_at": self._clock()}
            (await self.private_dir(worktree_path) / FAILED_STAMP).write_text(json.dumps(stamp))
            log.info("worktree.kept", path=str(worktree_path), days=self.keep_failed_days)
            return
        await commit_leftovers(worktree_path)
        await self._remove(worktree_path)

    async def sweep(self) -> list[Path]:
        """Remove failed worktrees kept longer than ``keep_failed_days``; return them."""
        if not self.root.is_dir():
            return []
        cutoff = self._clock() - self.keep_failed_days * 86400.0
        removed = []
        for path in sorted(p for p in self.root.glob("*/*") if (p / ".git").is_file()):
            try:
                stamp_file = await self.private_dir(path) / FAILED_STAMP
                if not stamp_file.is_file():
                    continue
                failed_at = float(json.loads(stamp_file.read_text())["failed_at"])
            except (WorktreeError, ValueError, KeyError, OSError) as exc:
                log.warning("worktree.sweep_unreadable", path=str(path), error=str(exc))
                continue
            if failed_at <= cutoff:
                await self._remove(path)
                removed.append(path)
        return removed

    async def _is_worktree_on(self, path: Path, branch: str) -> bool:
        if not (path / ".git").exists():
            return False
        try:
            top = await git("rev-parse", "--show-toplevel", cwd=path)
            head = await git("symbolic-ref", "--quiet", "HEAD", cwd=path, check=False)
        except WorktreeError:
            return False
        return Path(top.strip()).resolve() == path.resolve() and head.strip() == (
            f"refs/heads/{branch}"
        )

    async def private_dir(self, path: Path) -> Path:
        """The worktree's private git directory (``<repo>/.git/worktrees/<name>``)."""
        git_dir = Path((await git("rev-parse", "--git-dir", cwd=path)).strip())
        return git_dir if git_dir.is_absolute() else (path / git_dir).resolve()

    async def _remove(self, path: Path) -> None:
        common = Path((await git("rev-parse", "--git-common-dir", cwd=path)).strip())
        common = common if common.is_absolute() else (path / common).resolve()
        repository = common.parent
        async with self._lock(repository):
            await git("worktree", "remove", "--force", str(path), cwd=repository)
            await git("worktree", "prune", cwd=repository)
        log.info("worktree.removed", path=str(path))
