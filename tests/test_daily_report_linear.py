"""The daily report posted on Linear where configured: once per day and issue as a comment,
once per day and team as a document, over real HTTP against the Linear stand-in
(schema-validated), and by the real daemon across a restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from edge_worker.linear.client import LinearClient
from edge_worker.linear.errors import LinearError
from edge_worker.reporting.daily_report_post import (
    CHECKED_EVENT,
    DOCUMENT_EVENT,
    POSTED_EVENT,
    post_document,
    post_report,
    report_comment_id,
    report_document_id,
    report_document_title,
)
from edge_worker.sandbox.linear import LinearStandIn
from edge_worker.sandbox.world import SandboxWorld
from tests.support.daemon import log_events
from tests.support.e2e import running, wait_until

pytest_plugins = ("tests.support.linear_fixtures",)

DAY = date(2026, 3, 1)


async def test_the_report_comment_is_posted_once_per_day_and_issue(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    issue = standin.store.add_issue("Daily reports")
    client = make_client()
    first = await post_report(client, issue.identifier, DAY, "# Report of 2026-03-01")
    again = await post_report(client, issue.identifier, DAY, "# Report of 2026-03-01")
    assert first == again == report_comment_id(DAY, issue.identifier)  # a repeat finds it
    await post_report(client, issue.identifier, date(2026, 3, 2), "# Report of 2026-03-02")
    bodies = [c.body for c in standin.store.comments_on(issue.id)]
    assert bodies == ["# Report of 2026-03-01", "# Report of 2026-03-02"]


async def test_an_unknown_issue_is_a_clear_error_and_posts_nothing(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    with pytest.raises(LinearError):
        await post_report(make_client(), "NOPE-404", DAY, "# Report")
    assert not standin.store.comments


async def test_the_report_document_is_created_once_per_day_and_team(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    team = standin.store.team
    client = make_client()
    first = await post_document(client, team.key, DAY, "# Report of 2026-03-01")
    again = await post_document(client, team.key, DAY, "# Report of 2026-03-01")
    assert first == again == report_document_id(DAY, team.key)  # a repeat finds it
    await post_document(client, team.id, DAY, "# Same day, team given by id")
    documents = standin.store.documents_in(team.id)
    assert [(d.title, d.content) for d in documents] == [
        ("edge-worker daily report 2026-03-01", "# Report of 2026-03-01"),
        ("edge-worker daily report 2026-03-01", "# Same day, team given by id"),
    ]
    assert documents[1].id == report_document_id(DAY, team.id)


async def test_an_unknown_team_is_a_clear_error_and_creates_nothing(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    with pytest.raises(LinearError):
        await post_document(make_client(), "NOPE", DAY, "# Report")
    assert not standin.store.documents


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world") as started:
        yield started


def _printed_report(env: dict[str, str], day: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "edge_worker.cli", "report", "--day", day],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_the_daemon_posts_yesterdays_report_once_across_a_crash(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """Comment and document both configured: each once, also after a crash."""
    issue = world.linear.store.add_issue("Daily reports")
    team = world.linear.store.team
    env = {
        "EDGE_WORKER_CONSOLE__REPORT_LINEAR_ISSUE": issue.identifier,
        "EDGE_WORKER_CONSOLE__REPORT_LINEAR_TEAM": team.key,
        "EDGE_WORKER_LOG_LEVEL": "debug",
    }
    with running(world, tmp_path / "state", **env) as e2e:
        wait_until(lambda: len(log_events(e2e.log(), CHECKED_EVENT)) == 1, 60)
        day = log_events(e2e.log(), POSTED_EVENT)[0]["day"]
        printed = _printed_report(e2e.daemon.env, day).strip()
        comments = world.linear.store.comments_on(issue.id)
        assert [c.body.strip() for c in comments] == [printed]
        documents = world.linear.store.documents_in(team.id)
        assert [(d.title, (d.content or "").strip()) for d in documents] == [
            (report_document_title(date.fromisoformat(day)), printed)
        ]
        e2e.daemon.kill()  # a crash; the new daemon appends to the same log file
        e2e.restart()
        wait_until(lambda: len(log_events(e2e.log(), CHECKED_EVENT)) == 2, 60)
        assert len(world.linear.store.comments_on(issue.id)) == 1  # not posted again
        assert len(world.linear.store.documents_in(team.id)) == 1  # not created again
        assert len(log_events(e2e.log(), POSTED_EVENT)) == 1
        assert len(log_events(e2e.log(), DOCUMENT_EVENT)) == 1


def test_with_only_a_team_the_daemon_creates_the_document_and_no_comment(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue = world.linear.store.add_issue("Not a report issue")
    team = world.linear.store.team
    env = {"EDGE_WORKER_CONSOLE__REPORT_LINEAR_TEAM": team.key, "EDGE_WORKER_LOG_LEVEL": "debug"}
    with running(world, tmp_path / "state", **env) as e2e:
        wait_until(lambda: log_events(e2e.log(), CHECKED_EVENT), 60)
        day = log_events(e2e.log(), DOCUMENT_EVENT)[0]["day"]
        printed = _printed_report(e2e.daemon.env, day).strip()
        documents = world.linear.store.documents_in(team.id)
        assert [(d.content or "").strip() for d in documents] == [printed]
        assert documents[0].id == report_document_id(date.fromisoformat(day), team.key)
        assert not world.linear.store.comments_on(issue.id)
        assert not log_events(e2e.log(), POSTED_EVENT)
