"""Pausing intake from the console, end to end: the real daemon keeps storing and
answering webhooks, holds the work they would start, lets running work be steered, and
starts what it held when intake is resumed; once, however often the delegation's
triggers arrived."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_worker.console import intake_controls
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import SandboxWorld
from edge_worker.storage.intake_pause import HELD_WORKFLOW_ID
from tests.support.e2e import E2E, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "operator-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
ENV = {
    "EDGE_WORKER_STRATEGY": "local-only",
    "EDGE_WORKER_CONSOLE__TOKEN": TOKEN,
    "EDGE_WORKER_CONSOLE__VIEWER_TOKEN": VIEWER,
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] == "add-function"]
    with SandboxWorld(tmp_path / "world", plan={**plan, "subtasks": chosen}) as started:
        yield started


def control(e2e: E2E, action: str, token: str = TOKEN) -> httpx.Response:
    """Post the intake form of the *Now* page, with the hidden fields it was rendered with
    for an operator (the viewer's post reuses them: a viewer gets no form of its own)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    page = httpx.get(f"{e2e.daemon.url}/console/", headers=auth).text
    form = re.search(r'<form [^>]*id="intake-form"[^>]*>(.*?)</form>', page, re.S)
    assert form, page
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form[1]))
    return httpx.post(
        f"{e2e.daemon.url}/console/intake/{action}",
        data=fields,
        headers={"Authorization": f"Bearer {token}"},
        follow_redirects=False,
    )


def held(e2e: E2E) -> list[tuple[Any, ...]]:
    return e2e.query("SELECT seq FROM ew_webhook_events WHERE workflow_id = ?", HELD_WORKFLOW_ID)


def test_paused_intake_holds_new_work_and_resuming_starts_it_once(
    world: SandboxWorld, tmp_path: Path
) -> None:
    with running(world, tmp_path / "state", **ENV) as e2e:
        assert control(e2e, "pause", token=VIEWER).status_code == 403  # read-only
        assert control(e2e, "pause").status_code == 303
        page = httpx.get(
            f"{e2e.daemon.url}/console/", headers={"Authorization": f"Bearer {TOKEN}"}
        ).text
        assert 'data-paused="1"' in page and "Resume intake" in page
        twice = control(e2e, "pause")
        assert twice.status_code == 409 and intake_controls.ALREADY_PAUSED in twice.text
        assert control(e2e, "resume").status_code == 303
        assert control(e2e, "pause").status_code == 303

        issue_id = world.new_issue()
        deliveries = world.linear.delegation(issue_id)
        for delivery in deliveries:
            assert e2e.send(delivery).status_code == 200  # stored and answered
        wait_until(lambda: len(held(e2e)) >= 1, timeout=30)
        session_id = str(deliveries[0].payload["agentSession"]["id"])
        assert world.linear.store.activities_of(session_id), "the session went unanswered"
        assert e2e.work_state(issue_id) is None  # nothing started
        assert world.linear.store.children_of(issue_id) == []

        assert control(e2e, "resume").status_code == 303
        assert e2e.wait_end(issue_id) == "done"
        assert held(e2e) == []
        assert len(world.linear.store.children_of(issue_id)) == 1  # one piece of work
        identifier = world.linear.store.find_issue(issue_id).identifier
        assert len(e2e.agent_calls(identifier, "add-function")) == 1
        outcomes = e2e.query("SELECT action, outcome FROM ew_console_audit ORDER BY id")
        assert outcomes.count((intake_controls.PAUSE_ACTION, "refused")) == 2  # viewer, twice
        assert outcomes.count((intake_controls.RESUME_ACTION, "done")) == 2
        assert "new work held" in e2e.log()


def test_a_stop_handled_before_its_held_start_keeps_the_start_from_running(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """The stop race the soak found, made deterministic: intake holds the delegation's
    starts but passes its stop, so the stop is handled first and finds nothing running.
    Resuming must not start the stopped work: the stop's answer stays the session's last
    activity, and no sub-issue, agent run or report appears."""
    with running(world, tmp_path / "state", **ENV) as e2e:
        assert control(e2e, "pause").status_code == 303
        issue_id = world.new_issue()
        deliveries = world.linear.delegation(issue_id)
        for delivery in deliveries:
            assert e2e.send(delivery).status_code == 200
        wait_until(lambda: len(held(e2e)) >= 1, timeout=30)
        session_id = str(deliveries[0].payload["agentSession"]["id"])
        store = world.linear.store

        def said() -> list[Any]:
            return [a for a in store.activities_of(session_id) if a.content["type"] != "prompt"]

        assert e2e.send(world.linear.agent_session_prompted(session_id, "stop", signal="stop"))
        final = wait_until(
            lambda: [a for a in said() if a.content["type"] == "response"], timeout=60
        )
        assert len(final) == 1 and "Stopped" in final[0].content["body"]
        held_count = len(held(e2e))

        assert control(e2e, "resume").status_code == 303
        wait_until(lambda: held(e2e) == [], timeout=60)
        # Every trigger the resume put back has run to its end.
        wait_until(
            lambda: (
                len(e2e.workflows("trigger-")) >= held_count + 1
                and all(status == "SUCCESS" for _, status in e2e.workflows("trigger-"))
            ),
            timeout=60,
        )
        assert e2e.work_state(issue_id) in (None, "stopped")
        assert said()[-1].id == final[0].id, [a.content for a in said()]
        assert [a.content["type"] for a in said()].count("response") == 1
        assert store.children_of(issue_id) == []
        identifier = store.find_issue(issue_id).identifier
        assert e2e.agent_calls(identifier, "add-function") == []
        assert e2e.report_comments(issue_id) == []
