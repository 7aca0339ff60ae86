"""One pull request per issue over real HTTP (the GitHub stand-in) and real git."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_worker.delivery import text
from edge_worker.delivery.git_push import push_branch
from edge_worker.delivery.github_client import DeliveryError, GitHubClient
from edge_worker.delivery.issue_pull_request import (
    SubtaskDelivery,
    issue_branch,
    issue_marker,
    issue_pull_request_body,
    merge_branches,
    ship_issue,
)
from edge_worker.delivery.settings import DeliverySettings
from edge_worker.delivery.ship import RepositoryDelivery
from edge_worker.sandbox.github import GitHubStandIn
from tests.support.github import (
    OWNER,
    REPO,
    commit_on_branch,
    git,
    work_repository,
)

pytest_plugins = ("tests.support.github_fixtures",)
pytestmark = pytest.mark.timeout(60)

API = SubtaskDelivery(
    text.PullRequestFacts(
        "ENG-13",
        "api",
        "Add the orders endpoint",
        issue_url="https://linear.app/acme/issue/ENG-13",
        acceptance_criteria=("GET /orders lists orders",),
        checks=(text.CheckEvidence("pytest -q", 0, "3 passed"),),
        iterations=2,
        cost="$0.42",
    ),
    "edge-worker/ENG-12-api",
)
UI = SubtaskDelivery(
    text.PullRequestFacts(
        "ENG-14",
        "ui",
        "Show the orders",
        checks=(text.CheckEvidence("npm test", 0, "ok"),),
        cost="$0.10",
    ),
    "edge-worker/ENG-12-ui",
)


@pytest.fixture
def work(tmp_path: Path, github: GitHubStandIn) -> Path:
    """Two sub-task branches: ``ui`` stacked on ``api`` (its dependency)."""
    repo = work_repository(tmp_path / "work", github.repository_path(OWNER, REPO))
    commit_on_branch(repo, API.branch, "orders.py", "def orders(): ...\n")
    commit_on_branch(repo, UI.branch, "ui.py", "ui = True\n")
    git(repo, "checkout", "--quiet", "main")
    return repo


def config(github: GitHubStandIn) -> RepositoryDelivery:
    return RepositoryDelivery(
        owner=OWNER,
        name=REPO,
        remote_url=github.clone_url(OWNER, REPO),
        labels=("edge-worker",),
    )


async def ship(
    client: GitHubClient, github: GitHubStandIn, work: Path, *subtasks: SubtaskDelivery
) -> object:
    return await ship_issue(
        client,
        config(github),
        worktree=work,
        issue_identifier="ENG-12",
        issue_title="Orders page",
        issue_url="https://linear.app/acme/issue/ENG-12",
        subtasks=subtasks or (API, UI),
    )


def remote_files(github: GitHubStandIn, branch: str) -> set[str]:
    bare = github.repository_path(OWNER, REPO)
    return set(git(bare, "ls-tree", "-r", "--name-only", branch).split())


async def test_an_issue_becomes_one_pull_request_with_every_sub_task_merged_in(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    shipped = await ship(client, github, work)

    [pull] = github.pulls[(OWNER, REPO)]
    assert pull.head == "edge-worker/ENG-12" and pull.base == "main"
    assert remote_files(github, pull.head) == {"README.md", "orders.py", "ui.py"}
    assert pull.title == "ENG-12: Orders page"
    assert pull.body.startswith("Fixes ENG-12, ENG-13, ENG-14\n")
    assert "## Add the orders endpoint" in pull.body and "## Show the orders" in pull.body
    assert "`pytest -q`: exit 0" in pull.body and "`npm test`: exit 0" in pull.body
    assert "$0.42" in pull.body and "$0.10" in pull.body
    assert pull.body.rstrip().endswith(issue_marker("ENG-12"))
    assert pull.labels == ["edge-worker"]
    assert shipped.created  # type: ignore[attr-defined]
    assert github.contract_violations == []
    assert git(work, "branch", "--show-current") == "main"  # the checkout is left alone


async def test_a_crash_between_push_and_create_and_a_repeat_still_give_one_pull_request(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    branch = issue_branch("ENG-12")
    await merge_branches(
        work, base="main", target=branch, branches=[("api", API.branch), ("ui", UI.branch)]
    )
    token = await client.token()
    url = github.clone_url(OWNER, REPO)
    await push_branch(work, remote_url=url, local_branch=branch, remote_branch=branch, token=token)
    pushed = github.head_sha(OWNER, REPO, branch)

    first = await ship(client, github, work)  # the restarted step
    again = await ship(client, github, work)

    assert len(github.pulls[(OWNER, REPO)]) == 1
    assert first.created and not again.created  # type: ignore[attr-defined]
    assert github.head_sha(OWNER, REPO, branch) == pushed  # the same merges, the same commits


async def test_feedback_on_a_sub_task_updates_the_same_pull_request(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    await ship(client, github, work)
    commit_on_branch(work, API.branch, "orders.py", "def orders(): return []\n")
    api = SubtaskDelivery(
        text.PullRequestFacts(**{**API.facts.__dict__, "iterations": 3, "cost": "$0.77"}),
        API.branch,
    )
    await ship(client, github, work, api, UI)

    [pull] = github.pulls[(OWNER, REPO)]
    bare = github.repository_path(OWNER, REPO)
    assert git(bare, "show", f"{pull.head}:orders.py") == "def orders(): return []"
    assert "$0.77" in pull.body and "$0.42" not in pull.body


async def test_conflicting_sub_tasks_are_a_clear_error_and_nothing_is_opened(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    git(work, "checkout", "--quiet", "main")
    clash = commit_on_branch(work, "edge-worker/ENG-12-clash", "orders.py", "other\n")
    git(work, "checkout", "--quiet", "main")
    other = SubtaskDelivery(
        text.PullRequestFacts("ENG-15", "clash", "Clash"), "edge-worker/ENG-12-clash"
    )

    with pytest.raises(DeliveryError) as failed:
        await ship(client, github, work, API, other)

    assert failed.value.kind == "merge" and "clash" in failed.value.reason
    assert github.pulls[(OWNER, REPO)] == []
    assert github.head_sha(OWNER, REPO, "edge-worker/ENG-12") is None
    assert git(work, "rev-parse", "edge-worker/ENG-12-clash") == clash  # the work is kept
    assert git(work, "worktree", "list").count("\n") == 0  # the scratch worktree is gone


def test_the_body_lists_each_sub_task_without_their_own_markers() -> None:
    body = issue_pull_request_body("ENG-12", "", [API, UI])

    assert not text.has_marker(body, "ENG-13", "api")
    assert body.count("#### Verification") == 2
    assert "[ENG-13](https://linear.app/acme/issue/ENG-13)" in body


def test_the_policy_is_one_pull_request_per_sub_task_unless_set_per_issue() -> None:
    values = {"owner": OWNER, "name": REPO, "remote_url": "https://github.com/acme/shop.git"}
    assert DeliverySettings.model_validate(values).policy == "per-subtask"
    assert DeliverySettings.model_validate({**values, "policy": "per-issue"}).policy == "per-issue"
    with pytest.raises(ValueError):
        DeliverySettings.model_validate({**values, "policy": "per-week"})
