"""What the agent-CLI stream parsers (Claude Code, Codex, Gemini) share.

Contract:
- :func:`read_event` turns one stdout line into its JSON object; a blank line or a line
  that is not a JSON object gives None, and the latter is counted on the parser's
  ``junk_lines`` and logged as ``<source>.junk_line`` (clipped to 200 characters).
- :func:`json_str` / :func:`json_int` read a field of a decoded event: a non-empty string
  (else None), an integer that is not a bool (else 0).
- :func:`usage_total` sums token counts (``Usage`` or a CLI's own counter with ``+``).
- :func:`stopped_status` is the status of a run the daemon stopped before the stream said
  it finished; :func:`no_result_reason` words a run that exited on its own without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, Self, TypeVar

import structlog

from edge_worker.executors.base import RunStatus
from edge_worker.executors.stream_types import Ending, clip, decode_line, stderr_reason

log = structlog.get_logger(__name__)


class CountsJunk(Protocol):
    """A parser that counts the lines it could not read."""

    junk_lines: int


def read_event(parser: CountsJunk, line: str, source: str) -> dict[str, Any] | None:
    """The JSON object on ``line``; None for a blank line or junk (counted and logged)."""
    event = decode_line(line)
    if event is None:
        parser.junk_lines += 1
        log.warning(f"{source}.junk_line", line=clip(line.strip(), 200))
        return None
    return event or None


def json_str(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def json_int(value: Any) -> int:
    """``value`` if it is an integer (not a bool), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Addable(Protocol):
    """Token counts that add up (``Usage``, ``ClaudeUsage``)."""

    def __add__(self, other: Self, /) -> Self: ...


U = TypeVar("U", bound=Addable)


def usage_total(usages: Iterable[U], zero: U) -> U:
    """``zero`` plus every item of ``usages``, in order."""
    total = zero
    for usage in usages:
        total = total + usage
    return total


def stopped_status(ending: Ending) -> RunStatus | None:
    """TIMED_OUT or CANCELLED when the daemon stopped the run, else None."""
    if ending.stopped == "timed_out":
        return RunStatus.TIMED_OUT
    if ending.stopped == "cancelled":
        return RunStatus.CANCELLED
    return None


def no_result_reason(ending: Ending, missing: str) -> str:
    """Why a run that exited on its own without ``missing`` (e.g. "a result") failed."""
    code = "unknown" if ending.exit_code is None else str(ending.exit_code)
    return f"exited with code {code} without {missing}: {stderr_reason(ending.stderr_tail)}"
