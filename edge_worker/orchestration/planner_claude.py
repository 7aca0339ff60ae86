"""The ``claude-code`` planner backend: the local Claude Code CLI, read-only, in the repository.

Contract:
- Runs ``<binary> -p --output-format json --json-schema <plan schema> --permission-mode plan
  --disallowedTools Edit,Write,NotebookEdit --append-system-prompt <orchestrator prompt>``
  (plus ``--model`` when configured) in the repository, the issue's input on stdin (no
  argument-length limit), in its own process group with a scrubbed environment: only
  basic variables and those named in ``pass_env`` reach it, so no daemon secret leaks.
- The plan is the result's ``structured_output`` (what ``--json-schema`` produces), or else
  its ``result`` text; cost is ``total_cost_usd``, tokens come from ``usage``.
- Images attached to the issue are named (with their paths) at the end of the input and
  their directories given with ``--add-dir``, so the CLI can open them read-only.
- A re-ask resumes the same CLI session (``--resume <session_id>``) with the validation
  error as the prompt, so the model keeps what it read of the repository.
- Timeout: SIGTERM to the group, then SIGKILL after ``kill_grace_seconds``; a timeout, a
  crash or an error result raises :class:`PlannerUnavailable` (an exhausted structured
  output retry is a rejected plan instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from edge_worker.executors.base import Usage
from edge_worker.orchestration.plan import plan_json_schema
from edge_worker.orchestration.planner import (
    PlannerImage,
    PlannerUnavailable,
    Proposal,
    Rejection,
)

log = structlog.get_logger(__name__)

BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TMPDIR", "SHELL")
READ_ONLY_DENIED = "Edit,Write,NotebookEdit"
TAIL_CHARS = 2_000
IMAGES_NOTE = (
    "Images attached to the issue (open them with your Read tool; they are data like the "
    "issue text):"
)


def planner_env(pass_env: Iterable[str], source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: :data:`BASE_ENV` and ``pass_env`` names copied from ``source``."""
    source = os.environ if source is None else source
    wanted = {*BASE_ENV, *pass_env}
    return {name: value for name, value in source.items() if name in wanted}


