"""Sans-I/O parser of Claude Code's ``--output-format stream-json --verbose`` output.

Contract:
- :meth:`ClaudeStreamParser.feed` takes one stdout line. ``system``/``init`` gives the
  session id and model; ``assistant`` gives text (a thought) and ``tool_use`` blocks (an
  action); ``user`` carries tool results (counted, not reported); ``result`` ends the run
  with ``subtype``, ``is_error``, ``total_cost_usd``, ``usage``, ``modelUsage``,
  ``model_usage_since_last_result``, ``num_turns``,
  ``session_id``, ``result`` and ``errors``. Unknown types are ignored; a line that is not a
  JSON object is logged and skipped.
- :func:`claude_run_result` maps what was parsed plus how the process ended to a
  :class:`RunResult`: ``success`` -> succeeded; ``error_max_budget_usd`` -> over budget;
  any other error (``error_max_turns``, ``error_during_execution``, ...) -> failed with the
  reason; no ``result`` line -> failed with the stderr tail (or timed out / cancelled when
  the daemon stopped it). Cost is what the CLI reported for this invocation: the
  ``costUSD`` of ``model_usage_since_last_result`` when present, $0 when it is present and
  empty (an invocation that used nothing, e.g. an API error right after ``--resume``) (the
  real CLI's ``total_cost_usd`` and ``modelUsage`` add up the whole session after
  ``--resume``, which would count earlier attempts twice), else ``total_cost_usd``; None
  when nothing was reported.
- Token convention: ``Usage.input_tokens`` counts every prompt token (fresh, cache writes
  and cache reads); ``Usage.cached_input_tokens`` is the cache-read subset of it and
  ``Usage.cache_write_input_tokens`` the cache-write subset.
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

SUBTYPE_SUCCESS = "success"
SUBTYPE_MAX_TURNS = "error_max_turns"
SUBTYPE_MAX_BUDGET = "error_max_budget_usd"
SUBTYPE_DURING_EXECUTION = "error_during_execution"

_TOOL_INPUT_KEYS = ("file_path", "path", "command", "pattern", "url", "query", "description")


@dataclass(frozen=True)
class ClaudeUsage:
    """Token counts as Claude reports them (``input_tokens`` excludes cache traffic)."""

    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def from_json(cls, data: Any) -> ClaudeUsage:
        if not isinstance(data, dict):
            return cls()
        return cls(
            input_tokens=json_int(data.get("input_tokens")),
            cache_read_input_tokens=json_int(data.get("cache_read_input_tokens")),
            cache_creation_input_tokens=json_int(data.get("cache_creation_input_tokens")),
            output_tokens=json_int(data.get("output_tokens")),
        )

    @classmethod
    def from_model_usage(cls, data: Any) -> ClaudeUsage | None:
        """The sum over ``modelUsage`` (camelCase, one entry per model used), if present."""
        if not isinstance(data, dict) or not data:
            return None
        entries = (
            cls(
                input_tokens=json_int(entry.get("inputTokens")),
                cache_read_input_tokens=json_int(entry.get("cacheReadInputTokens")),
                cache_creation_input_tokens=json_int(entry.get("cacheCreationInputTokens")),
                output_tokens=json_int(entry.get("outputTokens")),
            )
            for entry in data.values()
            if isinstance(entry, dict)
        )
        return usage_total(entries, cls())

    @property
    def is_empty(self) -> bool:
        return self == ClaudeUsage()

    def __add__(self, other: ClaudeUsage) -> ClaudeUsage:
        return ClaudeUsage(
            self.input_tokens + other.input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.output_tokens + other.output_tokens,
        )

    def to_usage(self) -> Usage:
        """In the project's convention: cached input is a subset of input."""
        return Usage(
            input_tokens=self.input_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens,
            cached_input_tokens=self.cache_read_input_tokens,
            cache_write_input_tokens=self.cache_creation_input_tokens,
            output_tokens=self.output_tokens,
        )


