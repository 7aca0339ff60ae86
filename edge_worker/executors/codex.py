"""Codex, run locally in the sub-task's worktree (executor name ``codex``).

Contract: runs ``<binary> exec --json --sandbox workspace-write -C <worktree> [--model M]
PROMPT``; feedback continues the thread with ``<binary> exec --json --sandbox
workspace-write -C <worktree> [--model M] resume <thread id> PROMPT`` (exec's options go
before its ``resume`` subcommand). Codex has no system-prompt option, so the role prompt
precedes the task prompt. Images attached to the issue (placed in the worktree) go with the
first prompt as ``--image=<paths>``. The task's agent profile overrides ``--model`` and
``--sandbox`` (its ``permission_mode``); its MCP servers go in ``config.toml`` of a
``CODEX_HOME`` in the worktree's private git dir (see :meth:`CodexExecutor.prepare`).

Money: Codex reports tokens, not money, and (0.169.0) reports the *thread's* running total
at the end of each invocation. A run's usage is that total minus the thread's total at the
end of the previous run (:mod:`edge_worker.executors.session_usage`): ``resume`` reads the
previous run's last reported total from its transcript and stores it in the new handle,
so it is durable with the handle. A lower total than before is kept as reported, logged
once, and the result is marked ``cost_uncertain``. The cost is ``pricer(model, usage)``
with cache reads taken out of ``input_tokens`` (the pricer's convention); ``None`` from the
pricer (or a run that never completed a turn) means unpriced, never $0. Everything else is
:class:`~edge_worker.executors.priced_cli.PricedCliExecutor`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from edge_worker.executors.agent_files import (
    codex_config_toml,
    mcp_servers_for,
    with_profile,
    write_private,
)
from edge_worker.executors.base import RunHandle, RunResult, Task, Usage
from edge_worker.executors.codex_stream import CodexStreamParser, codex_run_result
from edge_worker.executors.local_cli import ArgvRequest, Prepared
from edge_worker.executors.priced_cli import PricedCliExecutor
from edge_worker.executors.session_usage import (
    UNKNOWN_BEFORE,
    Before,
    before_from_extra,
    before_to_extra,
    total_after,
    usage_since,
)
from edge_worker.executors.stream_types import Ending, StreamParser
from edge_worker.executors.task_prompt import ATTACHMENTS_DIR, as_positional
from edge_worker.settings import CodexSettings

log = structlog.get_logger(__name__)

DEFAULT_SANDBOX = "workspace-write"
CODEX_HOME_DIR = "edge-worker-codex-home"
"""Under the worktree's private git directory: ``CODEX_HOME`` when MCP servers are given."""


def codex_argv(
    settings: CodexSettings,
    *,
    workdir: Path,
    prompt: str,
    resume_session: str | None = None,
    images: Sequence[str] = (),
    sandbox: str = DEFAULT_SANDBOX,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The Codex command line (pure). ``images`` (paths) are attached to the prompt as
    image input, in the ``--image=a,b`` form so the variadic option cannot swallow the
    prompt."""
    argv = [settings.binary, "exec", "--json", "--sandbox", sandbox, "-C", str(workdir)]
    if settings.model:
        argv += ["--model", settings.model]
    if images:
        argv.append("--image=" + ",".join(images))
    argv += extra_args
    if resume_session:
        argv += ["resume", resume_session]
    return [*argv, as_positional(prompt)]


class CodexExecutor(PricedCliExecutor[CodexSettings]):
    """The Codex CLI behind the executor protocol."""

    name = "codex"

    def command_line(self, run: ArgvRequest) -> list[str]:
        task, workdir = run.task, run.workdir
        images: list[str] = []
        if run.resume_session is None:
            images = [
                str(workdir / ATTACHMENTS_DIR / Path(file.name).name)
                for file in task.attachments
                if (file.media_type or "").startswith("image/")
                and (workdir / ATTACHMENTS_DIR / Path(file.name).name).is_file()
            ]
        agent = task.agent
        return codex_argv(
            with_profile(self.settings, agent),
            workdir=workdir,
            prompt=run.prompt,
            resume_session=run.resume_session,
            images=images,
            sandbox=(agent.permission_mode if agent else None) or DEFAULT_SANDBOX,
            extra_args=task.extra_args,
        )

    async def prepare(self, task: Task, workdir: Path, run_id: str) -> Prepared:
        """With MCP servers, a ``CODEX_HOME`` of the worktree's own (kept across its runs,
        so ``exec resume`` finds the thread) whose ``config.toml`` names them; the daemon's
        ``auth.json`` is linked, never copied."""
        servers = mcp_servers_for(task.agent, workdir)
        if not servers:
            return Prepared()
        home = await self.worktrees.private_dir(workdir) / CODEX_HOME_DIR
        write_private(home / "config.toml", codex_config_toml(servers))
        auth = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex") / "auth.json"
        link = home / "auth.json"
        if auth.is_file() and not link.exists():
            link.symlink_to(auth)
        return Prepared(env={"CODEX_HOME": str(home)})

    def new_parser(self) -> StreamParser:
        return CodexStreamParser()

    def to_result(self, parser: StreamParser, ending: Ending, handle: RunHandle) -> RunResult:
        assert isinstance(parser, CodexStreamParser)
        model = self.configured_model(handle)
        if parser.thread_usage is None:
            # Tokens are only known once a turn completed; before that the spend is unknown.
            return codex_run_result(parser, ending, model=model, usage=Usage(), cost_usd=None)
        before = _before(handle)
        own = usage_since(parser.thread_usage, before)
        if own.uncertain:
            log.warning(
                "codex.usage_uncertain",
                run_id=handle.run_id,
                thread_id=parser.thread_id,
                reported=parser.thread_usage.model_dump(),
                before=before.model_dump() if isinstance(before, Usage) else before,
            )
        cost = self.price(model, own.usage)
        return codex_run_result(
            parser,
            ending,
            model=model,
            usage=own.usage,
            cost_usd=cost,
            cost_uncertain=own.uncertain,
        )

    def continued_extra(self, previous: RunHandle) -> dict[str, Any]:
        """The thread's total at the end of ``previous``, for the next run's delta."""
        if self.transcript_of(previous) is None:
            return before_to_extra(UNKNOWN_BEFORE)
        # Quiet: the previous run's notices were logged when it ran.
        parser = CodexStreamParser(log_notices=False)
        self._replay(previous, parser)
        # A first run that reported nothing (stopped early) was charged nothing: whatever it
        # used is in the next total, and charged there.
        return before_to_extra(total_after(parser.thread_usage, _before(previous)) or Usage())


def _before(handle: RunHandle) -> Before:
    """The thread's total before ``handle``'s run, as its handle keeps it."""
    before = before_from_extra(handle.extra)
    if before is None and handle.extra.get("resumed"):
        return UNKNOWN_BEFORE  # resumed by a daemon that kept no total (an upgrade)
    return before
