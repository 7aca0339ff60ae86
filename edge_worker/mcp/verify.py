"""The ``verify`` tool's I/O: run a verification command set on a sub-task's branch.

Contract: the branch is checked out, detached, in a scratch worktree of the configured
repository that has it (a branch only on the remote is fetched first); the commands run
there as the daemon's own verification runs them (``run_local_verification``: scrubbed
environment, per-command timeout, process group killed on timeout); the scratch worktree
is removed afterwards whatever happened. Nothing is recorded: it is a look, not a step of
the work. A branch no configured repository has raises :class:`Refused`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from pathlib import Path

from edge_worker.executors.base import VerificationCommand, VerificationReport
from edge_worker.executors.worktrees import WorktreeError, git
from edge_worker.mcp import texts
from edge_worker.mcp.errors import Refused
from edge_worker.settings import Repository
from edge_worker.verification.local import run_local_verification

SCRATCH_DIR = "mcp-verify"
TIMEOUT_SECONDS = 600.0
"""Per command: what the daemon's own local verification allows by default."""


async def _repository_with(repositories: Sequence[Repository], branch: str) -> Path | None:
    """The path of the first configured repository holding ``branch`` (fetched if need be)."""
    for repo in repositories:
        path = Path(repo.path).expanduser() if repo.path is not None else None
        if path is None or not path.is_dir():
            continue
        found = await git(
            "rev-parse", "--verify", "--quiet", f"{branch}^{{commit}}", cwd=path, check=False
        )
        if found.strip():
            return path
        with contextlib.suppress(WorktreeError):
            await git(
                "fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/heads/{branch}", cwd=path
            )
            return path
    return None


async def verify_branch(
    repositories: Sequence[Repository],
    branch: str,
    commands: list[VerificationCommand],
    *,
    scratch_root: Path,
    timeout_seconds: float,
    pass_env: Sequence[str],
) -> VerificationReport:
    """Run ``commands`` on ``branch``; see the module contract."""
    repository = await _repository_with(repositories, branch)
    if repository is None:
        raise Refused(texts.NO_BRANCH.format(branch=branch))
    scratch_root.mkdir(parents=True, exist_ok=True)
    workdir = scratch_root / uuid.uuid4().hex
    try:
        await git("worktree", "add", "--detach", str(workdir), branch, cwd=repository)
    except WorktreeError as exc:
        raise Refused(texts.NO_CHECKOUT.format(branch=branch)) from exc
    try:
        return await run_local_verification(
            workdir, commands, timeout_seconds=timeout_seconds, pass_env=pass_env
        )
    finally:
        with contextlib.suppress(WorktreeError):
            await git("worktree", "remove", "--force", str(workdir), cwd=repository)
