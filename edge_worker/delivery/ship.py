"""Ship one verified sub-task: push its branch, then find or open its pull request.

Contract:
- :func:`ship_subtask` pushes the local branch, then looks the pull request up by head
  branch *before* creating one, so repeating the whole call (after a crash anywhere, or after
  feedback pushed new commits) never opens a second pull request: an open one with the
  daemon's marker gets its title, body and base rewritten; a merged one is returned as is;
  an open one without the marker (someone else's) is only linked, never edited.
- Labels and reviewers are applied on every call (GitHub treats both as idempotent adds; a
  repeat after feedback re-requests the reviews).
- On a fresh sub-task it makes at most 5 GitHub API requests (token exchange, lookup,
  create, labels, reviewers); see ``bench/README.md``.
- :func:`unmerged_dependency` picks what a sub-task with several dependencies stacks on:
  the nearest one (last in plan order) whose pull request GitHub says is still open. Merged
  ones and ones never delivered are skipped, so with none left it goes on the base branch.
- Failures raise :class:`~edge_worker.delivery.github_client.DeliveryError`; nothing is
  retried blindly here, and the branch stays pushed or local as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_worker.delivery import text
from edge_worker.delivery.git_push import push_branch
from edge_worker.delivery.github_client import DeliveryError, GitHubClient, PullRequest

_ALREADY_EXISTS = "already exists"


@dataclass(frozen=True)
class RepositoryDelivery:
    """Where and how one repository's work is delivered (from the TOML)."""

    owner: str
    name: str
    remote_url: str
    base_branch: str = "main"
    draft: bool = False
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dependency:
    """The sub-task this one builds on: its remote branch and whether it is merged."""

    branch: str
    merged: bool


@dataclass(frozen=True)
class ShippedPullRequest:
    """The pull request that carries a sub-task's work."""

    number: int
    url: str
    base: str
    created: bool


async def unmerged_dependency(
    client: GitHubClient, repository: RepositoryDelivery, branches: Sequence[str]
) -> Dependency | None:
    """The dependency to stack on, asked from GitHub (see module contract)."""
    for branch in reversed(branches):
        pull = await client.find_pull(repository.owner, repository.name, branch)
        if pull is not None and pull.state == "open":
            return Dependency(branch, merged=False)
    return None


async def ship_subtask(
    client: GitHubClient,
    repository: RepositoryDelivery,
    facts: text.PullRequestFacts,
    *,
    worktree: Path,
    local_branch: str,
    remote_branch: str,
    dependency: Dependency | None = None,
) -> ShippedPullRequest:
    """Push and find-or-open the pull request (see module contract)."""
    token = await client.token()
    await push_branch(
        worktree,
        remote_url=repository.remote_url,
        local_branch=local_branch,
        remote_branch=remote_branch,
        token=token,
    )
    owner, name = repository.owner, repository.name
    title = text.pull_request_title(facts)
    body = text.pull_request_body(facts)
    base = text.base_branch(
        repository.base_branch,
        dependency.branch if dependency else None,
        dependency.merged if dependency else True,
    )
    pull, created = await _find_or_open(
        client, repository, remote_branch, title=title, body=body, base=base, facts=facts
    )
    if pull.state == "open":
        if repository.labels:
            await client.add_labels(owner, name, pull.number, list(repository.labels))
        if repository.reviewers:
            await client.request_reviewers(owner, name, pull.number, list(repository.reviewers))
    return ShippedPullRequest(pull.number, pull.html_url, pull.base, created)


async def _find_or_open(
    client: GitHubClient,
    repository: RepositoryDelivery,
    head: str,
    *,
    title: str,
    body: str,
    base: str,
    facts: text.PullRequestFacts,
) -> tuple[PullRequest, bool]:
    owner, name = repository.owner, repository.name
    existing = await client.find_pull(owner, name, head)
    if existing is not None and (existing.state == "open" or existing.merged):
        ours = text.has_marker(existing.body, facts.issue_identifier, facts.subtask_key)
        stale = existing.body != body or existing.base != base
        if existing.state == "open" and ours and stale:
            existing = await client.update_pull(
                owner, name, existing.number, title=title, body=body, base=base
            )
        return existing, False
    try:
        created = await client.create_pull(
            owner, name, title=title, body=body, head=head, base=base, draft=repository.draft
        )
    except DeliveryError as refused:
        # Someone (another daemon leg) opened it between our lookup and create.
        if refused.kind == "rejected" and _ALREADY_EXISTS in refused.reason:
            again = await client.find_pull(owner, name, head)
            if again is not None:
                return again, False
        raise
    return created, True
