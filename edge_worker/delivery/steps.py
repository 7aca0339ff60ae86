"""Delivery inside the durable orchestration: DBOS steps and the sub-task hook.

Contract:
- :func:`deliver_verified` is called by a sub-task that passed verification. For local work
  in a repository with ``[repositories.delivery]`` and GitHub credentials it ships the
  branch (:func:`ship_subtask_step`): what the agent left uncommitted is committed first
  (verification judged the working tree), and a branch with no commits of its own gets no
  pull request, only the note :data:`NO_CHANGES_NOTE`. The branch is stacked on the
  nearest local dependency whose pull request is still open on GitHub (asked, not
  assumed); every pull request of the sub-task
  (its own or Codegen's) is then attached to the sub-issue on Linear
  (:func:`attach_pull_requests_step`). It returns the run result with the pull request URL
  added to ``pr_urls`` (the session's links and the report's row come from there) and,
  when delivery failed, a one-line ``delivery_note`` for the sub-issue and the report, and
  ``delivered`` (the sub-issue then waits in the review state until its pull request is
  merged). The verified branch is kept either way. With the ``per-issue`` policy nothing
  is shipped here (see :mod:`edge_worker.delivery.issue_steps`).
- Both steps are safe to repeat: shipping looks the pull request up before creating it, and
  Linear keeps one attachment per issue and URL.
- The GitHub App's installation token is cached per process, so consecutive deliveries
  reuse it until it is near expiry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.delivery import text
from edge_worker.delivery.github_client import (
    AppInstallation,
    DeliveryError,
    GitHubAuth,
    GitHubClient,
    StaticToken,
)
from edge_worker.delivery.settings import GitHubSettings
from edge_worker.delivery.ship import RepositoryDelivery, ship_subtask, unmerged_dependency
from edge_worker.executors import worktrees
from edge_worker.settings import Repository

log = structlog.get_logger(__name__)

PR_ATTACHMENT_TITLE = "Pull request: {name}"
DELIVERY_FAILED_NOTE = "Not delivered as a pull request: {reason} The work is kept on {branch}."
NO_CHANGES_NOTE = "No pull request: this sub-task changed no files."
_auth_cache: dict[tuple[str | None, int | None, str | None], GitHubAuth] = {}


def _auth(github: GitHubSettings) -> GitHubAuth:
    """The process's GitHub credential (one cached installation token per app)."""
    key = (github.app_id, github.installation_id, github.api_url)
    if github.app_id and github.private_key_file and github.installation_id:
        if key not in _auth_cache:
            _auth_cache[key] = AppInstallation(
                app_id=github.app_id,
                private_key=github.private_key_file.expanduser().read_text(encoding="utf-8"),
                installation_id=github.installation_id,
            )
        return _auth_cache[key]
    assert github.token is not None
    return StaticToken(github.token.get_secret_value())


def delivery_target(repository: Repository) -> RepositoryDelivery:
    """Where and how ``repository``'s work is delivered (it has ``[repositories.delivery]``)."""
    delivery = repository.delivery
    assert delivery is not None
    return RepositoryDelivery(
        owner=delivery.owner,
        name=delivery.name,
        remote_url=delivery.remote_url,
        base_branch=repository.base_branch,
        draft=delivery.draft,
        labels=tuple(delivery.labels),
        reviewers=tuple(delivery.reviewers),
    )


@DBOS.step()
async def ship_subtask_step(request: dict[str, Any]) -> dict[str, Any]:
    """Push and find-or-open one sub-task's pull request: ``{"pr_url"}`` or ``{"error"}``."""
    settings = services.current().settings
    repository = next(r for r in settings.repositories if r.id == request["repository_id"])
    assert repository.delivery is not None and repository.path is not None
    target = delivery_target(repository)
    raw = request["facts"]
    facts = text.PullRequestFacts(
        **{
            **raw,
            "acceptance_criteria": tuple(raw["acceptance_criteria"]),
            "checks": tuple(text.CheckEvidence(**check) for check in raw["checks"]),
        }
    )
    async with httpx.AsyncClient(timeout=30.0) as http:
        client = GitHubClient(
            http,
            base_url=settings.github.api_url,
            auth=_auth(settings.github),
            max_wait_seconds=settings.github.max_wait_seconds,
        )
        try:
            if not await _has_own_work(Path(repository.path), request, repository.base_branch):
                log.info("nothing to deliver: the branch has no commits of its own")
                return {"unchanged": True}
            dependency = await unmerged_dependency(client, target, request["dependencies"])
            shipped = await ship_subtask(
                client,
                target,
                facts,
                worktree=Path(repository.path),
                local_branch=request["branch"],
                remote_branch=request["branch"],
                dependency=dependency,
            )
        except DeliveryError as failed:
            log.warning("delivery failed", kind=failed.kind, requests=client.requests)
            return {"error": failed.reason}
    log.info("delivered", pull=shipped.number, created=shipped.created, requests=client.requests)
    return {"pr_url": shipped.url, "number": shipped.number, "created": shipped.created}


