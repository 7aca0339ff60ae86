"""The MCP server's checks and records (sans-I/O), and its refusals over stdio with
``edge-worker mcp`` spawned as a real subprocess."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from edge_worker.mcp import requests, texts
from edge_worker.mcp.config import McpConfigError, McpSettings
from edge_worker.mcp.http import MISSING_TOKEN, WRONG_TOKEN, token_problem
from edge_worker.settings import Repository, Settings
from tests.support.mcp import stdio_client


def settings(allowed: list[str] | None = None) -> Settings:
    repos = [Repository(id="web", path=Path("/tmp/web")), Repository(id="api", path=Path("/x"))]
    return Settings(repositories=repos, mcp={"repositories": allowed or []})


def test_a_repository_must_be_configured_and_allowed() -> None:
    assert requests.check_repository(settings(), None) is None
    assert requests.check_repository(settings(), "api") is None
    unknown = requests.check_repository(settings(), "nope")
    assert unknown == texts.UNKNOWN_REPOSITORY.format(repo="nope", known="web, api")
    refused = requests.check_repository(settings(["web"]), "api")
    assert refused == texts.REPOSITORY_NOT_ALLOWED.format(repo="api", allowed="web")


def test_exactly_one_source_of_work() -> None:
    assert requests.check_source("Fix the login", None) is None
    assert requests.check_source(None, "ENG-1") is None
    assert requests.check_source("Fix", "ENG-1") == texts.NEED_ONE_SOURCE
    assert requests.check_source(None, None) == texts.NEED_ONE_SOURCE
    assert requests.check_source(" \n", None) == texts.EMPTY_TEXT.format(field="description")


def test_the_team_must_be_allowed() -> None:
    open_to_all = Settings()
    assert requests.check_team(open_to_all, "OPS-1", "t-ops", "OPS") is None
    only_eng = Settings(allowed_teams=["ENG"])
    assert requests.check_team(only_eng, "ENG-1", "t-eng", "ENG") is None
    assert requests.check_team(only_eng, "OPS-1", "t-ops", "OPS") == texts.TEAM_NOT_ALLOWED.format(
        ref="OPS-1", team="OPS"
    )


def test_title_and_issue_id_of_new_work() -> None:
    assert requests.title_of("Fix the login\n\nDetails", None) == "Fix the login"
    assert requests.title_of("x", "  Given  ") == "Given"
    long = requests.title_of("y" * 200, None)
    assert len(long) == requests.TITLE_LENGTH and long.endswith("…")
    assert requests.new_issue_id("r1") == requests.new_issue_id("r1")
    assert requests.new_issue_id("r1") != requests.new_issue_id("r2")


def test_a_retried_request_has_the_same_dedupe_key() -> None:
    def record(request_id: str) -> str | None:
        return requests.start_record(
            request_id=request_id,
            issue_id="i",
            identifier="ENG-1",
            team_id="t",
            repository="web",
            strategy="local-only",
        ).dedupe_key

    assert record("a") == record("a") != record("b")
    start = requests.start_record(
        request_id="a",
        issue_id="i",
        identifier="ENG-1",
        team_id="t",
        repository="web",
        strategy=None,
    )
    assert start.decision == "start" and start.detail is not None
    assert start.detail["repository"] == "web" and "strategy" not in start.detail
    stop = requests.control_record(request_id="a", kind="stop", issue_id="i", identifier="ENG-1")
    assert stop.decision == "stop" and stop.dedupe_key != start.dedupe_key


def test_bearer_token_checks() -> None:
    assert token_problem("s3cret", "Bearer s3cret") is None
    assert token_problem("s3cret", None) == MISSING_TOKEN
    assert token_problem("s3cret", "Basic s3cret") == MISSING_TOKEN
    assert token_problem("s3cret", "Bearer ") == MISSING_TOKEN
    assert token_problem("s3cret", "Bearer other") == WRONG_TOKEN


@pytest.mark.timeout(60)
def test_stdio_refuses_bad_calls_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "edge-worker.toml"
    config.write_text('[[repositories]]\nid = "demo"\npath = "/tmp/demo"\n')
    env = {
        "EDGE_WORKER_STATE_DIR": str(tmp_path),
        "EDGE_WORKER_CONFIG": str(config),
        "EDGE_WORKER_LINEAR__API_URL": "http://127.0.0.1:9/graphql",  # never reached
        "EDGE_WORKER_LINEAR__API_KEY": "lin_api_test",
    }

    async def main() -> list[MCPError]:
        errors = []
        async with stdio_client(env) as client:
            for tool, arguments in [
                ("no_such_tool", {}),
                ("create_work", {"description": "Fix it", "repository": "other"}),
                ("create_work", {"description": "Fix it"}),  # no team configured
            ]:
                with pytest.raises(MCPError) as caught:
                    await client.call_tool(tool, arguments)
                errors.append(caught.value)
        return errors

    unknown, repository, no_team = asyncio.run(main())
    assert all(e.code == INVALID_PARAMS for e in (unknown, repository, no_team))
    assert "Unknown tool 'no_such_tool'" in unknown.message
    assert repository.message == texts.UNKNOWN_REPOSITORY.format(repo="other", known="demo")
    assert no_team.message == texts.NO_TEAM
    with sqlite3.connect(tmp_path / "edge-worker.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM ew_webhook_events").fetchone() == (0,)


def test_the_mcp_token_comes_from_the_env_or_a_file_and_is_long_enough(tmp_path: Path) -> None:
    assert McpSettings().bearer_token() is None  # no token: no endpoint
    assert McpSettings(token="t" * 16).bearer_token() == "t" * 16
    token_file = tmp_path / "token"
    token_file.write_text("f" * 20 + "\n")
    both = McpSettings(token="t" * 16, token_file=token_file)
    assert both.bearer_token() == "f" * 20  # the file wins
    with pytest.raises(McpConfigError, match=r"EDGE_WORKER_MCP__TOKEN: .* at least 16"):
        McpSettings(token="short").bearer_token()
    with pytest.raises(McpConfigError, match="EDGE_WORKER_MCP__TOKEN_FILE: cannot read"):
        McpSettings(token_file=tmp_path / "missing").bearer_token()