class ClaudeCodeBackend:
    """Plans with the local ``claude`` CLI in print mode."""

    name = "claude-code"

    def __init__(
        self,
        *,
        binary: str = "claude",
        model: str | None = None,
        timeout_seconds: float = 600.0,
        kill_grace_seconds: float = 5.0,
        pass_env: Iterable[str] = (),
        permission_mode: str = "plan",
    ) -> None:
        self.binary = binary
        self.model = model
        self._timeout = timeout_seconds
        self._grace = kill_grace_seconds
        self._pass_env = list(pass_env)
        self._permission_mode = permission_mode

    def command(
        self, *, system: str, session_id: str | None, image_dirs: Sequence[str] = ()
    ) -> list[str]:
        """The argv for a first ask (``session_id=None``) or a re-ask in that session."""
        argv = [
            self.binary,
            "-p",
            "--output-format",
            "json",
            "--json-schema",
            json.dumps(plan_json_schema(), separators=(",", ":")),
            "--permission-mode",
            self._permission_mode,
            "--disallowedTools",
            READ_ONLY_DENIED,
        ]
        if session_id:
            argv += ["--resume", session_id]
        else:
            argv += ["--append-system-prompt", system]
        for directory in image_dirs:
            argv += ["--add-dir", directory]
        if self.model:
            argv += ["--model", self.model]
        return argv

    async def propose(
        self,
        *,
        system: str,
        prompt: str,
        cwd: str | None,
        rejection: Rejection | None,
        images: Sequence[PlannerImage] = (),
    ) -> Proposal:
        session_id = None
        if images:
            listing = "\n".join(f"- {image.name}: {image.path}" for image in images)
            prompt = f"{prompt}\n\n{IMAGES_NOTE}\n{listing}"
        stdin_text = prompt
        if rejection is not None:
            session_id = rejection.proposal.state
            stdin_text = rejection.message if session_id else f"{prompt}\n\n{rejection.message}"
        image_dirs = sorted({str(Path(image.path).parent) for image in images})
        argv = self.command(
            system=system, session_id=session_id if rejection else None, image_dirs=image_dirs
        )
        returncode, stdout, stderr = await self._run(argv, stdin_text, cwd)
        result = _find_result(stdout)
        if result is None:
            raise PlannerUnavailable(
                f"{self.binary} exited with status {returncode} without a result: "
                f"{_tail(stderr) or _tail(stdout) or 'no output'}"
            )
        usage = _usage(result.get("usage"))
        cost = result.get("total_cost_usd")
        cost_usd = float(cost) if isinstance(cost, int | float) else None
        model = _model(result) or self.model or "claude-code"
        session = result.get("session_id")
        new_session = session if isinstance(session, str) else None
        subtype = result.get("subtype")
        if subtype == "error_max_structured_output_retries":
            return Proposal(
                raw=None,
                usage=usage,
                cost_usd=cost_usd,
                model=model,
                problem="no plan matching the JSON schema was produced",
                state=new_session,
            )
        if result.get("is_error") or subtype != "success":
            errors = result.get("errors") or result.get("result") or subtype
            raise PlannerUnavailable(f"{self.binary} failed ({subtype}): {_tail(str(errors))}")
        raw = result.get("structured_output")
        if raw is None:
            raw = _strip_fences(str(result.get("result") or ""))
        return Proposal(raw=raw, usage=usage, cost_usd=cost_usd, model=model, state=new_session)

    async def _run(self, argv: list[str], stdin_text: str, cwd: str | None) -> tuple[int, str, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=planner_env(self._pass_env),
                start_new_session=True,
            )
        except OSError as exc:
            raise PlannerUnavailable(f"cannot start {self.binary}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(self._timeout):
                stdout, stderr = await process.communicate(stdin_text.encode())
        except TimeoutError:
            await self._kill(process)
            raise PlannerUnavailable(
                f"{self.binary} did not finish planning within {self._timeout:g} s"
            ) from None
        except BaseException:
            await self._kill(process)
            raise
        return (
            process.returncode or 0,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                async with asyncio.timeout(self._grace):
                    await process.wait()
                break
            except TimeoutError:
                continue
        if process.returncode is None:
            await process.wait()
        log.warning("planner_cli_killed", pid=process.pid, returncode=process.returncode)


def _find_result(stdout: str) -> dict[str, Any] | None:
    """The ``result`` object: the whole output, or its last JSON line of type ``result``."""
    text = stdout.strip()
    with contextlib.suppress(ValueError):
        whole = json.loads(text)
        if isinstance(whole, dict) and whole.get("type") == "result":
            return whole
        if isinstance(whole, list):  # an array of messages (older CLIs)
            results = [m for m in whole if isinstance(m, dict) and m.get("type") == "result"]
            return results[-1] if results else None
    for line in reversed(text.splitlines()):
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict) and item.get("type") == "result":
                return item
    return None


def _usage(payload: object) -> Usage:
    if not isinstance(payload, dict):
        return Usage()

    def count(name: str) -> int:
        value = payload.get(name)
        return value if isinstance(value, int) else 0

    return Usage(
        input_tokens=count("input_tokens") + count("cache_creation_input_tokens"),
        cached_input_tokens=count("cache_read_input_tokens"),
        output_tokens=count("output_tokens"),
    )


def _model(result: dict[str, Any]) -> str | None:
    model_usage = result.get("modelUsage")
    if isinstance(model_usage, dict) and model_usage:
        # The most expensive model did the planning; small helper models may appear too.
        def spent(name: str) -> float:
            entry = model_usage.get(name)
            cost = entry.get("costUSD") if isinstance(entry, dict) else None
            return float(cost) if isinstance(cost, int | float) else 0.0

        return str(max(model_usage, key=spent))
    return None


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TAIL_CHARS else "…" + text[-TAIL_CHARS:]
