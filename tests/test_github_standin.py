"""The GitHub stand-in keeps GitHub's documented contract and refuses what GitHub refuses."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.routing import Route

from edge_worker.sandbox import github_schema
from edge_worker.sandbox.github import GitHubStandIn
from tests.support.github import (
    APP_ID,
    INSTALLATION_ID,
    OWNER,
    REPO,
    AppKeys,
    app_keys,
    served_github,
    work_repository,
)

pytest_plugins = ("tests.support.github_fixtures",)
pytestmark = pytest.mark.timeout(60)
TOKEN = "ghp_standin_personal"


@pytest.fixture
def github(tmp_path: Path, keys: AppKeys) -> Iterator[GitHubStandIn]:
    with served_github(
        tmp_path / "github", keys, installation_id=INSTALLATION_ID, personal_token=TOKEN
    ) as stand_in:
        yield stand_in


def app_jwt(private_pem: str, issuer: str = APP_ID) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": issuer}, private_pem, "RS256")


def test_every_served_api_path_is_one_github_documents(github: GitHubStandIn) -> None:
    paths = github_schema.load_github_spec()["paths"]
    served = [
        re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        for route in github.app.routes
        if isinstance(route, Route) and not route.path.endswith("{rest:path}")
    ]
    renamed = [
        path.replace("{number}", "{issue_number}" if "/issues/" in path else "{pull_number}")
        for path in served
    ]
    assert renamed and all(path in paths for path in renamed), renamed


def test_a_request_body_outside_the_schema_is_refused_and_recorded(github: GitHubStandIn) -> None:
    answer = httpx.post(
        f"{github.base_url}/repos/{OWNER}/{REPO}/pulls",
        json={"title": 5, "head": "x"},
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert answer.status_code == 422
    assert any("title" in v and "base" in v for v in github.contract_violations)


def test_bad_credentials_get_401_and_every_answer_has_rate_limit_headers(
    github: GitHubStandIn,
) -> None:
    answer = httpx.get(
        f"{github.base_url}/repos/{OWNER}/{REPO}/pulls",
        headers={"Authorization": "token ghp_wrong"},
    )
    assert answer.status_code == 401
    assert answer.headers["X-RateLimit-Limit"] == "5000"
    assert "X-RateLimit-Remaining" in answer.headers and "X-RateLimit-Reset" in answer.headers


def test_the_token_endpoint_wants_a_jwt_signed_by_the_apps_key(
    github: GitHubStandIn, keys: AppKeys
) -> None:
    url = f"{github.base_url}/app/installations/{INSTALLATION_ID}/access_tokens"
    forged = app_jwt(app_keys().private_pem)
    assert httpx.post(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    good = httpx.post(url, headers={"Authorization": f"Bearer {app_jwt(keys.private_pem)}"})
    assert good.status_code == 201 and good.json()["token"].startswith("ghs_")
    listed = httpx.get(
        f"{github.base_url}/repos/{OWNER}/{REPO}/pulls",
        headers={"Authorization": f"token {good.json()['token']}"},
    )
    assert listed.status_code == 200 and listed.json() == []
    assert github.contract_violations == []


def test_git_without_credentials_is_challenged_and_pushes_nothing(
    github: GitHubStandIn, tmp_path: Path
) -> None:
    repo = work_repository(tmp_path / "work", github.repository_path(OWNER, REPO))
    subprocess.run(["git", "checkout", "-q", "-b", "topic"], cwd=repo, check=True)
    done = subprocess.run(
        ["git", "-c", "credential.helper=", "push", github.clone_url(OWNER, REPO), "topic"],
        cwd=repo,
        capture_output=True,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )
    assert done.returncode != 0
    assert github.git_auth_refusals >= 1 and github.git_auth_uses == 0
    assert github.head_sha(OWNER, REPO, "topic") is None
