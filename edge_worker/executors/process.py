"""Supervision of agent CLI subprocesses (Claude Code, Codex, verification commands).

Contract:
- :func:`scrubbed_env` builds a child environment from an allowlist (``PATH``, ``HOME``,
  ``LANG``, ``LC_*``, ``TERM``, ``TMPDIR``, ``USER``, ``SHELL``) plus the names configured in
  ``pass_env``. Nothing else of the daemon's environment reaches the child: not
  ``EDGE_WORKER_*``, not ``ANTHROPIC_API_KEY``, unless ``pass_env`` names it.
- :meth:`SupervisedProcess.spawn` starts the child in its own session, hence its own process
  group (``pgid == pid``), with stdin closed. The child is tagged with
  :data:`RUN_MARKER_ENV` so :func:`reap_leftovers` can tell our groups from strangers'.
- :meth:`SupervisedProcess.run` streams stdout line by line to a callback, keeps a bounded
  tail of stderr, and ends the run on exit, on the wall-clock deadline (counted from spawn)
  or on :meth:`SupervisedProcess.request_stop`: SIGTERM to the whole group, then SIGKILL
  after the grace period. Cancelling the task that awaits ``run`` stops the group the same
  way. When ``run`` returns, no process of the group is left, including grandchildren.
- :func:`reap_leftovers` kills the groups a crashed daemon left behind, at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

ALLOWED_ENV_NAMES = ("PATH", "HOME", "LANG", "TERM", "TMPDIR", "USER", "SHELL")
"""Environment variables every child gets (when the daemon has them)."""

ALLOWED_ENV_PREFIXES = ("LC_",)

RUN_MARKER_ENV = "EDGE_AGENT_RUN_ID"
"""Set in every supervised child; :func:`reap_leftovers` only kills groups that carry it."""

DEFAULT_STDERR_TAIL_BYTES = 8192
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_POLL_SECONDS = 0.05
_PIPE_DRAIN_SECONDS = 2.0
_KILL_SETTLE_SECONDS = 5.0
_PROC = Path("/proc")


def scrubbed_env(
    pass_env: Iterable[str] = (),
    *,
    source: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for an agent subprocess.

    ``source`` defaults to ``os.environ``; ``pass_env`` names extra variables to copy from it
    (absent ones are skipped); ``extra`` is added last (values the daemon sets on purpose).
    """
    source = os.environ if source is None else source
    wanted = set(ALLOWED_ENV_NAMES) | {name for name in pass_env if name}
    env = {
        name: value
        for name, value in source.items()
        if name in wanted or name.startswith(ALLOWED_ENV_PREFIXES)
    }
    if extra:
        env.update(extra)
    return env


class StopReason(enum.StrEnum):
    """Why the daemon ended a run before the child exited on its own."""

    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and within which bounds."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    timeout_seconds: float
    kill_grace_seconds: float = 5.0
    run_id: str = ""
    merge_stderr: bool = False
    stderr_tail_bytes: int = DEFAULT_STDERR_TAIL_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


@dataclass(frozen=True)
class ProcessOutcome:
    """How a supervised process ended.

    ``exit_code`` is the child's return code (negative: killed by that signal);
    ``stopped`` says whether the daemon ended it (timeout or cancellation); ``killed`` that
    SIGKILL was needed because SIGTERM was not enough within the grace period.
    """

    exit_code: int | None
    stopped: StopReason | None
    killed: bool
    stderr_tail: str
    duration_seconds: float
    truncated_lines: int = 0


@dataclass
class _Tail:
    limit: int
    data: bytearray = field(default_factory=bytearray)

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


LineCallback = Callable[[str], Awaitable[None]]


