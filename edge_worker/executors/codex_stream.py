"""Sans-I/O parser of ``codex exec --json`` output (one JSON event per line).

Contract:
- :meth:`CodexStreamParser.feed` takes one stdout line. ``thread.started{thread_id}`` gives
  the session id (for ``exec resume``); ``item.started/updated/completed`` are progress
  (commands, file changes, reasoning, agent messages; the last completed ``agent_message``
  is the summary); ``turn.completed{usage}`` gives the thread's tokens so far
  (``input_tokens``; ``cached_input_tokens`` and ``cache_write_input_tokens``, subsets of
  input; ``output_tokens``; ``reasoning_output_tokens``, a subset of output). The real CLI
  (0.169.0) reports the *thread's running total* there, so after ``exec resume`` it includes
  every earlier run of the thread: :attr:`CodexStreamParser.thread_usage` is the last one
  reported, and the executor subtracts what the thread had before this run.
  ``turn.failed{error}`` and ``error{message}`` record failures; an ``item.completed`` of
  type ``error`` is a notice the CLI continues past (e.g. no metadata for the model): it is
  logged and kept in :attr:`CodexStreamParser.notices`, never a failure. Unknown types are
  ignored; a line that is not a JSON object is logged and skipped.
- :func:`codex_run_result` maps that plus how the process ended to a :class:`RunResult`.
  Codex reports no money: the caller passes this run's ``usage`` and its ``cost_usd``
  (None: unpriced).
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
)
from edge_worker.executors.stream_types import Ending, Progress, clip

log = structlog.get_logger(__name__)


@dataclass
class CodexStreamParser:
    """Feeds on ``exec --json`` lines; holds what the run has told us so far."""

    thread_id: str | None = None
    thread_usage: Usage | None = None
    turns_completed: int = 0
    turn_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    summary: str | None = None
    junk_lines: int = 0
    log_notices: bool = True

    @property
    def session_id(self) -> str | None:
        return self.thread_id

    @property
    def finished(self) -> bool:
        return self.turns_completed > 0 or bool(self.turn_failures)

    def feed(self, line: str) -> list[Progress]:
        """Parse one line; return the progress it carries (possibly none)."""
        event = read_event(self, line, "codex_stream")
        if event is None:
            return []
        kind = event.get("type")
        if kind == "thread.started":
            self.thread_id = json_str(event.get("thread_id")) or self.thread_id
        elif kind == "turn.completed":
            self.turns_completed += 1
            self.thread_usage = _usage(event.get("usage"))
        elif kind == "turn.failed":
            error = event.get("error")
            message = json_str(error.get("message")) if isinstance(error, dict) else None
            self.turn_failures.append(message or "turn failed without a message")
        elif kind == "error":
            self.errors.append(json_str(event.get("message")) or "error without a message")
        elif isinstance(kind, str) and kind.startswith("item."):
            item = event.get("item")
            if isinstance(item, dict):
                return self._on_item(kind, item)
        return []

    def _on_item(self, kind: str, item: dict[str, Any]) -> list[Progress]:
        item_type = item.get("type")
        if kind == "item.started":
            if item_type == "command_execution" and json_str(item.get("command")):
                return [Progress("action", clip(f"$ {item['command']}", 200))]
            if item_type == "mcp_tool_call":
                parts = (json_str(item.get("server")), json_str(item.get("tool")))
                name = ".".join(filter(None, parts))
                return [Progress("action", clip(f"tool: {name or 'mcp'}", 200))]
            return []
        if kind != "item.completed":
            return []
        if item_type == "error":
            notice = json_str(item.get("message")) or "error item without a message"
            self.notices.append(notice)
            if self.log_notices:
                log.warning("codex_stream.notice", message=clip(notice, 500))
            return []
        text = json_str(item.get("text"))
        if item_type == "agent_message" and text:
            self.summary = text
            return [Progress("thought", clip(text))]
        if item_type == "reasoning" and text:
            return [Progress("thought", clip(text))]
        if item_type == "file_change":
            paths = [
                str(change["path"])
                for change in item.get("changes") or []
                if isinstance(change, dict) and json_str(change.get("path"))
            ]
            return [Progress("action", clip("edited " + ", ".join(paths or ["files"]), 200))]
        if item_type == "web_search" and json_str(item.get("query")):
            return [Progress("action", clip(f"search: {item['query']}", 200))]
        return []


def codex_run_result(
    parser: CodexStreamParser,
    ending: Ending,
    *,
    model: str | None,
    cost_usd: float | None,
    usage: Usage | None = None,
    cost_uncertain: bool = False,
) -> RunResult:
    """The comparable result of a Codex run (no branch or run id: the caller adds them).

    ``usage`` is this run's own (default: the thread total the CLI reported, right for a
    first run).
    """
    if usage is None:
        usage = parser.thread_usage or Usage()
    status, error = _status_of(parser, ending)
    return RunResult(
        status=status,
        summary=parser.summary or "",
        cost_usd=cost_usd,
        cost_uncertain=cost_uncertain,
        model=model,
        usage=usage,
        duration_seconds=ending.duration_seconds,
        session_id=parser.thread_id,
        error=error,
        num_turns=parser.turns_completed or None,
    )


def _status_of(parser: CodexStreamParser, ending: Ending) -> tuple[RunStatus, str | None]:
    if parser.turn_failures:
        return RunStatus.FAILED, "; ".join(parser.turn_failures + parser.errors)
    if parser.turns_completed:
        # A completed turn is the work done; a CLI that then lingered and was stopped
        # does not undo it. A non-zero exit of its own accord does.
        if ending.exit_code in (0, None) or ending.stopped is not None:
            return RunStatus.SUCCEEDED, None
        return RunStatus.FAILED, f"exited with code {ending.exit_code} after its turn completed"
    stopped = stopped_status(ending)
    if stopped is RunStatus.TIMED_OUT:
        return stopped, "no completed turn within the wall-clock limit; stopped"
    if stopped is RunStatus.CANCELLED:
        return stopped, "cancelled before the turn completed"
    if parser.errors:
        return RunStatus.FAILED, "; ".join(parser.errors)
    return RunStatus.FAILED, no_result_reason(ending, "a completed turn")


def _usage(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(
        input_tokens=json_int(data.get("input_tokens")),
        cached_input_tokens=json_int(data.get("cached_input_tokens")),
        output_tokens=json_int(data.get("output_tokens")),
        cache_write_input_tokens=json_int(data.get("cache_write_input_tokens")),
        reasoning_output_tokens=json_int(data.get("reasoning_output_tokens")),
    )
