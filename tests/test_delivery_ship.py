"""Shipping a verified sub-task over real HTTP (the GitHub stand-in) and real git."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from edge_worker.delivery import text
from edge_worker.delivery.git_push import NOT_FAST_FORWARD, PROTECTED, push_branch
from edge_worker.delivery.github_client import (
    AppInstallation,
    DeliveryError,
    GitHubClient,
    StaticToken,
)
from edge_worker.delivery.ship import (
    Dependency,
    RepositoryDelivery,
    ship_subtask,
    unmerged_dependency,
)
from edge_worker.sandbox.github import PULLS_PATH, GitHubStandIn
from tests.support.github import (
    APP_ID,
    INSTALLATION_ID,
    OWNER,
    REPO,
    AppKeys,
    commit_on_branch,
    git,
    work_repository,
)

pytest_plugins = ("tests.support.github_fixtures",)
pytestmark = pytest.mark.timeout(60)

FACTS = text.PullRequestFacts(
    issue_identifier="ENG-12",
    subtask_key="api",
    title="Add the orders endpoint",
    issue_url="https://linear.app/acme/issue/ENG-12",
    acceptance_criteria=("GET /orders lists orders",),
    checks=(text.CheckEvidence("pytest -q", 0, "3 passed"),),
    iterations=2,
    cost="$0.42",
)


@pytest.fixture
def work(tmp_path: Path, github: GitHubStandIn) -> Path:
    repo = work_repository(tmp_path / "work", github.repository_path(OWNER, REPO))
    commit_on_branch(repo, "edge-worker/ENG-12-api", "orders.py", "def orders(): ...\n")
    return repo


def config(github: GitHubStandIn, **overrides: object) -> RepositoryDelivery:
    values: dict[str, object] = {
        "owner": OWNER,
        "name": REPO,
        "remote_url": github.clone_url(OWNER, REPO),
        "labels": ("edge-worker",),
        "reviewers": ("octocat",),
    }
    values.update(overrides)
    return RepositoryDelivery(**values)  # type: ignore[arg-type]


async def ship(
    client: GitHubClient,
    github: GitHubStandIn,
    work: Path,
    *,
    branch: str = "edge-worker/ENG-12-api",
    facts: text.PullRequestFacts = FACTS,
    dependency: Dependency | None = None,
    **overrides: object,
) -> object:
    return await ship_subtask(
        client,
        config(github, **overrides),
        facts,
        worktree=work,
        local_branch=branch,
        remote_branch=branch,
        dependency=dependency,
    )


async def test_a_verified_sub_task_becomes_one_pull_request_with_its_real_commit(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    shipped = await ship(client, github, work)

    [pull] = github.pulls[(OWNER, REPO)]
    assert pull.head == "edge-worker/ENG-12-api" and pull.base == "main"
    assert github.head_sha(OWNER, REPO, pull.head) == git(work, "rev-parse", "HEAD")
    assert pull.body.startswith("Fixes ENG-12\n")
    assert text.has_marker(pull.body, "ENG-12", "api")
    assert "`pytest -q`: exit 0" in pull.body and "$0.42" in pull.body
    assert pull.labels == ["edge-worker"] and pull.reviewers == ["octocat"]
    assert shipped.url == f"{github.base_url}/{OWNER}/{REPO}/pull/{pull.number}"  # type: ignore[attr-defined]
    assert github.git_auth_uses >= 1
    assert github.contract_violations == []
    assert client.requests <= 6, client.requests


async def test_a_crash_between_push_and_create_still_gives_one_pull_request(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    branch = "edge-worker/ENG-12-api"
    token = await client.token()
    await push_branch(
        work,
        remote_url=github.clone_url(OWNER, REPO),
        local_branch=branch,
        remote_branch=branch,
        token=token,
    )  # ... and the daemon died here, before the pull request existed

    first = await ship(client, github, work)
    commit_on_branch(work, branch, "orders.py", "def orders(): return []\n")
    again = await ship(
        client, github, work, facts=FACTS.__class__(**{**FACTS.__dict__, "iterations": 3})
    )

    assert len(github.pulls[(OWNER, REPO)]) == 1
    assert first.created and not again.created  # type: ignore[attr-defined]
    [pull] = github.pulls[(OWNER, REPO)]
    assert "3 iterations" in pull.body  # the daemon's own text was rewritten, not added to
    assert github.head_sha(OWNER, REPO, branch) == git(work, "rev-parse", branch)
    assert github.contract_violations == []


async def test_a_sub_task_stacks_on_its_unmerged_dependency_and_not_on_a_merged_one(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    await ship(client, github, work)
    commit_on_branch(work, "edge-worker/ENG-12-ui", "ui.py", "ui = True\n")
    ui = text.PullRequestFacts("ENG-12", "ui", "Show the orders")
    stacked = await ship(
        client,
        github,
        work,
        branch="edge-worker/ENG-12-ui",
        facts=ui,
        dependency=Dependency("edge-worker/ENG-12-api", merged=False),
    )
    assert stacked.base == "edge-worker/ENG-12-api"  # type: ignore[attr-defined]

    github.merge(OWNER, REPO, 1)
    rebased = await ship(
        client,
        github,
        work,
        branch="edge-worker/ENG-12-ui",
        facts=ui,
        dependency=Dependency("edge-worker/ENG-12-api", merged=True),
    )
    assert rebased.base == "main"  # type: ignore[attr-defined]
    assert [p.base for p in github.pulls[(OWNER, REPO)]] == ["main", "main"]
    assert github.contract_violations == []


async def test_no_token_is_in_any_git_process_arguments_or_environment(
    client: GitHubClient,
    github: GitHubStandIn,
    work: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    seen: list[tuple[str, bytes, bytes]] = []
    stop = threading.Event()

    def watch() -> None:
        me = str(os.getpid())
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                except OSError:
                    continue
                if b"git" in cmdline.split(b"\0")[0] or b"askpass" in cmdline:
                    seen.append((pid, cmdline, environ))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for n in range(3):
            commit_on_branch(work, "edge-worker/ENG-12-api", "orders.py", f"v = {n}\n")
            await ship(client, github, work)
    finally:
        stop.set()
        watcher.join()

    tokens = [token.encode() for token in github.issued_tokens()]
    assert tokens, "the app exchanged no installation token"
    pushes = [cmd for _, cmd, _ in seen if b"push" in cmd]
    assert pushes, "the watcher saw no git push process"
    for _pid, cmdline, environ in seen:
        for token in tokens:
            assert token not in cmdline and token not in environ
    captured = capfd.readouterr()
    for token in github.issued_tokens():
        assert token not in caplog.text
        assert token not in captured.out + captured.err
    assert "x-access-token" not in git(work, "config", "--list")


async def test_a_protected_branch_refuses_the_push_and_keeps_the_local_work(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    github.protect(OWNER, REPO, "edge-worker/ENG-12-api")
    before = git(work, "rev-parse", "edge-worker/ENG-12-api")
    with pytest.raises(DeliveryError) as refused:
        await ship(client, github, work)
    assert refused.value.kind == "push" and PROTECTED in refused.value.reason
    assert github.pulls[(OWNER, REPO)] == []
    assert git(work, "rev-parse", "edge-worker/ENG-12-api") == before


async def test_a_non_fast_forward_push_is_refused_with_its_reason(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    await ship(client, github, work)
    git(work, "reset", "--quiet", "--hard", "HEAD~1")
    commit_on_branch(work, "edge-worker/ENG-12-api", "other.py", "x = 1\n")
    with pytest.raises(DeliveryError) as refused:
        await ship(client, github, work)
    assert refused.value.kind == "push" and NOT_FAST_FORWARD in refused.value.reason


async def test_a_revoked_installation_says_so_and_opens_nothing(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    github.revoke_installation()
    with pytest.raises(DeliveryError) as refused:
        await ship(client, github, work)
    assert refused.value.kind == "installation"
    assert "reinstall" in refused.value.reason
    assert github.head_sha(OWNER, REPO, "edge-worker/ENG-12-api") is None


async def test_a_missing_repository_is_not_found(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    with pytest.raises(DeliveryError) as refused:
        await ship(client, github, work, name="gone", remote_url=github.clone_url(OWNER, "gone"))
    assert refused.value.kind == "not_found"


async def test_a_422_from_the_pulls_api_is_a_clear_rejection(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    with pytest.raises(DeliveryError) as refused:
        await ship(client, github, work, base_branch="release")
    assert refused.value.kind == "rejected" and "base is invalid" in refused.value.reason
    assert github.head_sha(OWNER, REPO, "edge-worker/ENG-12-api") is not None  # work kept
    assert github.contract_violations == []


async def test_a_secondary_rate_limit_is_waited_out_as_retry_after_says(
    github: GitHubStandIn, work: Path
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    github.personal_token = "ghp_personal"
    github.fail_next(PULLS_PATH, 403, retry_after=7)
    async with httpx.AsyncClient() as http:
        client = GitHubClient(
            http, base_url=github.base_url, auth=StaticToken("ghp_personal"), sleep=sleep
        )
        await ship(client, github, work)
    assert waits == [7.0]
    assert len(github.pulls[(OWNER, REPO)]) == 1


async def test_a_rate_limit_longer_than_the_allowed_wait_is_not_retried_blindly(
    github: GitHubStandIn, work: Path
) -> None:
    github.personal_token = "ghp_personal"
    github.fail_next(PULLS_PATH, 429, retry_after=3600)
    async with httpx.AsyncClient() as http:
        client = GitHubClient(http, base_url=github.base_url, auth=StaticToken("ghp_personal"))
        with pytest.raises(DeliveryError) as refused:
            await ship(client, github, work)
    assert refused.value.kind == "rate_limited"
    assert github.pulls[(OWNER, REPO)] == []


async def test_the_installation_token_is_cached_and_renewed_before_it_expires(
    github: GitHubStandIn, keys: AppKeys
) -> None:
    now = [github.clock()]
    auth = AppInstallation(
        app_id=APP_ID,
        private_key=keys.private_pem,
        installation_id=INSTALLATION_ID,
        clock=lambda: now[0],
    )
    async with httpx.AsyncClient() as http:
        client = GitHubClient(http, base_url=github.base_url, auth=auth)
        first = await client.token()
        assert await client.token() == first and auth.exchanges == 1
        now[0] += 3600 - 200  # inside the renewal window
        assert await client.token() != first and auth.exchanges == 2


async def test_with_several_dependencies_it_stacks_on_the_one_github_says_is_unmerged(
    client: GitHubClient, github: GitHubStandIn, work: Path
) -> None:
    await ship(client, github, work)  # api: pull request 1
    commit_on_branch(work, "edge-worker/ENG-12-db", "db.py", "db = True\n")
    db = text.PullRequestFacts("ENG-12", "db", "Store the orders")
    await ship(client, github, work, branch="edge-worker/ENG-12-db", facts=db)  # 2
    dependencies = ["edge-worker/ENG-12-api", "edge-worker/ENG-12-db"]

    github.merge(OWNER, REPO, 2)  # the nearer one is merged: stack on the other
    chosen = await unmerged_dependency(client, config(github), dependencies)
    assert chosen == Dependency("edge-worker/ENG-12-api", merged=False)

    github.merge(OWNER, REPO, 1)
    assert await unmerged_dependency(client, config(github), dependencies) is None
    assert await unmerged_dependency(client, config(github), ["never-delivered"]) is None
    assert github.contract_violations == []