class SupervisedProcess:
    """One child process and its process group, supervised until nothing of it is left."""

    def __init__(self, proc: asyncio.subprocess.Process, spec: ProcessSpec) -> None:
        self._proc = proc
        self._spec = spec
        self._started = time.monotonic()
        self._stop_requested = asyncio.Event()
        self._stop_reason: StopReason | None = None
        self._stderr = _Tail(spec.stderr_tail_bytes)
        self._truncated_lines = 0
        self.pid: int = proc.pid
        self.pgid: int = proc.pid  # start_new_session makes the child its group's leader

    @classmethod
    async def spawn(cls, spec: ProcessSpec) -> SupervisedProcess:
        """Start the child; raises ``FileNotFoundError`` when the binary does not exist."""
        env = dict(spec.env)
        env[RUN_MARKER_ENV] = spec.run_id or "unnamed"
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            cwd=str(spec.cwd),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if spec.merge_stderr else asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        log.debug("process.spawned", pid=proc.pid, argv0=spec.argv[0], run_id=spec.run_id)
        return cls(proc, spec)

    def request_stop(self, reason: StopReason = StopReason.CANCELLED) -> None:
        """Ask :meth:`run` to end the group (SIGTERM, then SIGKILL after the grace period)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop_requested.set()

    async def run(self, on_line: LineCallback) -> ProcessOutcome:
        """Stream stdout lines to ``on_line`` until the child ends or is stopped.

        If ``on_line`` raises, the group is stopped and the exception propagates.
        """
        pumps = [asyncio.create_task(self._pump_stdout(on_line))]
        if self._proc.stderr is not None:
            pumps.append(asyncio.create_task(self._pump_stderr()))
        exited = asyncio.create_task(self._wait_exit())
        stop = asyncio.create_task(self._stop_requested.wait())
        killed = False
        try:
            remaining = self._spec.timeout_seconds - (time.monotonic() - self._started)
            await asyncio.wait(
                {exited, stop, pumps[0]},
                timeout=max(remaining, 0.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if pumps[0].done() and pumps[0].exception() is not None:
                self.request_stop(StopReason.CANCELLED)
            # stdout may close before the child exits; keep waiting for exit or stop.
            while not exited.done() and not self._stop_requested.is_set():
                remaining = self._spec.timeout_seconds - (time.monotonic() - self._started)
                if remaining <= 0:
                    break
                await asyncio.wait(
                    {exited, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            if not exited.done() and self._stop_reason is None:
                self._stop_reason = StopReason.TIMED_OUT
            killed = await self._end_group()
            await self._drain(pumps)
        except asyncio.CancelledError:
            self._stop_reason = self._stop_reason or StopReason.CANCELLED
            await asyncio.shield(self._end_group())
            for task in pumps:
                task.cancel()
            raise
        finally:
            stop.cancel()
            if not exited.done():
                exited.cancel()
        error = pumps[0].exception() if pumps[0].done() and not pumps[0].cancelled() else None
        if error is not None:
            raise error
        return ProcessOutcome(
            exit_code=self._proc.returncode,
            stopped=self._stop_reason,
            killed=killed,
            stderr_tail=self._stderr.text(),
            duration_seconds=time.monotonic() - self._started,
            truncated_lines=self._truncated_lines,
        )

    async def _wait_exit(self) -> None:
        # Not ``Process.wait()``: it also waits for the pipes to close, which a grandchild
        # that inherited stdout can delay indefinitely after the child itself has exited.
        while self._proc.returncode is None:
            await asyncio.sleep(_POLL_SECONDS)

    async def _end_group(self) -> bool:
        """SIGTERM the group, SIGKILL what is left after the grace period; True if killed."""
        if self._proc.returncode is not None and not group_alive(self.pgid):
            return False
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + self._spec.kill_grace_seconds
        while time.monotonic() < deadline:
            if self._proc.returncode is not None and not group_alive(self.pgid):
                return False
            await asyncio.sleep(_POLL_SECONDS)
        _signal_group(self.pgid, signal.SIGKILL)
        log.warning("process.killed", pgid=self.pgid, run_id=self._spec.run_id)
        await self._wait_exit()
        # SIGKILL cannot be ignored; members vanish promptly unless stuck in the kernel.
        deadline = time.monotonic() + _KILL_SETTLE_SECONDS
        while group_alive(self.pgid) and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
        return True

    async def _drain(self, pumps: list[asyncio.Task[None]]) -> None:
        # Every writer of the pipes is gone now, so the pumps reach EOF; bound the wait in
        # case something escaped the group (setsid) while holding a pipe.
        _done, pending = await asyncio.wait(pumps, timeout=_PIPE_DRAIN_SECONDS)
        for task in pending:
            task.cancel()

    async def _pump_stdout(self, on_line: LineCallback) -> None:
        assert self._proc.stdout is not None
        limit = self._spec.max_line_bytes
        buffer = bytearray()
        overflowing = False
        while True:
            chunk = await self._proc.stdout.read(_READ_CHUNK)
            if not chunk:
                break
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    break
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                if overflowing:
                    overflowing = False  # the tail of an over-long line: drop it
                    continue
                if len(line) > limit:
                    self._note_truncated()
                    continue
                await on_line(line.decode("utf-8", errors="replace").rstrip("\r"))
            if len(buffer) > limit:
                if not overflowing:
                    self._note_truncated()
                overflowing = True
                buffer.clear()
        if buffer and not overflowing:
            await on_line(buffer.decode("utf-8", errors="replace").rstrip("\r"))

    def _note_truncated(self) -> None:
        self._truncated_lines += 1
        limit = self._spec.max_line_bytes
        log.warning("process.line_too_long", limit=limit, run_id=self._spec.run_id)

    async def _pump_stderr(self) -> None:
        assert self._proc.stderr is not None
        while True:
            chunk = await self._proc.stderr.read(_READ_CHUNK)
            if not chunk:
                return
            self._stderr.add(chunk)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that supervision reads."""

    state: str
    ppid: int
    pgrp: int

    @property
    def alive(self) -> bool:
        """Running or sleeping: neither a zombie nor dead."""
        return self.state not in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """Process ``pid``'s state, parent and group; ``None`` once it has gone (or without
    ``/proc``). Linux only."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces and ")": the fields
    # (state ppid pgrp ...) are the ones after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 3:
        return None
    return ProcStat(state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]))


def all_pids() -> list[int]:
    """Every process id in ``/proc`` at the time of the call."""
    return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``; Linux ``/proc`` only."""
    return [
        pid
        for pid in all_pids()
        if (stat := proc_stat(pid)) is not None and stat.pgrp == pgid and stat.alive
    ]


