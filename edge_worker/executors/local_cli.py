"""What the Claude Code and Codex executors share: a CLI run in a sub-task's worktree.

Contract (the :class:`~edge_worker.executors.base.Executor` protocol):
- ``start(task)`` ensures the sub-task's worktree, puts the issue's files in it
  (:mod:`edge_worker.executors.attachments`), spawns the CLI there (own process group,
  scrubbed environment) and returns a :class:`RunHandle` with the pid, pgid, worktree,
  branch and the path of the run's transcript. Supervision starts at once (the wall-clock
  limit counts from the spawn, whether or not anyone follows yet). A missing binary raises
  :class:`ExecutorUnavailable`.
- ``follow(handle, on_progress)`` waits for the end and returns the :class:`RunResult`.
  Every stdout line is appended to the transcript (in the worktree's private git dir), so a
  daemon that restarted can ``follow`` a handle it no longer supervises: the transcript
  gives the result if the run finished, otherwise the run is reported failed as
  interrupted (with its session id, so it can be resumed), after reaping its process group.
  Cancelling the task awaiting ``follow`` stops the run.
- ``resume(handle, task, feedback)`` starts a new run in the same worktree that continues the
  CLI session (session id from the handle or its transcript); what a subclass needs to
  carry from the previous run into the new handle (:meth:`continued_extra`) goes into the
  new handle's ``extra``. A run that died before its CLI announced a session (killed with
  its daemon at spawn) has none to continue: a new session starts in the same worktree,
  given the task and then the feedback.
- ``verify(handle, commands)`` runs the commands in the worktree
  (:mod:`edge_worker.verification.local`).
- ``cancel(handle)`` stops the run (SIGTERM, SIGKILL after the grace period) and returns
  once nothing of it is left.
- ``release(handle, succeeded)``: the worktree is removed after a success (the branch is
  kept), kept for inspection after a failure. The run's transcript is first copied to
  ``<worktrees root>/.edge-worker-transcripts/``, so a follow-up that reopens the session
  later still finds its session id and what it reported.
"""

from __future__ import annotations

import abc
import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Generic, Protocol, TypeVar

import structlog

from edge_worker.executors.agent_files import env_names_for, mcp_servers_for
from edge_worker.executors.attachments import place_attachments
from edge_worker.executors.base import (
    ExecutorUnavailable,
    ProgressCallback,
    RunHandle,
    RunResult,
    RunStatus,
    Task,
    VerificationCommand,
    VerificationReport,
)
from edge_worker.executors.process import (
    ProcessOutcome,
    ProcessSpec,
    SupervisedProcess,
    reap_leftovers,
    scrubbed_env,
)
from edge_worker.executors.stream_types import Ending, Progress, StreamParser
from edge_worker.executors.task_prompt import feedback_prompt, task_prompt, with_role
from edge_worker.executors.worktrees import Worktree, WorktreeManager
from edge_worker.tasks import wait_ended
from edge_worker.verification.local import run_local_verification

log = structlog.get_logger(__name__)

TRANSCRIPTS_DIR = "edge-worker-runs"
TRANSCRIPTS_ARCHIVE = ".edge-worker-transcripts"
"""Under the worktrees root: transcripts of runs whose worktree was removed after success."""
_PENDING_PROGRESS_LIMIT = 50
INTERRUPTED_REASON = "interrupted: the daemon stopped while the run was in progress"


@dataclass(frozen=True)
class Prepared:
    """What :meth:`LocalCliExecutor.prepare` wrote for a run: environment and options."""

    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArgvRequest:
    """What :meth:`LocalCliExecutor.command_line` builds a command line from: the (profiled)
    task, its worktree, the prompt (with the role prompt before it on a first run when the
    executor has ``role_in_prompt``), the session to resume (None on a first run) and what
    :meth:`LocalCliExecutor.prepare` wrote."""

    task: Task
    workdir: Path
    prompt: str
    resume_session: str | None
    prepared: Prepared = field(default_factory=Prepared)


async def profiled(task: Task) -> Task:
    """``task`` with its profile's prompt template (in place of the role prompt) and
    appended instruction; ``ExecutorUnavailable`` when the template cannot be read."""
    agent = task.agent
    if agent is None or not (agent.prompt_template or agent.append_instruction):
        return task
    role_prompt = task.role_prompt
    if agent.prompt_template:
        try:
            role_prompt = await asyncio.to_thread(
                Path(agent.prompt_template).read_text, encoding="utf-8"
            )
        except OSError as exc:
            log.warning("local_cli.prompt_template_unreadable", error=str(exc))
            raise ExecutorUnavailable(PROMPT_TEMPLATE_UNREADABLE) from exc
    if agent.append_instruction:
        role_prompt = f"{role_prompt.rstrip()}\n\n{agent.append_instruction.strip()}"
    return task.model_copy(update={"role_prompt": role_prompt})


