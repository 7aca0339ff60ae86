"""The Gemini CLI, run locally in the sub-task's worktree (executor name ``gemini``).

Contract: runs ``<binary> --output-format stream-json --approval-mode <mode> [--model M]
[--allowed-tools a,b] [--resume <session id>] --prompt=PROMPT`` in the worktree (headless:
``--prompt``; the ``=`` form so a prompt starting with ``-`` is never an option). Gemini
has no system-prompt option, so the role prompt precedes the task prompt on a first run.

Per-run settings: the CLI reads a settings file named by ``GEMINI_CLI_SYSTEM_SETTINGS_PATH``
(system settings override user and workspace ones). The executor writes one per run in the
worktree's private git directory (never in the worktree): ``model.maxSessionTurns`` (the
task's turn limit, else the configured one) and ``mcpServers`` (the task profile's, see
:mod:`edge_worker.executors.agent_files`). The profile also overrides ``--model``,
``--allowed-tools`` and ``--approval-mode`` (its ``permission_mode``).
The real CLI (0.61.0) skips that file when a directory above it is writable by group
or others (a warning is logged then): keep the worktrees root out of such directories.
``GEMINI_CLI_TRUST_WORKSPACE=true`` trusts the worktree (headless runs refuse an untrusted
folder). ``auth_type`` goes in as ``security.auth.selectedType``.

Money: the CLI reports tokens per model for this invocation (also after ``--resume``),
no money. Each model's tokens are priced with ``pricer(model, usage)`` (cache reads taken
out of ``input_tokens``, the pricer's convention) and summed; a model without a price, or
a run that reported no tokens, leaves the run unpriced (``None``), never $0. Everything
else is :class:`~edge_worker.executors.priced_cli.PricedCliExecutor`.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from edge_worker.executors.agent_files import (
    gemini_mcp_servers,
    mcp_servers_for,
    with_profile,
    write_private,
)
from edge_worker.executors.base import RunHandle, RunResult, Task, Usage
from edge_worker.executors.gemini_stream import GeminiStreamParser, gemini_run_result
from edge_worker.executors.local_cli import ArgvRequest, Prepared
from edge_worker.executors.priced_cli import PricedCliExecutor, Pricer
from edge_worker.executors.stream_types import Ending, StreamParser
from edge_worker.settings import GeminiSettings

log = structlog.get_logger(__name__)

SETTINGS_PATH_ENV = "GEMINI_CLI_SYSTEM_SETTINGS_PATH"
TRUST_ENV = "GEMINI_CLI_TRUST_WORKSPACE"
SETTINGS_DIR = "edge-worker-gemini"


def gemini_argv(
    settings: GeminiSettings, *, prompt: str, resume_session: str | None = None
) -> list[str]:
    """The Gemini CLI command line (pure)."""
    argv = [settings.binary, "--output-format", "stream-json"]
    argv += ["--approval-mode", settings.approval_mode]
    if settings.model:
        argv += ["--model", settings.model]
    if settings.allowed_tools:
        argv += ["--allowed-tools", ",".join(settings.allowed_tools)]
    if resume_session:
        argv += ["--resume", resume_session]
    return [*argv, f"--prompt={prompt}"]


def gemini_run_settings(
    settings: GeminiSettings, task: Task, *, mcp_servers: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The per-run system settings file's content (pure)."""
    content: dict[str, Any] = {}
    max_turns = task.limits.max_turns or settings.max_turns
    if max_turns:
        content["model"] = {"maxSessionTurns": max_turns}
    if mcp_servers:
        content["mcpServers"] = dict(mcp_servers)
    if settings.auth_type:
        content["security"] = {"auth": {"selectedType": settings.auth_type}}
    return content


def price_by_model(price: Pricer, usage_by_model: Mapping[str, Usage]) -> float | None:
    """The run's cost: each model's tokens priced with ``price`` (as
    :meth:`PricedCliExecutor.price`) and summed; None if any is unpriced."""
    if not usage_by_model:
        return None
    total = 0.0
    for model, usage in usage_by_model.items():
        cost = price(model or None, usage)
        if cost is None:
            return None
        total += cost
    return total


def insecure_ancestor(path: Path) -> Path | None:
    """The first directory above ``path`` writable by group or others (the real CLI then
    skips the settings file), or None."""
    for directory in path.resolve().parents:
        try:
            mode = directory.stat().st_mode
        except OSError:
            return directory
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            return directory
    return None


class GeminiExecutor(PricedCliExecutor[GeminiSettings]):
    """The Gemini CLI behind the executor protocol."""

    name = "gemini"

    def command_line(self, run: ArgvRequest) -> list[str]:
        agent = run.task.agent
        settings = with_profile(self.settings, agent, permission_field="approval_mode")
        return gemini_argv(settings, prompt=run.prompt, resume_session=run.resume_session)

    async def prepare(self, task: Task, workdir: Path, run_id: str) -> Prepared:
        servers = gemini_mcp_servers(mcp_servers_for(task.agent, workdir))
        content = gemini_run_settings(self.settings, task, mcp_servers=servers)
        directory = await self.worktrees.private_dir(workdir) / SETTINGS_DIR
        path = write_private(directory / f"{run_id}.json", json.dumps(content, indent=1))
        insecure = insecure_ancestor(path)
        if insecure is not None:
            log.warning(
                "gemini.settings_file_ignored",
                reason="the CLI skips a system settings file under a group- or "
                "world-writable directory: turn limit and MCP servers are not applied",
                directory=str(insecure),
            )
        return Prepared(env={SETTINGS_PATH_ENV: str(path), TRUST_ENV: "true"})

    def new_parser(self) -> StreamParser:
        return GeminiStreamParser()

    def to_result(self, parser: StreamParser, ending: Ending, handle: RunHandle) -> RunResult:
        assert isinstance(parser, GeminiStreamParser)
        models = [name for name in parser.usage_by_model if name]
        configured = self.configured_model(handle)
        model = configured or parser.model or (models[0] if models else None)
        cost = price_by_model(self.price, parser.usage_by_model)
        return gemini_run_result(parser, ending, model=model, cost_usd=cost)