def group_alive(pgid: int) -> bool:
    """Whether any live process remains in group ``pgid`` (zombies do not count)."""
    if _PROC.is_dir():
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_marker(pid: int) -> str | None:
    """The :data:`RUN_MARKER_ENV` value process ``pid`` was started with (the run id, or
    ``verify:<worktree>`` for a verification command); ``None`` when it carries none or
    cannot be read. Linux ``/proc`` only."""
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = RUN_MARKER_ENV.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def _is_ours(pgid: int) -> bool:
    """A group is ours if one of its members carries the run marker.

    Linux does not reuse an id while a group of that id exists, so a marked member proves
    the group is the one we started, not a stranger's that was given a recycled id.
    """
    if not _PROC.is_dir():
        return True  # no way to tell; the recorded pgid is the best evidence we have
    return any(run_marker(pid) is not None for pid in group_members(pgid))


async def reap_leftovers(pgids: Iterable[int], *, grace_seconds: float = 2.0) -> list[int]:
    """Kill the process groups a previous daemon left running; return the ones it found.

    Call at start-up with the pgids recorded in unfinished run handles. Each group still
    alive and marked as ours gets SIGTERM, then SIGKILL after ``grace_seconds``.
    """
    own_group = os.getpgid(0)
    targets = [
        pgid
        for pgid in dict.fromkeys(pgids)
        if pgid > 1 and pgid != own_group and group_alive(pgid) and _is_ours(pgid)
    ]
    for pgid in targets:
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(group_alive(pgid) for pgid in targets):
        await asyncio.sleep(_POLL_SECONDS)
    stubborn = [pgid for pgid in targets if group_alive(pgid)]
    for pgid in stubborn:
        _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_SETTLE_SECONDS
    while time.monotonic() < deadline and any(group_alive(pgid) for pgid in stubborn):
        await asyncio.sleep(_POLL_SECONDS)
    if targets:
        log.warning("process.reaped_leftovers", pgids=targets)
    return targets