async def _has_own_work(repository: Path, request: dict[str, Any], base_branch: str) -> bool:
    """Commit what the agent left uncommitted on the sub-task's branch (verification saw
    the working tree, so the pull request must carry it too), then say whether the branch
    has commits beyond its base and the dependencies merged into it."""
    branch = request["branch"]
    try:
        holder = await worktrees.holder_of(repository, branch)
        if holder is not None:
            await worktrees.commit_leftovers(holder)
        remote = request.get("remote") or "origin"
        bases = [
            base_branch,
            *request["dependencies"],
            *(f"refs/remotes/{remote}/{name}" for name in request.get("fetched") or []),
        ]
        return await worktrees.own_commits(repository, branch, bases) > 0
    except worktrees.WorktreeError as failed:  # git's words name paths: logged, not shown
        log.warning("delivery could not read the branch", error=str(failed))
        raise DeliveryError("push", "git could not read the sub-task's branch") from failed


@DBOS.step()
async def attach_pull_requests_step(sub_issue_id: str, name: str, urls: list[str]) -> None:
    """Attach each pull request URL to the sub-issue (a repeat updates the same one)."""
    from edge_worker.orchestration.steps import adapters  # the daemon installs them

    for url in urls:
        await adapters().linear.link_url(
            issue_id=sub_issue_id, url=url, title=PR_ATTACHMENT_TITLE.format(name=name)
        )


def _facts(
    spec: dict[str, Any],
    checks: list[dict[str, Any]],
    iterations: int,
    cost: str,
    review: str | None = None,
) -> dict[str, Any]:
    """The pull request's facts as plain JSON (a step's input is stored by DBOS)."""
    task = spec["task"]
    return {
        "issue_identifier": str(spec.get("sub_issue_identifier") or spec["issue_identifier"]),
        "subtask_key": spec["key"],
        "title": task["title"],
        "issue_url": spec.get("sub_issue_url") or "",
        "acceptance_criteria": text.acceptance_criteria(task.get("description") or ""),
        "checks": [
            {
                "command": c["command"],
                "exit_code": int(c.get("exit_code") or 0),
                "output_tail": c.get("output_tail") or "",
            }
            for c in checks
        ],
        "iterations": iterations,
        "cost": cost,
        "review": review or "",
    }


async def deliver_verified(
    spec: dict[str, Any],
    branch: str | None,
    result: dict[str, Any],
    checks: list[dict[str, Any]],
    iterations: int,
    cost: str,
    review: str | None = None,
) -> dict[str, Any]:
    """Ship and link a verified sub-task (see module contract); returns the new result.
    ``review`` is the peer review's section for the pull request body, if any."""
    settings = services.current().settings
    task = spec["task"]
    repository = next((r for r in settings.repositories if r.id == task.get("repository_id")), None)
    urls = list(result.get("pr_urls") or [])
    note: str | None = None
    delivered = False
    local = not urls and branch and repository is not None and repository.path is not None
    per_subtask = repository is not None and repository.delivery is not None
    per_subtask = per_subtask and repository.delivery.policy == "per-subtask"  # type: ignore[union-attr]
    if local and per_subtask and repository and repository.delivery and settings.github.configured:
        merged_in = task.get("merge_branches") or []
        shipped = await ship_subtask_step(
            {
                "repository_id": repository.id,
                "branch": branch,
                "facts": _facts(spec, checks, iterations, cost, review),
                "dependencies": list(merged_in),
                "fetched": list(task.get("fetch_branches") or []),
                "remote": task.get("remote") or "origin",
            }
        )
        if "pr_url" in shipped:
            urls.append(shipped["pr_url"])
            delivered = True
        elif shipped.get("unchanged"):
            note = NO_CHANGES_NOTE
        else:
            note = DELIVERY_FAILED_NOTE.format(reason=shipped["error"], branch=branch)
    if urls and spec.get("sub_issue_id"):
        name = str(spec.get("sub_issue_identifier") or spec["key"])
        await attach_pull_requests_step(spec["sub_issue_id"], name, urls)
    return {**result, "pr_urls": urls, "delivery_note": note, "delivered": delivered}
