"""Per-issue delivery inside the durable orchestration: the step and the issue-end hook.

Contract:
- :func:`deliver_issue` is called once an issue's work is done. When its repository's
  ``[repositories.delivery]`` policy is ``per-issue`` (and GitHub credentials are set), it
  ships the passed local sub-tasks' branches as one pull request
  (:func:`~edge_worker.delivery.issue_pull_request.ship_issue`), in dependency order,
  attaches it to the issue on Linear and sets it as every shipped sub-task's ``pr_url`` (the
  report's rows). It returns a one-line note for the report when delivery failed, else
  ``None``; any other policy does nothing.
- :func:`ship_issue_step` is safe to repeat: the merge is deterministic and the pull request
  is looked up by branch and marker before one is created.
- Each sub-task's evidence is the commands and exit codes its verification recorded
  (``checks`` of its record); the output tails stay in the sub-issue's comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.delivery import text
from edge_worker.delivery.github_client import DeliveryError, GitHubClient
from edge_worker.delivery.issue_pull_request import SubtaskDelivery, ship_issue
from edge_worker.delivery.steps import _auth, attach_pull_requests_step, delivery_target
from edge_worker.orchestration.progress import Progress

log = structlog.get_logger(__name__)

ISSUE_DELIVERY_FAILED = "Not delivered as a pull request: {reason} The work is kept on {branches}."
LOCAL_EXECUTORS = ("claude-code", "codex", "gemini")


def dependency_order(progress: Progress) -> list[str]:
    """The sub-task keys, each after its dependencies, plan order breaking ties (sans-I/O)."""
    depends = {s.key: list(s.depends_on) for s in progress.plan.subtasks}
    ordered: list[str] = []
    placed: set[str] = set()

    def place(key: str, seen: frozenset[str]) -> None:
        if key in placed or key in seen:
            return
        for dep in depends.get(key, []):
            place(dep, seen | {key})
        placed.add(key)
        ordered.append(key)

    for subtask in progress.plan.subtasks:
        place(subtask.key, frozenset())
    return ordered


def issue_subtasks(progress: Progress) -> list[dict[str, Any]]:
    """The passed local sub-tasks with a branch, in dependency order, as plain JSON."""
    out: list[dict[str, Any]] = []
    for key in dependency_order(progress):
        record = progress.tasks[key]
        if record.status != "passed" or not record.branch:
            continue
        if record.executor not in LOCAL_EXECUTORS:
            continue
        out.append(
            {
                "branch": record.branch,
                "facts": {
                    "issue_identifier": record.identifier or key,
                    "subtask_key": key,
                    "title": record.title,
                    "issue_url": record.url or "",
                    "checks": [
                        {"command": c["command"], "exit_code": int(c.get("exit_code") or 0)}
                        for c in record.checks
                    ],
                    "iterations": record.iterations,
                    "cost": record.cost.format(),
                },
            }
        )
    return out


def _deliveries(raw: Sequence[dict[str, Any]]) -> list[SubtaskDelivery]:
    return [
        SubtaskDelivery(
            text.PullRequestFacts(
                **{
                    **item["facts"],
                    "checks": tuple(text.CheckEvidence(**c) for c in item["facts"]["checks"]),
                }
            ),
            item["branch"],
        )
        for item in raw
    ]


@DBOS.step()
async def ship_issue_step(request: dict[str, Any]) -> dict[str, Any]:
    """Ship the issue's one pull request: ``{"pr_url"}``, ``{"error"}``, or ``{}`` when the
    repository's policy is not per-issue or GitHub is not configured."""
    settings = services.current().settings
    repository = next(
        (r for r in settings.repositories if r.id == request.get("repository_id")), None
    )
    if repository is None or repository.path is None or not settings.github.configured:
        return {}
    delivery = repository.delivery
    if delivery is None or delivery.policy != "per-issue":
        return {}
    target = delivery_target(repository)
    async with httpx.AsyncClient(timeout=30.0) as http:
        client = GitHubClient(
            http,
            base_url=settings.github.api_url,
            auth=_auth(settings.github),
            max_wait_seconds=settings.github.max_wait_seconds,
        )
        try:
            shipped = await ship_issue(
                client,
                target,
                worktree=Path(repository.path),
                issue_identifier=request["identifier"],
                issue_title=request["title"],
                issue_url=request["url"],
                subtasks=_deliveries(request["subtasks"]),
            )
        except DeliveryError as failed:
            log.warning("issue delivery failed", kind=failed.kind, requests=client.requests)
            return {"error": failed.reason}
    log.info("issue delivered", pull=shipped.number, created=shipped.created)
    return {"pr_url": shipped.url}


async def deliver_issue(
    progress: Progress | None,
    repository: dict[str, Any] | None,
    issue: dict[str, Any],
    issue_id: str,
    identifier: str,
) -> str | None:
    """Ship and link the issue's one pull request (see module contract); the failure note."""
    subtasks = issue_subtasks(progress) if progress is not None else []
    if not subtasks or not repository:
        return None
    shipped = await ship_issue_step(
        {
            "repository_id": repository.get("id"),
            "identifier": identifier,
            "title": issue.get("title") or identifier,
            "url": issue.get("url") or "",
            "subtasks": subtasks,
        }
    )
    if "error" in shipped:
        branches = ", ".join(s["branch"] for s in subtasks)
        return ISSUE_DELIVERY_FAILED.format(reason=shipped["error"], branches=branches)
    if "pr_url" in shipped and progress is not None:
        await attach_pull_requests_step(issue_id, identifier, [shipped["pr_url"]])
        for item in subtasks:
            progress.tasks[item["facts"]["subtask_key"]].pr_url = shipped["pr_url"]
    return None
