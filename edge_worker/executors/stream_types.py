"""Plain data shared by the agent-CLI stream parsers (no I/O here).

A parser turns one stdout line at a time into :class:`Progress` items for Linear and keeps
what it needs for the final :class:`~edge_worker.executors.base.RunResult`; :class:`Ending`
says how the process ended, as observed by the supervisor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

ProgressKind = Literal["thought", "action"]

PROGRESS_TEXT_LIMIT = 500
"""Progress texts are cut to this many characters: they feed Linear activities."""


@dataclass(frozen=True)
class Progress:
    """Something worth showing while a run is going: a thought (text) or an action (tool)."""

    kind: ProgressKind
    text: str


@dataclass(frozen=True)
class Ending:
    """How the process ended: exit code (None if unknown), whether the daemon stopped it
    (``"timed_out"`` or ``"cancelled"``), the tail of its stderr, and how long it ran."""

    exit_code: int | None = None
    stopped: Literal["timed_out", "cancelled"] | None = None
    stderr_tail: str = ""
    duration_seconds: float = 0.0


class StreamParser(Protocol):
    """What the local executors need from a CLI's stream parser."""

    @property
    def session_id(self) -> str | None: ...

    @property
    def finished(self) -> bool:
        """Whether the stream reported the run's end (a result, a completed or failed turn)."""
        ...

    def feed(self, line: str) -> list[Progress]: ...


def clip(text: str, limit: int = PROGRESS_TEXT_LIMIT) -> str:
    """``text`` stripped and cut to ``limit`` characters (with an ellipsis when cut)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stderr_reason(stderr_tail: str, limit: int = 1000) -> str:
    """The last ``limit`` characters of stderr, or a note that there was none."""
    tail = stderr_tail.strip()
    if not tail:
        return "no output on stderr"
    return tail if len(tail) <= limit else "…" + tail[-limit:]


def decode_line(line: str) -> dict[str, Any] | None:
    """The JSON object on one line of a CLI's output.

    ``{}`` for a blank line (nothing to parse, not junk); ``None`` when the line is not a
    JSON object (junk the caller logs and skips).
    """
    line = line.strip()
    if not line:
        return {}
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
