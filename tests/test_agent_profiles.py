"""An issue's agent profile (model, tools, permission mode, prompt, MCP servers) reaches
each local CLI the way that CLI expects: the stand-in CLIs run as real executables and
record the argv and files they receive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_worker.agent_config import AgentProfile, McpServer
from edge_worker.executors.base import ExecutorUnavailable, RunStatus, Task, Usage
from edge_worker.executors.claude_code import ClaudeCodeExecutor
from edge_worker.executors.codex import CodexExecutor
from edge_worker.executors.gemini import GeminiExecutor
from edge_worker.executors.local_cli import LocalCliExecutor
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.fake_agents import FakeAgents
from edge_worker.settings import ClaudeSettings, CodexSettings, GeminiSettings
from tests.support.local_agents import CLI_TEST_SETTINGS, fake_state, git, init_repo, make_task

pytest_plugins = ("tests.support.local_agent_fixtures",)

SECRET = "s3cret-value-never-in-argv-or-files"
HEADER_SECRET = "Bearer header-secret-never-written"
COMMON = CLI_TEST_SETTINGS


def no_price(model: str | None, usage: Usage) -> float | None:
    return None


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("DB_URL", SECRET)
    monkeypatch.setenv("DOCS_AUTH", HEADER_SECRET)
    monkeypatch.setenv("NOT_NAMED_SECRET", "daemon-only-secret")
    dump = tmp_path / "env.json"
    scenario = {"runs": [{"edits": [{"path": "hello.txt", "content": "hello\n"}]}]}
    scenario["runs"][0]["dump_env"] = str(dump)
    monkeypatch.setenv("FAKE_AGENT_SCENARIO", json.dumps(scenario))
    return dump


SERVERS = {
    "db": McpServer(command="db-mcp", args=["--read-only"], env=["DB_URL"]),
    "docs": McpServer(url="https://docs.example.com/mcp", headers={"Authorization": "DOCS_AUTH"}),
}


def profiled_task(repo: Path, tmp_path: Path, **profile: Any) -> Task:
    template = tmp_path / "strict-builder.md"
    template.write_text("You are a careful builder.")
    values: dict[str, Any] = {
        "mcp_servers": SERVERS,
        "prompt_template": str(template),
        "append_instruction": "Run the linters first.",
    }
    values.update(profile)
    return make_task(repo, agent=AgentProfile(**values))


async def run(executor: LocalCliExecutor[Any], task: Task, state: str) -> dict[str, Any]:
    handle = await executor.start(task)
    result = await executor.follow(handle)
    assert result.status is RunStatus.SUCCEEDED, result.error
    workdir = Path(handle.workdir or "")
    # nothing of the daemon's was written into the worktree (the agent's edits are committed)
    assert git(workdir, "status", "--porcelain", "--ignored") == ""
    (call,) = fake_state(workdir, state)["calls"]
    call["workdir"] = str(workdir)
    call["model"] = result.model
    return call


def assert_no_secret(call: dict[str, Any], env_dump: Path) -> None:
    assert not any(SECRET in arg or "header-secret" in arg for arg in call["argv"])
    assert SECRET not in json.dumps({k: v for k, v in call.items() if k != "argv"})
    env = json.loads(env_dump.read_text())
    assert env["DB_URL"] == SECRET and env["DOCS_AUTH"] == HEADER_SECRET  # named: passed
    assert "NOT_NAMED_SECRET" not in env


async def test_claude_code_gets_an_mcp_config_file_model_tools_and_prompt(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, tmp_path: Path, secrets: Path
) -> None:
    executor = ClaudeCodeExecutor(
        ClaudeSettings(binary=str(fakes.claude), model="claude-sonnet-4-5", **COMMON), worktrees
    )
    task = profiled_task(
        repo,
        tmp_path,
        model="claude-opus-4-5",
        allowed_tools=["Read", "Edit"],
        disallowed_tools=["WebFetch"],
        permission_mode="bypassPermissions",
    )
    call = await run(executor, task, "fake-claude-state.json")
    argv = call["argv"]
    assert argv[argv.index("--model") + 1] == "claude-opus-4-5"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Edit"
    assert argv[argv.index("--disallowedTools") + 1] == "WebFetch"
    assert argv[argv.index("--permission-mode") + 1] == "bypassPermissions"
    assert "--strict-mcp-config" in argv
    system = argv[argv.index("--append-system-prompt") + 1]
    assert system == "You are a careful builder.\n\nRun the linters first."
    (config,) = call["mcp_configs"]
    assert config == {
        "mcpServers": {
            "db": {"command": "db-mcp", "args": ["--read-only"], "env": {"DB_URL": "${DB_URL}"}},
            "docs": {
                "type": "http",
                "url": "https://docs.example.com/mcp",
                "headers": {"Authorization": "${DOCS_AUTH}"},
            },
        }
    }
    config_path = Path(argv[argv.index("--mcp-config") + 1])
    assert not config_path.is_relative_to(Path(call["workdir"]))
    assert config_path.stat().st_mode & 0o077 == 0
    assert_no_secret(call, secrets)


async def test_codex_gets_a_codex_home_config_model_and_sandbox(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, tmp_path: Path, secrets: Path
) -> None:
    executor = CodexExecutor(
        CodexSettings(binary=str(fakes.codex), model="gpt-5-codex", **COMMON),
        worktrees,
        pricer=no_price,
    )
    task = profiled_task(repo, tmp_path, model="gpt-5.1-codex", permission_mode="read-only")
    call = await run(executor, task, "fake-codex-state.json")
    argv = call["argv"]
    assert argv[argv.index("--model") + 1] == "gpt-5.1-codex"
    assert argv[argv.index("--sandbox") + 1] == "read-only"
    assert call["prompt"].startswith("You are a careful builder.\n\nRun the linters first.")
    assert call["model"] == "gpt-5.1-codex"  # priced as the model that ran
    assert call["config"] == {
        "mcp_servers": {
            "db": {"command": "db-mcp", "args": ["--read-only"], "env_vars": ["DB_URL"]},
            "docs": {
                "url": "https://docs.example.com/mcp",
                "env_http_headers": {"Authorization": "DOCS_AUTH"},
            },
        }
    }
    assert not Path(call["codex_home"]).is_relative_to(Path(call["workdir"]))
    assert_no_secret(call, secrets)


async def test_gemini_gets_mcp_servers_in_its_settings_file_model_tools_and_mode(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, tmp_path: Path, secrets: Path
) -> None:
    executor = GeminiExecutor(
        GeminiSettings(binary=str(fakes.gemini), model="gemini-2.5-pro", **COMMON),
        worktrees,
        pricer=no_price,
    )
    task = profiled_task(
        repo,
        tmp_path,
        model="gemini-2.5-flash",
        allowed_tools=["read_file", "run_shell_command"],
        permission_mode="auto_edit",
    )
    call = await run(executor, task, "fake-gemini-state.json")
    argv = call["argv"]
    assert argv[argv.index("--model") + 1] == "gemini-2.5-flash"
    assert argv[argv.index("--allowed-tools") + 1] == "read_file,run_shell_command"
    assert argv[argv.index("--approval-mode") + 1] == "auto_edit"
    assert call["prompt"].startswith("You are a careful builder.\n\nRun the linters first.")
    assert call["model"] == "gemini-2.5-flash"
    assert call["settings"]["mcpServers"] == {
        "db": {"command": "db-mcp", "args": ["--read-only"], "env": {"DB_URL": "$DB_URL"}},
        "docs": {
            "httpUrl": "https://docs.example.com/mcp",
            "headers": {"Authorization": "$DOCS_AUTH"},
        },
    }
    assert_no_secret(call, secrets)


async def test_a_repositorys_mcp_json_is_honoured_only_when_allowed_and_named(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, tmp_path: Path
) -> None:
    (repo / ".mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "local": {
                        "command": "local-mcp",
                        "env": {"DB_URL": "${DB_URL}", "LEAK": "${NOT_NAMED_SECRET}"},
                    }
                }
            }
        )
    )
    git(repo, "add", ".mcp.json")
    git(repo, "commit", "-q", "-m", "mcp")
    executor = GeminiExecutor(
        GeminiSettings(binary=str(fakes.gemini), **COMMON), worktrees, pricer=no_price
    )
    allowed = make_task(repo, agent=AgentProfile(repository_mcp_json=True, pass_env=["DB_URL"]))
    call = await run(executor, allowed, "fake-gemini-state.json")
    assert call["settings"]["mcpServers"] == {
        "local": {"command": "local-mcp", "args": [], "env": {"DB_URL": "$DB_URL"}}
    }

    other = tmp_path / "other"
    init_repo(other)
    (other / ".mcp.json").write_text(json.dumps({"mcpServers": {"x": {"command": "x"}}}))
    git(other, "add", ".mcp.json")
    git(other, "commit", "-q", "-m", "mcp")
    refused = make_task(other, key="other", agent=AgentProfile(model="gemini-2.5-pro"))
    call = await run(executor, refused, "fake-gemini-state.json")
    assert "mcpServers" not in call["settings"]


async def test_an_unreadable_prompt_template_is_a_clear_unavailability(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path, tmp_path: Path
) -> None:
    executor = GeminiExecutor(
        GeminiSettings(binary=str(fakes.gemini), **COMMON), worktrees, pricer=no_price
    )
    task = make_task(repo, agent=AgentProfile(prompt_template=str(tmp_path / "missing.md")))
    with pytest.raises(ExecutorUnavailable, match="prompt template cannot be read"):
        await executor.start(task)


async def test_a_permission_mode_the_cli_does_not_know_is_a_clear_unavailability(
    fakes: FakeAgents, worktrees: WorktreeManager, repo: Path
) -> None:
    executor = GeminiExecutor(
        GeminiSettings(binary=str(fakes.gemini), **COMMON), worktrees, pricer=no_price
    )
    task = make_task(repo, agent=AgentProfile(permission_mode="acceptEdits"))
    with pytest.raises(ExecutorUnavailable) as raised:
        await executor.start(task)
    assert raised.value.reason == (
        "the agent configuration's permission_mode does not suit this CLI"
    )
