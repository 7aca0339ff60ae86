"""Run a peer reviewer CLI on a read-only copy of the author's worktree.

Contract of :func:`review_worktree`:
- The reviewer never sees the author's worktree: it runs in a copy (without ``.git``)
  whose files and directories have no write bit; when the daemon runs as root (whom file
  modes do not bind) the reviewer runs as ``review.run_as_user``. On top of that the CLI
  is started in its read-only mode (Claude Code ``--permission-mode plan`` with the editing
  tools disallowed; Codex ``--sandbox read-only``).
- The prompt carries the sub-task (its acceptance criteria), its verification commands,
  the diff against the base branch and the verdict schema; the role prompt is
  ``prompts/reviewer.md``.
- An answer that does not match the schema is asked for once more; a second bad answer
  counts as ``concerns`` with the raw text attached.
- Returns every run's cost (for the ledger, under the reviewer's executor), the verdict,
  and whether the author's worktree was left unchanged (checked, not assumed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from edge_worker.executors.base import RunHandle, RunResult
from edge_worker.executors.local_cli import LocalCliExecutor
from edge_worker.executors.stream_types import Ending
from edge_worker.executors.task_prompt import as_positional
from edge_worker.orchestration import review
from edge_worker.settings import ReviewSettings

log = structlog.get_logger(__name__)

DIFF_LIMIT = 60_000
BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
PROMPT = """You are the peer reviewer of another agent's finished sub-task. Work read-only:
this directory is a read-only copy of its worktree, so do not write REVIEW.md, do not
commit, do not change anything. Judge the change against the acceptance criteria.

# Sub-task: {title}

{description}

# Verification commands (they passed)

{verification}

# The change (diff against {base})

```diff
{diff}
```

# Your answer

Answer with only one JSON object matching this schema (``verdict``: ``approve`` when the
change meets the criteria; ``concerns`` with findings the author should address;
``blocker`` when it must not be accepted as it is):

```json
{schema}
```
"""


@dataclass
class ReviewOutcome:
    """What a review produced: the verdict, each run's result (for the ledger), the raw
    text of the last answer, and whether the author's worktree was left as it was."""

    verdict: review.Verdict
    runs: list[RunResult] = field(default_factory=list)
    raw: str = ""
    worktree_unchanged: bool = True
    copy_unchanged: bool = True


