"""One pull request per issue: the sub-task branches merged into one branch, then shipped.

Contract:
- The policy is ``per-issue`` in ``[repositories.delivery]``. Sub-tasks then open no pull
  request of their own; once the issue is done (all its sub-tasks passed), :func:`ship_issue`
  merges their local branches, in the dependency order given, into ``edge-worker/<ISSUE>``
  (reset to the base branch first), pushes it and finds or opens one pull request.
- The merge is made in a temporary git worktree, so the repository's checkouts are left
  alone. Merge commits take the merged branch tip's dates, so repeating the merge over the
  same branches gives the same commits; the issue branch is the daemon's own and is pushed
  with force, so work added later (feedback) replaces it.
- :func:`issue_pull_request_body` lists every sub-task with its evidence and cost and ends
  with :func:`issue_marker`. The pull request is looked up by head branch before creating
  one, and only a body with the marker is rewritten, so a crash anywhere never opens a
  second one.
- A conflict raises :class:`~edge_worker.delivery.github_client.DeliveryError` (kind
  ``merge``) naming the sub-task; every sub-task branch is kept as it was.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_worker.delivery import text
from edge_worker.delivery.git_push import push_branch
from edge_worker.delivery.github_client import DeliveryError, GitHubClient, PullRequest
from edge_worker.delivery.ship import RepositoryDelivery, ShippedPullRequest

ISSUE_BRANCH = "edge-worker/{identifier}"
MERGE_CONFLICT = "the branch of {key} conflicts with the sub-tasks merged before it."
MERGE_FAILED = "git could not merge the branch of {key}."
ISSUE_FOOTER = "Opened by edge-worker once every sub-task below passed its checks."
_IDENTITY = ("-c", "user.name=edge-worker", "-c", "user.email=edge-worker@localhost")


@dataclass(frozen=True)
class SubtaskDelivery:
    """One passed sub-task as the issue's pull request shows it."""

    facts: text.PullRequestFacts
    branch: str


def issue_marker(issue_identifier: str) -> str:
    """The hidden line that identifies the daemon's pull request for a whole issue."""
    return f"<!-- edge-worker:issue-pull-request {issue_identifier} -->"


def issue_branch(issue_identifier: str) -> str:
    """The remote and local branch that carries the issue's merged work."""
    return ISSUE_BRANCH.format(identifier=issue_identifier)


def issue_pull_request_title(issue_identifier: str, title: str) -> str:
    """``ENG-12: Title`` of the parent issue, shortened like a sub-task's title."""
    return text.pull_request_title(text.PullRequestFacts(issue_identifier, "", title))


def issue_pull_request_body(
    issue_identifier: str, issue_url: str, subtasks: Sequence[SubtaskDelivery]
) -> str:
    """Magic word for the parent and each sub-issue, then one section per sub-task."""
    identifiers = [issue_identifier, *(s.facts.issue_identifier for s in subtasks)]
    lines = [f"{text.MAGIC_WORD} {', '.join(dict.fromkeys(identifiers))}", ""]
    if issue_url:
        lines += [f"Issue: [{issue_identifier}]({issue_url})", ""]
    for subtask in subtasks:
        facts = subtask.facts
        link = f"[{facts.issue_identifier}]({facts.issue_url})" if facts.issue_url else ""
        lines += [f"## {facts.title}" + (f" ({link})" if link else ""), ""]
        section = text.pull_request_body(facts).split("\n")
        # The sub-task's own text minus its magic word, link, footer and marker.
        start = next(i for i, line in enumerate(section) if line.startswith("### "))
        end = section.index(text.FOOTER)
        lines += [row.replace("### ", "#### ", 1) for row in section[start:end]]
    lines += [ISSUE_FOOTER, "", issue_marker(issue_identifier)]
    return "\n".join(lines) + "\n"


async def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace").strip()


async def merge_branches(
    repository: Path, *, base: str, target: str, branches: Sequence[tuple[str, str]]
) -> None:
    """Reset ``target`` to ``base`` and merge each ``(key, branch)`` into it, in order."""
    with tempfile.TemporaryDirectory(prefix="edge-worker-merge-") as scratch:
        tree = Path(scratch) / "tree"
        code, out = await _git(repository, "worktree", "add", "-f", "-B", target, str(tree), base)
        if code != 0:
            raise DeliveryError("merge", MERGE_FAILED.format(key=base))
        try:
            for key, branch in branches:
                _, date = await _git(repository, "log", "-1", "--format=%cI", branch)
                env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
                message = f"Merge {key} ({branch})"
                code, out = await _git(
                    tree, *_IDENTITY, "merge", "--no-ff", "-m", message, branch, env=env
                )
                if code != 0:
                    await _git(tree, "merge", "--abort")
                    reason = MERGE_CONFLICT if "CONFLICT" in out else MERGE_FAILED
                    raise DeliveryError("merge", reason.format(key=key))
        finally:
            await _git(repository, "worktree", "remove", "--force", str(tree))


def _ours_and_stale(pull: PullRequest, issue_identifier: str, body: str, base: str) -> bool:
    """Whether the pull request is the daemon's own and says something else than now."""
    ours = issue_marker(issue_identifier) in (pull.body or "")
    return ours and (pull.body != body or pull.base != base)


async def ship_issue(
    client: GitHubClient,
    repository: RepositoryDelivery,
    *,
    worktree: Path,
    issue_identifier: str,
    issue_title: str,
    issue_url: str,
    subtasks: Sequence[SubtaskDelivery],
) -> ShippedPullRequest:
    """Merge, push and find-or-open the issue's one pull request (see module contract)."""
    branch = issue_branch(issue_identifier)
    await merge_branches(
        worktree,
        base=repository.base_branch,
        target=branch,
        branches=[(s.facts.subtask_key, s.branch) for s in subtasks],
    )
    token = await client.token()
    await push_branch(
        worktree,
        remote_url=repository.remote_url,
        local_branch=branch,
        remote_branch=branch,
        token=token,
        force=True,
    )
    owner, name = repository.owner, repository.name
    title = issue_pull_request_title(issue_identifier, issue_title)
    body = issue_pull_request_body(issue_identifier, issue_url, subtasks)
    base = repository.base_branch
    created = False
    pull = await client.find_pull(owner, name, branch)
    if pull is None or (pull.state != "open" and not pull.merged):
        pull = await client.create_pull(
            owner, name, title=title, body=body, head=branch, base=base, draft=repository.draft
        )
        created = True
    elif pull.state == "open" and _ours_and_stale(pull, issue_identifier, body, base):
        pull = await client.update_pull(owner, name, pull.number, title=title, body=body, base=base)
    if pull.state == "open":
        if repository.labels:
            await client.add_labels(owner, name, pull.number, list(repository.labels))
        if repository.reviewers:
            await client.request_reviewers(owner, name, pull.number, list(repository.reviewers))
    return ShippedPullRequest(pull.number, pull.html_url, pull.base, created)
