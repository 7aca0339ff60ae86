"""Bad input to edge-worker's MCP server over HTTP, against the real daemon: a missing or
wrong token, a malformed request, an unknown tool, arguments that do not fit, a
repository the caller may not use. Each is a JSON-RPC error with a clear message, and
nothing is started (no outbox row, no Linear issue)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from starlette.testclient import TestClient

from edge_worker.app import build_app
from edge_worker.mcp import http as mcp_http
from edge_worker.sandbox.world import SandboxWorld
from edge_worker.settings import Settings
from tests.support.e2e import E2E, running
from tests.support.mcp import http_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "mcp-test-token-0123456789"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    root = tmp_path_factory.mktemp("mcp-bad-input")
    with SandboxWorld(root / "world") as world:
        env = {
            "EDGE_WORKER_MCP__TOKEN": TOKEN,
            "EDGE_WORKER_MCP__TEAM_ID": world.linear.store.team.id,
            "EDGE_WORKER_MCP__REPOSITORIES": '["demo"]',
        }
        with running(world, root / "state", **env) as e2e:
            yield e2e


def nothing_started(e2e: E2E, issues_before: int) -> None:
    assert e2e.query("SELECT COUNT(*) FROM ew_webhook_events")[0][0] == 0
    assert len(e2e.world.linear.store.issues) == issues_before


def post(e2e: E2E, body: bytes, token: str | None = TOKEN) -> httpx.Response:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(e2e.daemon.url + "/mcp", content=body, headers=headers, timeout=10)


LIST_TOOLS = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}'


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, mcp_http.MISSING_TOKEN), ("not-the-token", mcp_http.WRONG_TOKEN)],
)
def test_missing_or_wrong_token_is_a_json_rpc_error(
    daemon: E2E, token: str | None, message: str
) -> None:
    response = post(daemon, LIST_TOOLS, token=token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == {"code": mcp_http.UNAUTHORIZED_CODE, "message": message}


def test_the_right_token_lists_the_tools(daemon: E2E) -> None:
    async def main() -> list[str]:
        async with http_client(daemon.daemon.url + "/mcp", TOKEN) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    names = asyncio.run(main())
    assert set(names) == {
        "create_work",
        "get_status",
        "get_result",
        "verify",
        "send_feedback",
        "stop",
    }


@pytest.mark.parametrize(
    ("body", "code"),
    # The SDK answers a well-formed JSON value that is no JSON-RPC message as invalid params.
    [(b"{not json", -32700), (b'{"jsonrpc": "2.0", "id": 1}', -32602), (b"[1, 2]", -32602)],
)
def test_a_malformed_request_is_a_json_rpc_error(daemon: E2E, body: bytes, code: int) -> None:
    before = len(daemon.world.linear.store.issues)
    response = post(daemon, body)
    assert 400 <= response.status_code < 500
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    nothing_started(daemon, before)


async def refused(e2e: E2E, tool: str, arguments: dict[str, Any]) -> MCPError:
    async with http_client(e2e.daemon.url + "/mcp", TOKEN) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool(tool, arguments)
    return caught.value


@pytest.mark.parametrize(
    ("tool", "arguments", "words"),
    [
        ("launch_rockets", {}, "Unknown tool 'launch_rockets'"),
        ("create_work", {"description": "x", "repository": "secret-repo"}, "not configured"),
        ("create_work", {"description": "Fix it", "strategy": "fastest"}, "strategy"),
        ("create_work", {"description": "Fix it", "issue": "ENG-1"}, "exactly one"),
        ("create_work", {}, "exactly one"),
        ("create_work", {"description": "   "}, "description is empty"),
        ("create_work", {"issue": "ENG-999"}, "Linear has no issue ENG-999"),
        ("get_status", {}, "issue"),
        ("stop", {"issue": "ENG-404"}, "No work on issue ENG-404"),
        ("verify", {"issue": "ENG-404", "subtask": "a"}, "No work on issue ENG-404"),
        ("verify", {"issue": "ENG-1", "subtask": "a", "commands": ["id"]}, "ALLOW_COMMANDS"),
        ("send_feedback", {"issue": "ENG-404", "text": "hi"}, "No work on issue ENG-404"),
    ],
)
def test_bad_calls_are_json_rpc_errors_and_start_nothing(
    daemon: E2E, tool: str, arguments: dict[str, Any], words: str
) -> None:
    before = len(daemon.world.linear.store.issues)
    error = asyncio.run(refused(daemon, tool, arguments))
    assert error.code == INVALID_PARAMS
    assert words in error.message
    nothing_started(daemon, before)


def test_a_configured_repository_outside_the_allowed_list_is_refused(
    tmp_path: Path,
) -> None:
    with SandboxWorld(tmp_path / "world") as world:
        env = {"EDGE_WORKER_MCP__TOKEN": TOKEN, "EDGE_WORKER_MCP__REPOSITORIES": '["other"]'}
        with running(world, tmp_path / "state", **env) as e2e:
            before = len(world.linear.store.issues)
            issue = world.linear.store.find_issue(world.new_issue())
            arguments = {"issue": issue.identifier, "repository": "demo"}
            error = asyncio.run(refused(e2e, "create_work", arguments))
            assert "may not be used through MCP" in error.message
            nothing_started(e2e, before + 1)


def test_without_a_token_there_is_no_endpoint(tmp_path: Path) -> None:
    app = build_app(Settings(state_dir=tmp_path))  # routes only: no lifespan is run
    response = TestClient(app).post("/mcp", content=LIST_TOOLS)
    assert response.status_code == 404


def test_before_the_daemon_started_the_endpoint_says_so(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, mcp={"token": TOKEN})
    app = build_app(settings)  # routes only: the lifespan (which serves MCP) is not run
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    response = TestClient(app).post("/mcp", content=LIST_TOOLS, headers=headers)
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": mcp_http.UNAVAILABLE_CODE,
        "message": mcp_http.NOT_SERVING,
    }
