"""Claude Code, run locally in the sub-task's worktree (executor name ``claude-code``).

Contract: runs ``<binary> -p PROMPT --output-format stream-json --verbose`` with
``--permission-mode`` (default ``acceptEdits``), ``--model``, ``--max-turns`` (the task's
limit, else the configured one), ``--max-budget-usd`` (the task's ``limits.max_usd``),
``--allowedTools`` / ``--disallowedTools`` (comma-joined) and ``--append-system-prompt``
(the role prompt), in the worktree; ``--resume <session id>`` for feedback. The result is
parsed by :mod:`edge_worker.executors.claude_stream`; the cost is ``total_cost_usd`` as the
CLI reported it. Everything else (worktree, supervision, transcript, verification, cancel)
is :class:`~edge_worker.executors.local_cli.LocalCliExecutor`.
"""

from __future__ import annotations

from pathlib import Path

from edge_worker.executors.base import RunHandle, RunResult, Task
from edge_worker.executors.claude_stream import ClaudeStreamParser, claude_run_result
from edge_worker.executors.local_cli import LocalCliExecutor
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


class ClaudeCodeExecutor(LocalCliExecutor[ClaudeSettings]):
    """The Claude Code CLI behind the executor protocol."""

    name = "claude-code"

    def build_argv(
        self, task: Task, *, workdir: Path, prompt: str, resume_session: str | None
    ) -> list[str]:
        return claude_argv(self.settings, task, prompt=prompt, resume_session=resume_session)

    def new_parser(self) -> StreamParser:
        return ClaudeStreamParser()

    def to_result(self, parser: StreamParser, ending: Ending, handle: RunHandle) -> RunResult:
        assert isinstance(parser, ClaudeStreamParser)
        result = claude_run_result(parser, ending)
        if result.model is None and self.settings.model:
            result = result.model_copy(update={"model": self.settings.model})
        return result
