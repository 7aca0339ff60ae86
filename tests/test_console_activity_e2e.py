"""The console's activity log against a real daemon in app mode: what the orchestration
said in the agent session (the stand-in received it) is on the issue's console page, in
order, with the run's progress under its run."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import SandboxWorld
from tests.support.console import TOKEN
from tests.support.e2e import running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def one_subtask_plan() -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] == "add-function"]
    return {"summary": plan["summary"], "subtasks": chosen}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world", plan=one_subtask_plan()) as started:
        yield started


def test_the_issue_page_shows_what_the_session_was_told(
    world: SandboxWorld, tmp_path: Path
) -> None:
    store = world.linear.store
    issue_id = world.new_issue()
    env = {"EDGE_WORKER_STRATEGY": "local-only", "EDGE_WORKER_CONSOLE__TOKEN": TOKEN}
    with running(world, tmp_path / "state", **env) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = str(created.payload["agentSession"]["id"])
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done", e2e.log()[-3000:]
        identifier = store.find_issue(issue_id).identifier
        page = httpx.get(
            f"{e2e.daemon.url}/console/issue/{identifier}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        ).text
    log = re.search(r'<ol class="log" id="activity-log">(.*?)</ol>', page, re.S)
    assert log, page[-3000:]
    shown = [
        (kind, html.unescape(body))
        for kind, body in re.findall(
            r'<li data-kind="(\w+)">.*?class="body">(.*?)</span></li>', log.group(1), re.S
        )
    ]
    said = [
        (str(a.content["type"]), str(a.content["body"]))
        for a in store.activities_of(session_id)
        if a.content.get("type") in ("response", "elicitation", "error")
    ]
    assert said and said[-1][0] == "response"
    for entry in said:  # every terminal or question activity the session got...
        assert entry in shown, (entry, shown)
    positions = [shown.index(entry) for entry in said]
    assert positions == sorted(positions)  # ... in the order the session got them
    assert re.search(r'<ol class="log" data-run="[^"]+">\s*<li data-kind=', page)
    assert f'href="{store.issue_url(store.find_issue(issue_id))}"' in page