def _git(worktree: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(worktree), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.stdout


def diff_of(worktree: Path, base: str) -> str:
    """The change in ``worktree`` against ``base`` (committed and not), untracked files
    listed; read-only git commands only."""
    diff = _git(worktree, "diff", base) or _git(worktree, "diff", "HEAD")
    untracked = _git(worktree, "ls-files", "--others", "--exclude-standard").split()
    if untracked:
        diff += "\n# untracked files: " + ", ".join(untracked)
    if len(diff) > DIFF_LIMIT:
        diff = diff[:DIFF_LIMIT] + "\n# (diff cut here)"
    return diff


def fingerprint(root: Path) -> str:
    """A digest of every file's path and content under ``root`` (``.git`` left out)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_only_copy(worktree: Path) -> Path:
    """A copy of ``worktree`` (no ``.git``) in a fresh directory, every write bit off."""
    parent = Path(tempfile.mkdtemp(prefix="edge-worker-review-"))
    parent.chmod(0o755)  # traversable by the unprivileged reviewer user
    copy = parent / "worktree"
    shutil.copytree(worktree, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    for path in [copy, *copy.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(stat.S_IMODE(mode) & ~0o222 | (0o555 if path.is_dir() else 0o444))
    return copy


def remove_copy(copy: Path) -> None:
    for path in [copy, *copy.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(copy.parent, ignore_errors=True)


def reviewer_argv(
    executor: str, binary: str, *, prompt: str, role_prompt: str, model: str | None, workdir: Path
) -> list[str]:
    """The reviewer's command line in its CLI's read-only mode (pure)."""
    if executor == "codex":
        argv = [binary, "exec", "--json", "--sandbox", "read-only", "--skip-git-repo-check"]
        argv += ["-C", str(workdir)]
        if model:
            argv += ["--model", model]
        return [*argv, as_positional(role_prompt + "\n\n" + prompt)]
    argv = [binary, "-p", as_positional(prompt), "--output-format", "stream-json", "--verbose"]
    argv += ["--permission-mode", "plan", "--disallowedTools", "Edit,Write,NotebookEdit"]
    if model:
        argv += ["--model", model]
    return [*argv, "--append-system-prompt", role_prompt]


def _user_ids(settings: ReviewSettings) -> tuple[int, int] | None:
    """``(uid, gid)`` to run the reviewer as, when the daemon is root; else ``None``."""
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(settings.run_as_user)
    return entry.pw_uid, entry.pw_gid


def reviewer_env(settings: ReviewSettings, home: Path) -> dict[str, str]:
    """A minimal environment: no secret unless named in ``review.pass_env``."""
    env = {name: os.environ[name] for name in (*BASE_ENV, *settings.pass_env) if name in os.environ}
    env["HOME"] = str(home)
    return env


async def run_once(
    cli: LocalCliExecutor[Any],
    argv: list[str],
    workdir: Path,
    settings: ReviewSettings,
) -> RunResult:
    """Run the reviewer CLI once in ``workdir`` and read its stream as its executor does."""
    ids = _user_ids(settings)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        env=reviewer_env(settings, workdir.parent),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        user=ids[0] if ids else None,
        group=ids[1] if ids else None,
        extra_groups=[] if ids else None,
    )
    parser = cli.new_parser()
    stopped = None
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            assert proc.stdout is not None
            async for line in proc.stdout:
                parser.feed(line.decode(errors="replace"))
            await proc.wait()
    except TimeoutError:
        stopped = "timed_out"
        proc.kill()
        await proc.wait()
    stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
    ending = Ending(
        exit_code=proc.returncode,
        stopped=stopped,  # type: ignore[arg-type]
        stderr_tail=stderr[-2000:],
        duration_seconds=time.monotonic() - started,
    )
    handle = RunHandle(executor=cli.name, run_id=f"review-{uuid.uuid4().hex[:12]}")
    return cli.to_result(parser, ending, handle)


async def review_worktree(
    cli: LocalCliExecutor[Any],
    reviewer: review.Reviewer,
    *,
    binary: str,
    worktree: Path,
    base: str,
    task: dict[str, Any],
    role_prompt: str,
    settings: ReviewSettings,
) -> ReviewOutcome:
    """Review the change in ``worktree`` (see the module docstring)."""
    before = fingerprint(worktree)
    head = _git(worktree, "rev-parse", "HEAD")
    verification = "\n".join(f"- `{c['command']}`" for c in task.get("verification") or [])
    prompt = PROMPT.format(
        title=task.get("title", ""),
        description=task.get("description", ""),
        verification=verification or "- (none)",
        base=base,
        diff=await asyncio.to_thread(diff_of, worktree, base),
        schema=json.dumps(review.VERDICT_SCHEMA, indent=1),
    )
    copy = await asyncio.to_thread(read_only_copy, worktree)
    copied = await asyncio.to_thread(fingerprint, copy)
    outcome = ReviewOutcome(verdict=review.malformed(""))
    try:
        ask = prompt
        for attempt in (1, 2):
            argv = reviewer_argv(
                reviewer.executor,
                binary,
                prompt=ask,
                role_prompt=role_prompt,
                model=reviewer.model,
                workdir=copy,
            )
            result = await run_once(cli, argv, copy, settings)
            outcome.runs.append(result)
            outcome.raw = result.summary or result.error or ""
            found = review.read_verdict(outcome.raw)
            if isinstance(found, review.Verdict):
                outcome.verdict = found
                break
            log.info("reviewer answer off schema", attempt=attempt, problem=found)
            outcome.verdict = review.malformed(outcome.raw)
            ask = prompt + "\n\n" + review.ASK_AGAIN.format(problem=found)
        outcome.copy_unchanged = await asyncio.to_thread(fingerprint, copy) == copied
    finally:
        await asyncio.to_thread(remove_copy, copy)
    after = await asyncio.to_thread(fingerprint, worktree)
    outcome.worktree_unchanged = after == before and _git(worktree, "rev-parse", "HEAD") == head
    return outcome