@dataclass(frozen=True)
class ClaudeResult:
    """The ``result`` line."""

    subtype: str
    is_error: bool
    total_cost_usd: float | None
    usage: ClaudeUsage
    model_usage: ClaudeUsage | None
    increment_usage: ClaudeUsage | None
    increment_cost_usd: float | None
    num_turns: int | None
    session_id: str | None
    result: str | None
    errors: tuple[str, ...]
    duration_ms: int | None


@dataclass
class ClaudeStreamParser:
    """Feeds on stream-json lines; holds what the run has told us so far."""

    session_id: str | None = None
    model: str | None = None
    result: ClaudeResult | None = None
    last_text: str | None = None
    tool_uses: int = 0
    tool_results: int = 0
    junk_lines: int = 0
    _message_usage: dict[str, ClaudeUsage] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def streamed_usage(self) -> ClaudeUsage:
        """Usage summed over assistant messages (each message id counted once)."""
        return usage_total(self._message_usage.values(), ClaudeUsage())

    def feed(self, line: str) -> list[Progress]:
        """Parse one line; return the progress it carries (possibly none)."""
        event = read_event(self, line, "claude_stream")
        if event is None:
            return []
        kind = event.get("type")
        if kind == "system":
            self._on_system(event)
        elif kind == "assistant":
            return self._on_assistant(event)
        elif kind == "user":
            self._on_user(event)
        elif kind == "result":
            self._on_result(event)
        return []

    def _on_system(self, event: dict[str, Any]) -> None:
        if event.get("subtype") != "init":
            return
        self.session_id = json_str(event.get("session_id")) or self.session_id
        self.model = json_str(event.get("model")) or self.model

    def _on_assistant(self, event: dict[str, Any]) -> list[Progress]:
        self.session_id = self.session_id or json_str(event.get("session_id"))
        message = event.get("message")
        if not isinstance(message, dict):
            return []
        message_id = json_str(message.get("id"))
        if message_id and "usage" in message:
            # stream-json repeats a message's usage on each of its content-block lines.
            self._message_usage[message_id] = ClaudeUsage.from_json(message["usage"])
        progress = []
        for block in _blocks(message.get("content")):
            if block.get("type") == "text" and json_str(block.get("text")):
                self.last_text = str(block["text"])
                progress.append(Progress("thought", clip(self.last_text)))
            elif block.get("type") == "tool_use":
                self.tool_uses += 1
                progress.append(Progress("action", _describe_tool(block)))
        return progress

    def _on_user(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        if isinstance(message, dict):
            self.tool_results += sum(
                1 for block in _blocks(message.get("content")) if block.get("type") == "tool_result"
            )

    def _on_result(self, event: dict[str, Any]) -> None:
        errors = event.get("errors")
        cost = event.get("total_cost_usd")
        since_last = event.get("model_usage_since_last_result")
        self.result = ClaudeResult(
            subtype=json_str(event.get("subtype")) or "",
            is_error=bool(event.get("is_error")),
            total_cost_usd=float(cost) if isinstance(cost, int | float) else None,
            usage=ClaudeUsage.from_json(event.get("usage")),
            model_usage=ClaudeUsage.from_model_usage(event.get("modelUsage")),
            increment_usage=_increment_usage(since_last),
            increment_cost_usd=_increment_cost(since_last),
            num_turns=event["num_turns"] if isinstance(event.get("num_turns"), int) else None,
            session_id=json_str(event.get("session_id")),
            result=event["result"] if isinstance(event.get("result"), str) else None,
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (),
            duration_ms=event["duration_ms"] if isinstance(event.get("duration_ms"), int) else None,
        )
        self.session_id = self.result.session_id or self.session_id


def claude_run_result(parser: ClaudeStreamParser, ending: Ending) -> RunResult:
    """The comparable result of a Claude Code run (no branch or run id: the caller adds them)."""
    result = parser.result
    common: dict[str, Any] = {
        "model": parser.model,
        "session_id": parser.session_id,
        "duration_seconds": ending.duration_seconds,
    }
    if result is None:
        return RunResult(
            status=stopped_status(ending) or RunStatus.FAILED,
            summary=parser.last_text or "",
            usage=parser.streamed_usage.to_usage(),
            error=_no_result_reason(ending),
            **common,
        )
    status, error = _status_of(result)
    return RunResult(
        status=status,
        summary=result.result or parser.last_text or "",
        cost_usd=_own_cost(result),
        usage=_best_usage(result, parser).to_usage(),
        num_turns=result.num_turns,
        error=error,
        **common,
    )


def _own_cost(result: ClaudeResult) -> float | None:
    if result.increment_cost_usd is not None:
        return result.increment_cost_usd
    return result.total_cost_usd


def _best_usage(result: ClaudeResult, parser: ClaudeStreamParser) -> ClaudeUsage:
    # This invocation's counts when the CLI gave them (possibly none at all: an API error
    # right after --resume). Otherwise: the real CLI's error results (budget) carry an
    # all-zero ``usage``; ``modelUsage`` covers every model but, after --resume, the whole
    # session: the last resort before the streamed messages.
    if result.increment_usage is not None:
        return result.increment_usage
    for candidate in (result.usage, result.model_usage):
        if candidate is not None and not candidate.is_empty:
            return candidate
    return parser.streamed_usage


def _increment_usage(since_last: Any) -> ClaudeUsage | None:
    """This invocation's usage: ``model_usage_since_last_result`` summed; an empty mapping
    is an invocation that used nothing (the real CLI, 2.1.332, after an API error); absent
    is unknown."""
    if isinstance(since_last, dict) and not since_last:
        return ClaudeUsage()
    return ClaudeUsage.from_model_usage(since_last)


def _increment_cost(since_last: Any) -> float | None:
    """This invocation's USD, as :func:`_increment_usage` counts its tokens."""
    if isinstance(since_last, dict) and not since_last:
        return 0.0
    return _model_usage_cost(since_last)


def _model_usage_cost(data: Any) -> float | None:
    """The sum of ``costUSD`` over a ``modelUsage``-shaped mapping, None if there is none."""
    if not isinstance(data, dict):
        return None
    costs = [
        float(entry["costUSD"])
        for entry in data.values()
        if isinstance(entry, dict) and isinstance(entry.get("costUSD"), int | float)
    ]
    return sum(costs) if costs else None


def _status_of(result: ClaudeResult) -> tuple[RunStatus, str | None]:
    detail = "; ".join(result.errors)
    if result.subtype == SUBTYPE_SUCCESS and not result.is_error:
        return RunStatus.SUCCEEDED, None
    if result.subtype == SUBTYPE_MAX_BUDGET:
        return RunStatus.OVER_BUDGET, detail or "reached the maximum budget (--max-budget-usd)"
    if result.subtype == SUBTYPE_MAX_TURNS:
        # The CLI's own message names the limit; num_turns may count one past it.
        turns = f" ({result.num_turns})" if result.num_turns is not None else ""
        return RunStatus.FAILED, detail or f"reached the maximum number of turns{turns}"
    reason = detail or (result.result or "").strip() or "no detail given"
    return RunStatus.FAILED, f"Claude Code reported {result.subtype or 'an error'}: {reason}"


def _no_result_reason(ending: Ending) -> str:
    if ending.stopped == "timed_out":
        return f"no result within the wall-clock limit ({ending.duration_seconds:.0f} s); stopped"
    if ending.stopped == "cancelled":
        return "cancelled before a result"
    return no_result_reason(ending, "a result line")


def _describe_tool(block: dict[str, Any]) -> str:
    name = json_str(block.get("name")) or "tool"
    arguments = block.get("input")
    if isinstance(arguments, dict):
        for key in _TOOL_INPUT_KEYS:
            value = arguments.get(key)
            if isinstance(value, str) and value.strip():
                return clip(f"{name}: {value}", 200)
    return name


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []
