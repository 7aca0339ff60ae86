"""edge-worker as an MCP server, end to end: the official SDK's client drives the real
daemon (stand-ins of Linear and Anthropic, fake agent CLIs) over streamable HTTP with a
bearer token, and over stdio with ``edge-worker mcp`` spawned as a real subprocess.

create → status → result → feedback → stop, with a daemon crash and restart in the middle:
the work created through MCP is a Linear issue in the configured team, runs the durable
path (outbox, DBOS workflows), reports on the issue, and nothing is lost or done twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import E2E, running
from tests.support.mcp import call, http_client, stdio_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOKEN = "mcp-test-token-0123456789"
DESCRIPTION = "Calculator: add and multiply as two modules.\n\nBoth need type hints."
WAIT = 90.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    plan = demo_plan(sys.executable)
    plan["subtasks"] = plan["subtasks"][:2]  # add-function passes, multiply-function hangs
    with SandboxWorld(tmp_path / "world", plan=plan) as started:
        started.tasks["multiply-function"] = {"runs": [{"behaviour": "hang"}]}
        yield started


def mcp_env(world: SandboxWorld) -> dict[str, str]:
    return {
        "EDGE_WORKER_MCP__TOKEN": TOKEN,
        "EDGE_WORKER_MCP__TEAM_ID": world.linear.store.team.id,
        "EDGE_WORKER_MCP__REPOSITORIES": '["demo"]',
        "EDGE_WORKER_MCP__ALLOW_COMMANDS": "true",
    }


async def until(probe: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll the async ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")


async def flow(e2e: E2E, client: Client) -> None:
    """The whole delegation through ``client``; see the module docstring."""
    created = await call(
        client,
        "create_work",
        description=DESCRIPTION,
        repository="demo",
        strategy="local-only",
        request_id="req-1",
    )
    issue_id, ref = created["issue_id"], created["identifier"]
    issue = e2e.world.linear.store.find_issue(issue_id)
    assert issue.team_id == e2e.world.linear.store.team.id
    assert issue.description == DESCRIPTION.strip()
    again = await call(client, "create_work", description=DESCRIPTION, request_id="req-1")
    assert again["outcome"] == "duplicate" and again["issue_id"] == issue_id

    async def first_passed() -> dict[str, Any] | None:
        status = await call(client, "get_status", issue=ref)
        running_now = status["subtasks"].get("running", 0)
        return status if status["subtasks"].get("passed") == 1 and running_now else None

    status = await until(first_passed, "add-function passed while multiply-function runs")
    assert status["state"] not in ("passed", "failed", "stopped") and status["in_flight"]

    e2e.crash()
    e2e.restart()

    status = await until(first_passed, "the same progress after the restart")

    async def add_finished() -> dict[str, Any] | None:
        # The sub-task's row says "passed" a moment before its run workflow returns.
        result = await call(client, "get_result", issue=ref)
        runs = [run for run in result["runs"] if run["subtask"] == "add-function"]
        return result if runs and runs[-1]["status"] == "passed" else None

    result = await until(add_finished, "add-function's run recorded")
    add = [run for run in result["runs"] if run["subtask"] == "add-function"]
    assert len(add) == 1, result["runs"]  # not run again after the restart
    assert add[0]["executor"] == "claude-code"
    assert add[0]["evidence"] and all(check["passed"] for check in add[0]["evidence"])
    assert "from calc.add import add" in add[0]["evidence"][0]["command"]
    assert add[0]["cost"] is not None
    assert result["spend"]["usd"] != "0"

    checked = await call(client, "verify", issue=ref, subtask="add-function")
    assert checked["passed"] and checked["branch"] == add[0]["branch"]
    assert [c["command"] for c in checked["checks"]] == [add[0]["evidence"][0]["command"]]
    own = ["test -f calc/add.py", "test -f calc/multiply.py"]
    looked = await call(client, "verify", issue=ref, subtask="add-function", commands=own)
    assert [c["exit_code"] for c in looked["checks"]] == [0, 1]  # that branch, not another
    assert not looked["passed"]

    plan = json.loads(await resource(client, f"edge-worker://issue/{ref}/plan"))
    assert [task["key"] for task in plan["subtasks"]] == ["add-function", "multiply-function"]
    report = json.loads(await resource(client, f"edge-worker://issue/{ref}/report"))
    assert {run["subtask"] for run in report["runs"]} >= {"add-function"}

    sent = await call(client, "send_feedback", issue=ref, text="Use integers only.")
    assert sent["outcome"] == "accepted"
    await until(lambda: asyncio.to_thread(dispatched, e2e, "follow_up"), "the feedback dispatched")

    stopped = await call(client, "stop", issue=ref)
    assert stopped["outcome"] == "accepted"
    assert await asyncio.to_thread(e2e.wait_end, issue_id) == "stopped"
    final = await call(client, "get_status", issue=ref)
    assert final["state"] == "stopped" and not final["in_flight"]
    assert e2e.report_comments(issue_id), "no report on the Linear issue"
    starts = e2e.query("SELECT COUNT(*) FROM ew_webhook_events WHERE event_type = 'Mcp'")
    assert starts[0][0] == 3  # one start (the retry was a duplicate), one feedback, one stop


async def resource(client: Client, uri: str) -> str:
    found = await client.read_resource(uri)
    text = found.contents[0].text  # type: ignore[union-attr]
    return str(text)


def dispatched(e2e: E2E, kind: str) -> bool:
    rows = e2e.query(
        "SELECT workflow_id FROM ew_webhook_events WHERE event_type = 'Mcp' AND decision = ?",
        kind,
    )
    return bool(rows) and all(row[0] for row in rows)


def test_http_flow_survives_a_restart(world: SandboxWorld, tmp_path: Path) -> None:
    with running(world, tmp_path / "state", **mcp_env(world)) as e2e:

        async def main() -> None:
            async with http_client(e2e.daemon.url + "/mcp", TOKEN) as client:
                await flow(e2e, client)

        asyncio.run(main())


def test_stdio_flow_survives_a_daemon_restart(world: SandboxWorld, tmp_path: Path) -> None:
    with running(world, tmp_path / "state", **mcp_env(world)) as e2e:
        env = e2e.daemon.env

        async def main() -> None:
            async with stdio_client(env) as client:
                await flow(e2e, client)

        asyncio.run(main())
