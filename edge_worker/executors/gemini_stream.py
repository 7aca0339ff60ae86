"""Sans-I/O parser of ``gemini --output-format stream-json`` output (one JSON event per line).

Contract (the documented headless format, checked against ``@google/gemini-cli`` 0.61.0):
- :meth:`GeminiStreamParser.feed` takes one stdout line. ``init{session_id, model}`` gives
  the session id (for ``--resume``) and the model; ``message{role, content, delta}`` from
  the assistant is text (``delta: true`` chunks are joined; a message ends at the next
  event of another kind, and the last one is the summary); ``tool_use{tool_name,
  parameters}`` is an action; ``tool_result`` is ignored; ``error{severity, message}`` is a
  non-fatal notice, logged and kept in :attr:`GeminiStreamParser.notices`;
  ``result{status, error{type, message}, stats}`` ends the run.
- ``stats`` are this invocation's (the CLI counts per process, also after ``--resume``):
  per model in ``stats.models`` (``input_tokens`` = prompt tokens including the cached
  ones, ``cached``, ``output_tokens`` = candidates, ``total_tokens``). What ``total_tokens``
  holds beyond prompt and candidates (thinking, and tool-use prompt tokens when there are
  any) is counted as reasoning output: an upper bound on the price, never an undercount.
  :attr:`GeminiStreamParser.usage_by_model` maps each model to its
  :class:`~edge_worker.executors.base.Usage` (``input_tokens`` including cache reads, as
  Codex counts them).
- Unknown types are ignored; a line that is not a JSON object is logged and skipped.
- :func:`gemini_run_result` maps that plus how the process ended to a :class:`RunResult`;
  the caller passes the cost (None: unpriced). Exit code 53 is the CLI's turn limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from edge_worker.executors.base import RunResult, RunStatus, Usage
from edge_worker.executors.stream_parsing import (
    json_int,
    json_str,
    no_result_reason,
    read_event,
    stopped_status,
    usage_total,
)
from edge_worker.executors.stream_types import Ending, Progress, clip

log = structlog.get_logger(__name__)

TURN_LIMIT_EXIT_CODE = 53
INPUT_ERROR_EXIT_CODE = 42
TURN_LIMIT_REASON = "stopped at its turn limit before finishing"


@dataclass
class GeminiStreamParser:
    """Feeds on ``stream-json`` lines; holds what the run has told us so far."""

    session: str | None = None
    model: str | None = None
    result_status: str | None = None
    result_error: str | None = None
    usage_by_model: dict[str, Usage] = field(default_factory=dict)
    tool_calls: int | None = None
    notices: list[str] = field(default_factory=list)
    summary: str | None = None
    junk_lines: int = 0
    _message: list[str] = field(default_factory=list)

    @property
    def session_id(self) -> str | None:
        return self.session

    @property
    def finished(self) -> bool:
        return self.result_status is not None

    @property
    def usage(self) -> Usage:
        """The run's tokens over every model it used."""
        return usage_total(self.usage_by_model.values(), Usage())

    def feed(self, line: str) -> list[Progress]:
        """Parse one line; return the progress it carries (possibly none)."""
        event = read_event(self, line, "gemini_stream")
        if event is None:
            return []
        kind = event.get("type")
        if kind == "message":
            if event.get("role") == "assistant" and isinstance(event.get("content"), str):
                if not event.get("delta"):
                    self._message = []
                self._message.append(event["content"])
            return []
        progress = self._end_message()
        if kind == "init":
            self.session = json_str(event.get("session_id")) or self.session
            self.model = json_str(event.get("model")) or self.model
        elif kind == "tool_use":
            progress += _tool_progress(event)
        elif kind == "error":
            notice = json_str(event.get("message")) or "error without a message"
            self.notices.append(notice)
            log.warning(
                "gemini_stream.notice", severity=event.get("severity"), message=clip(notice, 500)
            )
        elif kind == "result":
            self._on_result(event)
        return progress

    def _end_message(self) -> list[Progress]:
        text = "".join(self._message).strip()
        self._message = []
        if not text:
            return []
        self.summary = text
        return [Progress("thought", clip(text))]

    def _on_result(self, event: dict[str, Any]) -> None:
        self.result_status = json_str(event.get("status")) or "error"
        error = event.get("error")
        if isinstance(error, dict):
            self.result_error = json_str(error.get("message")) or json_str(error.get("type"))
        stats = event.get("stats")
        if not isinstance(stats, dict):
            return
        self.tool_calls = json_int(stats.get("tool_calls"))
        models = stats.get("models")
        if isinstance(models, dict) and models:
            self.usage_by_model = {
                str(name): _usage(data) for name, data in models.items() if isinstance(data, dict)
            }
        elif any(key in stats for key in ("input_tokens", "output_tokens", "total_tokens")):
            self.usage_by_model = {self.model or "": _usage(stats)}


def gemini_run_result(
    parser: GeminiStreamParser, ending: Ending, *, model: str | None, cost_usd: float | None
) -> RunResult:
    """The comparable result of a Gemini run (no branch or run id: the caller adds them)."""
    status, error = _status_of(parser, ending)
    return RunResult(
        status=status,
        summary=parser.summary or "",
        cost_usd=cost_usd,
        model=model,
        usage=parser.usage,
        duration_seconds=ending.duration_seconds,
        session_id=parser.session,
        error=error,
    )


def _status_of(parser: GeminiStreamParser, ending: Ending) -> tuple[RunStatus, str | None]:
    if ending.exit_code == TURN_LIMIT_EXIT_CODE:
        return RunStatus.FAILED, TURN_LIMIT_REASON
    if parser.result_status == "success":
        # A reported success is the work done; a CLI that then lingered and was stopped
        # does not undo it. A non-zero exit of its own accord does.
        if ending.exit_code in (0, None) or ending.stopped is not None:
            return RunStatus.SUCCEEDED, None
        return RunStatus.FAILED, f"exited with code {ending.exit_code} after reporting success"
    if parser.result_status is not None:
        return RunStatus.FAILED, parser.result_error or "the run reported an error"
    stopped = stopped_status(ending)
    if stopped is RunStatus.TIMED_OUT:
        return stopped, "no result within the wall-clock limit; stopped"
    if stopped is RunStatus.CANCELLED:
        return stopped, "cancelled before the run finished"
    return RunStatus.FAILED, no_result_reason(ending, "a result")


def _tool_progress(event: dict[str, Any]) -> list[Progress]:
    name = json_str(event.get("tool_name")) or "tool"
    parameters = event.get("parameters")
    params = parameters if isinstance(parameters, dict) else {}
    if name == "run_shell_command" and json_str(params.get("command")):
        return [Progress("action", clip(f"$ {params['command']}", 200))]
    path = json_str(params.get("file_path")) or json_str(params.get("absolute_path"))
    if name in ("write_file", "replace") and path:
        return [Progress("action", clip(f"edited {path}", 200))]
    return [Progress("action", clip(f"tool: {name}", 200))]


def _usage(data: dict[str, Any]) -> Usage:
    prompt = json_int(data.get("input_tokens"))
    candidates = json_int(data.get("output_tokens"))
    rest = max(json_int(data.get("total_tokens")) - prompt - candidates, 0)
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=min(json_int(data.get("cached")), prompt),
        output_tokens=candidates + rest,
        reasoning_output_tokens=rest,
    )
