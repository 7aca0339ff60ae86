"""One protocol for every executor (Codegen in the cloud, Claude Code and Codex locally).

Contract:
- ``start(task)`` begins a run and returns a :class:`RunHandle`: plain, JSON-serialisable
  data a durable workflow can store, so a restarted daemon can ``follow`` the same run
  again instead of starting a second one.
- ``follow(handle, on_progress)`` waits for the run to end and returns a :class:`RunResult`;
  progress (assistant text, tool use, status changes) is reported through ``on_progress``.
- ``resume(handle, feedback)`` continues the same executor session with feedback and
  returns a new handle to follow.
- ``verify(handle, commands)`` runs the verification commands where the work lives and
  returns :class:`Evidence` for each; it never trusts what the agent claimed.
- ``cancel(handle)`` stops the run (local processes killed; remote runs abandoned and
  recorded, since Codegen has no cancel).

Money: ``RunResult.cost_usd`` is ``None`` when the executor does not report or cannot price
the run ("unpriced"); it is never a made-up ``0.0``.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from edge_worker.agent_config import AgentProfile

Role = Literal["builder", "debugger", "scoper", "reviewer"]


class RunStatus(enum.StrEnum):
    """How a run ended (or that it has not yet)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    OVER_BUDGET = "over_budget"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


class VerificationCommand(BaseModel):
    """A shell command and the exit code that means it passed."""

    command: str
    expect_exit: int = 0


class TaskLimits(BaseModel):
    """Bounds on one run."""

    wall_clock_seconds: float = 1800.0
    max_turns: int | None = None
    max_usd: float | None = None


class TaskAttachment(BaseModel):
    """A file attached to the issue, fetched to ``path`` on this host."""

    name: str
    path: str
    media_type: str | None = None
    url: str | None = None
    """Where it was fetched from (to fetch it again on another host)."""


class Task(BaseModel):
    """A sub-task as an executor sees it."""

    issue_id: str
    issue_identifier: str
    key: str
    title: str
    description: str
    role: Role = "builder"
    verification: list[VerificationCommand] = []
    repository_id: str | None = None
    repository_path: str | None = None
    codegen_repo_id: int | None = None
    base_branch: str = "main"
    merge_branches: list[str] = []
    """Branches of finished dependencies to merge into a new local worktree."""
    fetch_branches: list[str] = []
    """Branches on the repository's ``remote`` (pull requests of finished cloud
    dependencies) to fetch and merge into a new local worktree."""
    remote: str = "origin"
    role_prompt: str = ""
    attachments: list[TaskAttachment] = []
    """Files of the issue; local executors put them in the worktree (see task_prompt)."""
    limits: TaskLimits = TaskLimits()
    attempt: int = 1
    agent: AgentProfile | None = None
    """The issue's agent configuration (model, tools, MCP servers...) for local CLIs."""
    extra_args: list[str] = []
    """Flags a recovery added to a local CLI's command line (see ``executors/recovery``)."""


class RunHandle(BaseModel):
    """Plain data identifying a started run; safe to store and reload."""

    executor: str
    run_id: str
    session_id: str | None = None
    workdir: str | None = None
    branch: str | None = None
    pid: int | None = None
    pgid: int | None = None
    extra: dict[str, Any] = {}


class Usage(BaseModel):
    """Token counts for one run.

    ``cache_write_input_tokens`` are prompt tokens written to the provider's cache (priced at
    the model's cache-write rate); ``reasoning_output_tokens`` are the part of
    ``output_tokens`` spent on reasoning (informational: output prices cover them).
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cache_write_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_write_input_tokens=self.cache_write_input_tokens + other.cache_write_input_tokens,
            reasoning_output_tokens=self.reasoning_output_tokens + other.reasoning_output_tokens,
        )


class RunResult(BaseModel):
    """What a run produced, comparable across executors."""

    status: RunStatus
    summary: str = ""
    branch: str | None = None
    pr_urls: list[str] = []
    web_url: str | None = None
    cost_usd: float | None = None
    model: str | None = None
    usage: Usage = Usage()
    cost_uncertain: bool = False
    """The run's own usage could not be told apart from its session's (the CLI reported a
    session total lower than before): ``usage`` and ``cost_usd`` are the figures reported."""
    duration_seconds: float = 0.0
    session_id: str | None = None
    run_id: str | None = None
    error: str | None = None
    num_turns: int | None = None


class Evidence(BaseModel):
    """One verification check as observed (not as claimed)."""

    command: str
    expect_exit: int = 0
    exit_code: int | None = None
    output_tail: str = ""
    duration_seconds: float = 0.0
    reason: str | None = Field(
        None, description="why the check failed when it never produced an exit code"
    )

    @property
    def passed(self) -> bool:
        return self.exit_code is not None and self.exit_code == self.expect_exit


class VerificationReport(BaseModel):
    """All checks of one verification, plus what the verification itself cost."""

    checks: list[Evidence]
    cost_usd: float | None = None
    usage: Usage = Usage()
    model: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)


class ExecutorUnavailable(Exception):
    """The executor cannot take work now (e.g. "Codegen unavailable: quota").

    The strategy may fall back to another executor; ``reason`` says why for the report.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


ProgressCallback = Callable[[str, str], Awaitable[None]]
"""``on_progress(kind, text)``: kind is ``"thought"`` or ``"action"``."""


@runtime_checkable
class Executor(Protocol):
    """The protocol every executor implements."""

    name: str

    async def start(self, task: Task) -> RunHandle: ...

    async def follow(
        self, handle: RunHandle, on_progress: ProgressCallback | None = None
    ) -> RunResult: ...

    async def resume(self, handle: RunHandle, task: Task, feedback: str) -> RunHandle: ...

    async def verify(
        self, handle: RunHandle, commands: list[VerificationCommand]
    ) -> VerificationReport: ...

    async def cancel(self, handle: RunHandle) -> None: ...