PROMPT_TEMPLATE_UNREADABLE = "the configured prompt template cannot be read on this host"


@dataclass
class _LiveRun:
    handle: RunHandle
    process: SupervisedProcess
    parser: StreamParser
    transcript: IO[str]
    on_progress: ProgressCallback | None = None
    pending: list[Progress] = field(default_factory=list)
    supervisor: asyncio.Task[RunResult] | None = None

    async def emit(self, item: Progress) -> None:
        if self.on_progress is None:
            if len(self.pending) < _PENDING_PROGRESS_LIMIT:
                self.pending.append(item)
            return
        try:
            await self.on_progress(item.kind, item.text)
        except Exception:  # a failing progress sink must not kill the run it reports on
            log.exception("local_cli.progress_failed", run_id=self.handle.run_id)


class CliSettings(Protocol):
    """What every local CLI's settings say (``ClaudeSettings``, ``CodexSettings``,
    ``GeminiSettings``)."""

    @property
    def binary(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def pass_env(self) -> list[str]: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def kill_grace_seconds(self) -> float: ...


SettingsT = TypeVar("SettingsT", bound=CliSettings)


class LocalCliExecutor(abc.ABC, Generic[SettingsT]):
    """A local agent CLI behind the executor protocol; subclasses say how to call it."""

    name: str
    role_in_prompt: ClassVar[bool] = False
    """True for a CLI without a system-prompt option: a first run's prompt starts with the
    role prompt (:func:`~edge_worker.executors.task_prompt.with_role`)."""

    def __init__(
        self,
        settings: SettingsT,
        worktrees: WorktreeManager,
        *,
        verification_timeout_seconds: float = 600.0,
    ) -> None:
        self.settings = settings
        self.binary = settings.binary
        self.worktrees = worktrees
        self.pass_env = list(settings.pass_env)
        self.timeout_seconds = settings.timeout_seconds
        self.kill_grace_seconds = settings.kill_grace_seconds
        self.verification_timeout_seconds = verification_timeout_seconds
        self._live: dict[str, _LiveRun] = {}

    # --- what a subclass provides -------------------------------------------------------

    @abc.abstractmethod
    def command_line(self, run: ArgvRequest) -> list[str]:
        """The command line for ``run`` (see :meth:`build_argv`)."""

    @abc.abstractmethod
    def new_parser(self) -> StreamParser:
        """A fresh parser for this CLI's stdout."""

    @abc.abstractmethod
    def to_result(self, parser: StreamParser, ending: Ending, handle: RunHandle) -> RunResult:
        """The run's result from what was parsed, how the process ended, and its handle."""

    def build_argv(
        self,
        task: Task,
        *,
        workdir: Path,
        prompt: str,
        resume_session: str | None,
        prepared: Prepared | None = None,
    ) -> list[str]:
        """The command line for a first run (``resume_session`` None) or a resumed one;
        ``prepared.argv`` are options :meth:`prepare` asks for. With ``role_in_prompt`` a
        first run's prompt starts with the role prompt. Subclasses say the rest in
        :meth:`command_line`."""
        if self.role_in_prompt and resume_session is None:
            prompt = with_role(task.role_prompt, prompt)
        request = ArgvRequest(task, workdir, prompt, resume_session, prepared or Prepared())
        return self.command_line(request)

    def configured_model(self, handle: RunHandle) -> str | None:
        """The model the run was started with (its profile's), else the configured one."""
        return str(handle.extra.get("model") or "") or self.settings.model

    def continued_extra(self, previous: RunHandle) -> dict[str, Any]:
        """What a run continuing ``previous``'s session keeps in its handle's ``extra``."""
        return {}

    async def prepare(self, task: Task, workdir: Path, run_id: str) -> Prepared:
        """Files a run needs beside its command line (MCP config, settings), written
        outside the worktree; what to add to the CLI's environment and options."""
        return Prepared()

    # --- the protocol -------------------------------------------------------------------

    async def start(self, task: Task) -> RunHandle:
        worktree = await self._worktree(task)
        await asyncio.to_thread(place_attachments, worktree.path, task.attachments)
        prompt = task_prompt(task, workdir=worktree.path, branch=worktree.branch)
        return await self._launch(task, worktree.path, worktree.branch, prompt, None)

    async def follow(
        self, handle: RunHandle, on_progress: ProgressCallback | None = None
    ) -> RunResult:
        live = self._live.get(handle.run_id)
        if live is None or live.supervisor is None:
            return await self._result_after_restart(handle)
        live.on_progress = on_progress
        pending, live.pending = live.pending, []
        for item in pending:
            await live.emit(item)
        try:
            result = await asyncio.shield(live.supervisor)
        except asyncio.CancelledError:
            await self._stop(live)
            raise
        self._live.pop(handle.run_id, None)
        return result

    async def resume(self, handle: RunHandle, task: Task, feedback: str) -> RunHandle:
        live = self._live.get(handle.run_id)
        if live is not None and live.supervisor is not None and not live.supervisor.done():
            raise RuntimeError(f"run {handle.run_id} is still in progress; follow it first")
        session = handle.session_id or self._replay(handle).session_id
        worktree = await self._worktree(task)
        await asyncio.to_thread(place_attachments, worktree.path, task.attachments)
        prompt = feedback_prompt(feedback)
        extra: dict[str, Any] = {}
        if session:
            extra = self.continued_extra(handle)
        else:
            log.warning("local_cli.no_session_to_resume", run_id=handle.run_id)
            first = task_prompt(task, workdir=worktree.path, branch=worktree.branch)
            prompt = f"{first}\n\n{prompt}"
        return await self._launch(
            task, worktree.path, worktree.branch, prompt, session or None, extra
        )

    async def verify(
        self, handle: RunHandle, commands: list[VerificationCommand]
    ) -> VerificationReport:
        if not handle.workdir:
            raise ValueError(f"run {handle.run_id} has no worktree to verify in")
        return await run_local_verification(
            Path(handle.workdir),
            commands,
            timeout_seconds=self.verification_timeout_seconds,
            kill_grace_seconds=self.kill_grace_seconds,
            pass_env=self.pass_env,
        )

    async def cancel(self, handle: RunHandle) -> None:
        live = self._live.get(handle.run_id)
        if live is not None:
            await self._stop(live)
        else:
            await self._reap(handle)

    async def stop_all(self) -> int:
        """Stop every run this process supervises (daemon drain); returns how many.

        The runs' workflows stay pending: on the next start, ``follow`` finds the run
        interrupted and the orchestration resumes the same session with feedback.
        """
        lives = list(self._live.values())
        await asyncio.gather(*(self._stop(live) for live in lives), return_exceptions=True)
        return len(lives)

    async def release(self, handle: RunHandle, *, succeeded: bool) -> None:
        """Remove the worktree after a success (branch kept), keep it after a failure."""
        if not handle.workdir:
            return
        if succeeded:
            self._archive_transcript(handle)
        await self.worktrees.release(Path(handle.workdir), succeeded=succeeded)

    def _archive_transcript(self, handle: RunHandle) -> None:
        source = handle.extra.get("transcript")
        if not (isinstance(source, str) and Path(source).is_file()):
            return
        archive = self._archived_transcript(handle)
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, archive)

    def _archived_transcript(self, handle: RunHandle) -> Path:
        return self.worktrees.root / TRANSCRIPTS_ARCHIVE / f"{handle.run_id}.jsonl"

    def transcript_of(self, handle: RunHandle) -> Path | None:
        """The run's transcript: in its worktree, else archived after release; or None."""
        path = handle.extra.get("transcript")
        if isinstance(path, str) and Path(path).is_file():
            return Path(path)
        archived = self._archived_transcript(handle)
        return archived if archived.is_file() else None

    # --- machinery ----------------------------------------------------------------------

    async def _worktree(self, task: Task) -> Worktree:
        if not task.repository_path:
            raise ValueError(f"task {task.key} has no repository_path for a local executor")
        return await self.worktrees.ensure(
            Path(task.repository_path),
            task.issue_identifier,
            task.key,
            task.base_branch,
            task.merge_branches,
            task.fetch_branches,
            task.remote,
        )

    async def _launch(
        self,
        task: Task,
        workdir: Path,
        branch: str,
        prompt: str,
        resume_session: str | None,
        extra: dict[str, Any] | None = None,
    ) -> RunHandle:
        run_id = uuid.uuid4().hex
        transcript_path = await self._transcript_path(workdir, run_id)
        task = await profiled(task)
        prepared = await self.prepare(task, workdir, run_id)
        argv = self.build_argv(
            task, workdir=workdir, prompt=prompt, resume_session=resume_session, prepared=prepared
        )
        servers = mcp_servers_for(task.agent, workdir)
        spec = ProcessSpec(
            argv=argv,
            cwd=workdir,
            env=scrubbed_env(
                [*self.pass_env, *env_names_for(task.agent, servers)], extra=prepared.env
            ),
            timeout_seconds=min(self.timeout_seconds, task.limits.wall_clock_seconds),
            kill_grace_seconds=self.kill_grace_seconds,
            run_id=run_id,
        )
        try:
            process = await SupervisedProcess.spawn(spec)
        except OSError as exc:
            log.warning("local_cli.spawn_failed", executor=self.name, error=str(exc))
            raise ExecutorUnavailable(spawn_failure_reason(self.name, exc)) from exc
        handle = RunHandle(
            executor=self.name,
            run_id=run_id,
            session_id=resume_session,
            workdir=str(workdir),
            branch=branch,
            pid=process.pid,
            pgid=process.pgid,
            extra={
                **(extra or {}),
                **({"model": task.agent.model} if task.agent and task.agent.model else {}),
                "transcript": str(transcript_path),
                "resumed": resume_session is not None,
            },
        )
        live = _LiveRun(
            handle=handle,
            process=process,
            parser=self.new_parser(),
            transcript=transcript_path.open("a", encoding="utf-8"),
        )
        live.supervisor = asyncio.create_task(self._supervise(live))
        self._live[run_id] = live
        log.info(
            "local_cli.started",
            executor=self.name,
            run_id=run_id,
            pgid=process.pgid,
            workdir=str(workdir),
            resumed=resume_session is not None,
        )
        return handle

    async def _supervise(self, live: _LiveRun) -> RunResult:
        async def on_line(line: str) -> None:
            live.transcript.write(line + "\n")
            live.transcript.flush()
            for item in live.parser.feed(line):
                await live.emit(item)

        try:
            outcome = await live.process.run(on_line)
        finally:
            live.transcript.close()
        result = self.to_result(live.parser, _ending(outcome), live.handle)
        log.info(
            "local_cli.ended",
            executor=self.name,
            run_id=live.handle.run_id,
            status=result.status.value,
            cost_usd=result.cost_usd,
            killed=outcome.killed,
        )
        return self._stamp(result, live.handle)

    async def _stop(self, live: _LiveRun) -> None:
        live.process.request_stop()
        if live.supervisor is not None:
            await wait_ended(live.supervisor)

    async def _reap(self, handle: RunHandle) -> None:
        """Kill what is left of a run this executor does not supervise (any more)."""
        live_groups = {live.process.pgid for live in self._live.values()}
        if handle.pgid and handle.pgid not in live_groups:  # never a recycled id of ours
            await reap_leftovers([handle.pgid], grace_seconds=self.kill_grace_seconds)

    async def _result_after_restart(self, handle: RunHandle) -> RunResult:
        await self._reap(handle)
        parser = self._replay(handle)
        if parser.finished:
            return self._stamp(self.to_result(parser, Ending(), handle), handle)
        return self._stamp(
            RunResult(
                status=RunStatus.FAILED, session_id=parser.session_id, error=INTERRUPTED_REASON
            ),
            handle,
        )

    def _replay(self, handle: RunHandle, parser: StreamParser | None = None) -> StreamParser:
        """``parser`` (default: a new one) fed with the run's transcript, if there is one."""
        parser = parser or self.new_parser()
        path = self.transcript_of(handle)
        if path is not None:
            with open(path, encoding="utf-8", errors="replace") as transcript:
                for line in transcript:
                    parser.feed(line)
        return parser

    async def _transcript_path(self, workdir: Path, run_id: str) -> Path:
        directory = await self.worktrees.private_dir(workdir) / TRANSCRIPTS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{run_id}.jsonl"

    def _stamp(self, result: RunResult, handle: RunHandle) -> RunResult:
        return result.model_copy(
            update={
                "run_id": handle.run_id,
                "branch": handle.branch,
                "session_id": result.session_id or handle.session_id,
            }
        )


CLI_NOT_FOUND = "{name} unavailable: its CLI is not installed on this host"
CLI_NOT_RUNNABLE = "{name} unavailable: its CLI cannot be started on this host"


def spawn_failure_reason(name: str, error: OSError) -> str:
    """Why ``name``'s CLI could not be spawned, in words fit for the report (no paths)."""
    template = CLI_NOT_FOUND if isinstance(error, FileNotFoundError) else CLI_NOT_RUNNABLE
    return template.format(name=name)


def _ending(outcome: ProcessOutcome) -> Ending:
    return Ending(
        exit_code=outcome.exit_code,
        stopped=outcome.stopped.value if outcome.stopped is not None else None,
        stderr_tail=outcome.stderr_tail,
        duration_seconds=outcome.duration_seconds,
    )
