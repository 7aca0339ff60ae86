"""Claude Code, run locally in the sub-task's worktree (executor name ``claude-code``).

Contract: runs ``<binary> -p PROMPT --output-format stream-json --verbose`` with
``--permission-mode`` (default ``acceptEdits``), ``--model``, ``--max-turns`` (the task's
limit, else the configured one), ``--max-budget-usd`` (the task's ``limits.max_usd``),
``--allowedTools`` / ``--disallowedTools`` (comma-joined) and ``--append-system-prompt``
(the role prompt), in the worktree; ``--resume <session id>`` for feedback. The task's
agent profile overrides model, tools and permission mode; its MCP servers go in a
``--mcp-config`` file (with ``--strict-mcp-config``) in the worktree's private git dir.
The result is parsed by :mod:`edge_worker.executors.claude_stream`; the cost is
``total_cost_usd`` as the CLI reported it. Everything else (worktree, supervision,
transcript, verification, cancel) is :class:`~edge_worker.executors.local_cli.LocalCliExecutor`.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_worker.executors.agent_files import (
    claude_mcp_config,
    mcp_servers_for,
    with_profile,
    write_private,
)
from edge_worker.executors.base import RunHandle, RunResult, Task
from edge_worker.executors.claude_stream import ClaudeStreamParser, claude_run_result
from edge_worker.executors.local_cli import ArgvRequest, LocalCliExecutor, Prepared
from edge_worker.executors.stream_types import Ending, StreamParser
from edge_worker.executors.task_prompt import as_positional
from edge_worker.settings import ClaudeSettings


def claude_argv(
    settings: ClaudeSettings, task: Task, *, prompt: str, resume_session: str | None = None
) -> list[str]:
    """The Claude Code command line for ``task`` (pure)."""
    # The prompt goes right after -p (a flag): a positional after a variadic option such
    # as --allowedTools would be swallowed by it.
    argv = [
        settings.binary,
        "-p",
        as_positional(prompt),
        "--output-format",
        "stream-json",
        "--verbose",
    ]
    argv += ["--permission-mode", settings.permission_mode]
    if resume_session:
        argv += ["--resume", resume_session]
    if settings.model:
        argv += ["--model", settings.model]
    max_turns = task.limits.max_turns or settings.max_turns
    if max_turns:
        argv += ["--max-turns", str(max_turns)]
    if task.limits.max_usd is not None:
        argv += ["--max-budget-usd", f"{task.limits.max_usd:g}"]
    if settings.allowed_tools:
        argv += ["--allowedTools", ",".join(settings.allowed_tools)]
    if settings.disallowed_tools:
        argv += ["--disallowedTools", ",".join(settings.disallowed_tools)]
    if task.role_prompt.strip():
        argv += ["--append-system-prompt", task.role_prompt]
    return argv + task.extra_args


MCP_DIR = "edge-worker-mcp"
"""Under the worktree's private git directory: each run's ``--mcp-config`` file."""


class ClaudeCodeExecutor(LocalCliExecutor[ClaudeSettings]):
    """The Claude Code CLI behind the executor protocol."""

    name = "claude-code"

    def command_line(self, run: ArgvRequest) -> list[str]:
        settings = with_profile(self.settings, run.task.agent, permission_field="permission_mode")
        argv = claude_argv(settings, run.task, prompt=run.prompt, resume_session=run.resume_session)
        return argv + run.prepared.argv

    async def prepare(self, task: Task, workdir: Path, run_id: str) -> Prepared:
        servers = mcp_servers_for(task.agent, workdir)
        if not servers:
            return Prepared()
        directory = await self.worktrees.private_dir(workdir) / MCP_DIR
        path = write_private(
            directory / f"{run_id}.json", json.dumps(claude_mcp_config(servers), indent=1)
        )
        return Prepared(argv=["--mcp-config", str(path), "--strict-mcp-config"])

    def to_result(self, parser: StreamParser, ending: Ending, handle: RunHandle) -> RunResult:
        assert isinstance(parser, ClaudeStreamParser)
        result = claude_run_result(parser, ending)
        model = self.configured_model(handle)
        if result.model is None and model:
            result = result.model_copy(update={"model": model})
        return result

    def new_parser(self) -> StreamParser:
        return ClaudeStreamParser()
