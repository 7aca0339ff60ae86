"""GitHub webhooks about the daemon's pull requests, understood (payloads from the stand-in,
checked against ``shared/github/webhooks.json``)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_worker.delivery import text
from edge_worker.delivery.github_events import (
    PullRequestEvent,
    classify,
    signature_valid,
    sub_task_of,
)
from edge_worker.sandbox.github import GitHubStandIn
from tests.support.github import (
    OWNER,
    REPO,
    app_keys,
    commit_on_branch,
    served_github,
    work_repository,
)

pytestmark = pytest.mark.timeout(60)
TOKEN = "ghp_events"
BOT = "edge-worker[bot]"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubStandIn]:
    with served_github(tmp_path / "github", app_keys(), personal_token=TOKEN) as stand_in:
        work = work_repository(tmp_path / "work", stand_in.repository_path(OWNER, REPO))
        commit_on_branch(work, "edge-worker/ENG-12-api", "a.py", "a = 1\n")
        subprocess.run(
            [
                "git",
                "push",
                "-q",
                str(stand_in.repository_path(OWNER, REPO)),
                "edge-worker/ENG-12-api",
            ],
            cwd=work,
            check=True,
        )
        opened = httpx.post(
            f"{stand_in.base_url}/repos/{OWNER}/{REPO}/pulls",
            json={"title": "t", "head": "edge-worker/ENG-12-api", "base": "main", "body": "b"},
            headers={"Authorization": f"token {TOKEN}"},
        )
        assert opened.status_code == 201
        yield stand_in


def test_a_review_requesting_changes_is_feedback_naming_the_sub_task(github: GitHubStandIn) -> None:
    event, body = github.webhook("review", 1, body="Please handle the empty list.", login="alice")
    understood = classify(event, body, [BOT])
    assert understood.action == "feedback"
    assert (understood.issue_identifier, understood.key, understood.number) == ("ENG-12", "api", 1)
    assert understood.text.startswith("`api`: alice requested changes")
    assert "Please handle the empty list." in understood.text
    approved = classify(*github.webhook("review", 1, state="approved", body="ok"), [BOT])
    assert approved.action == "ignore"
    assert github.contract_violations == []


def test_a_review_comment_and_a_failing_check_are_feedback(github: GitHubStandIn) -> None:
    comment = classify(*github.webhook("review_comment", 1, body="off by one", path="a.py"), [BOT])
    assert (
        comment.action == "feedback" and "`a.py`" in comment.text and "off by one" in comment.text
    )
    check = classify(*github.webhook("check_failed", 1, name="tests", summary="2 failed"), [BOT])
    assert check.action == "feedback" and check.key == "api" and "`tests` failed" in check.text
    assert "2 failed" in check.text
    assert github.contract_violations == []


def test_merged_and_closed_unmerged_are_told_apart(github: GitHubStandIn) -> None:
    assert classify(*github.webhook("closed", 1, merged=True), [BOT]).action == "merged"
    assert classify(*github.webhook("closed", 1, merged=False), [BOT]).action == "closed"
    assert github.contract_violations == []


def test_the_daemons_own_events_and_other_branches_are_ignored(github: GitHubStandIn) -> None:
    own = classify(*github.webhook("review", 1, body="x", login=BOT), [BOT])
    assert own.action == "ignore" and "itself" in own.reason
    event, body = github.webhook("review", 1, body="x")
    body["pull_request"]["head"]["ref"] = "feature/other"
    assert classify(event, body, [BOT]).action == "ignore"
    assert sub_task_of("edge-worker/ENG-12-api") == ("ENG-12", "api")
    assert sub_task_of("edge-worker/ENG-12") is None


def test_the_signature_is_an_hmac_of_the_raw_body() -> None:
    body = b'{"action":"closed"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature_valid(b"s3cret", body, good)
    assert not signature_valid(b"s3cret", body + b" ", good)
    assert not signature_valid(b"other", body, good)
    assert not signature_valid(b"s3cret", body, None)
    assert not signature_valid(b"", body, good)


def test_a_close_names_the_sub_issue_its_marker_names_for_a_reused_sub_issue(
    github: GitHubStandIn,
) -> None:
    unmarked = classify(*github.webhook("closed", 1, merged=True), [BOT])
    assert unmarked.sub_issue_identifier is None  # the daemon's own id is used then
    [pull] = github.pulls[(OWNER, REPO)]
    pull.body = text.pull_request_body(text.PullRequestFacts("ENG-7", "api", "Reused"))

    closed = classify(*github.webhook("closed", 1, merged=False), [BOT])

    assert (closed.action, closed.issue_identifier) == ("closed", "ENG-12")
    assert closed.sub_issue_identifier == "ENG-7"
    assert text.marked_sub_issue(pull.body, "other-key") is None
    assert github.contract_violations == []


def test_feedback_on_a_per_issue_pull_request_goes_to_the_issue_naming_no_sub_task(
    github: GitHubStandIn,
) -> None:
    def on_issue_branch(kind: str, **fields: object) -> PullRequestEvent:
        event, body = github.webhook(kind, 1, **fields)
        if kind == "check_failed":
            body["check_run"]["pull_requests"][0]["head"]["ref"] = "edge-worker/ENG-12"
        else:
            body["pull_request"]["head"]["ref"] = "edge-worker/ENG-12"
        return classify(event, body, [BOT])

    merged = on_issue_branch("closed", merged=True)
    assert (merged.action, merged.issue_identifier, merged.key) == ("merged", "ENG-12", None)
    review = on_issue_branch("review", body="Name the module `calc`.")
    assert (review.action, review.issue_identifier, review.key) == ("feedback", "ENG-12", None)
    assert review.text.startswith("octocat requested changes on the issue's pull request")
    assert review.text.endswith("Name the module `calc`.")  # the reviewer's own words
    comment = on_issue_branch("review_comment", body="Typo.", path="calc/add.py")
    assert comment.action == "feedback" and "calc/add.py" in comment.text
    assert "`" not in comment.text  # names no sub-task by itself
    check = on_issue_branch("check_failed", name="ci", summary="2 failed")
    assert (check.action, check.issue_identifier, check.key) == ("feedback", "ENG-12", None)
    assert "The check ci failed" in check.text and "2 failed" in check.text
    approving = on_issue_branch("review", state="approved", body="LGTM")
    assert approving.action == "ignore"
    assert github.contract_violations == []
