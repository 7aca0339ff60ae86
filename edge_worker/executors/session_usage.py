"""One run's usage from the session totals a CLI reports (sans-I/O).

Some CLIs report the *session's* running total at the end of each invocation rather than
the invocation's own use (the real Codex CLI does after ``exec resume``). The delta rule:

- a first run (no total before it) used what it reported;
- a resumed run used the reported total minus the total at the end of the previous run of
  the same session, token kind by token kind;
- when that total is unknown, or the new total is lower than it in any kind (the CLI's
  semantics changed), the reported figure is kept and the run is marked *uncertain*:
  never a negative amount, and the caller says "uncertain" instead of pretending.

The total before a run travels in the run handle's ``extra`` under
:data:`SESSION_USAGE_BEFORE` (a :class:`~edge_worker.executors.base.Usage` as plain data, or
:data:`UNKNOWN_BEFORE`), so it is stored with the handle and survives a daemon restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_worker.executors.base import Usage

SESSION_USAGE_BEFORE = "session_usage_before"
"""Key in ``RunHandle.extra``: the session's reported total when this run started."""

UNKNOWN_BEFORE = "unknown"
"""Stored instead of a total when the session went on but its total could not be read."""

_FIELDS = tuple(Usage.model_fields)


@dataclass(frozen=True)
class RunUsage:
    """What one run used, and whether that figure is certain."""

    usage: Usage
    uncertain: bool = False


Before = Usage | None | str
"""A total before the run: a :class:`Usage`, ``None`` (a first run) or :data:`UNKNOWN_BEFORE`."""


def usage_since(reported: Usage, before: Before) -> RunUsage:
    """This run's usage from the session total ``reported`` at its end (the delta rule)."""
    if before is None:
        return RunUsage(reported)
    if not isinstance(before, Usage):
        return RunUsage(reported, uncertain=True)
    now, then = reported.model_dump(), before.model_dump()
    if any(now[name] < then[name] for name in _FIELDS):
        return RunUsage(reported, uncertain=True)
    return RunUsage(Usage(**{name: now[name] - then[name] for name in _FIELDS}))


def before_from_extra(extra: dict[str, Any]) -> Before:
    """The total before the run, as stored in a handle's ``extra`` (absent: a first run)."""
    value = extra.get(SESSION_USAGE_BEFORE)
    if value is None:
        return None
    if isinstance(value, dict):
        try:
            return Usage.model_validate(value)
        except ValueError:
            return UNKNOWN_BEFORE
    return UNKNOWN_BEFORE


def before_to_extra(before: Before) -> dict[str, Any]:
    """``before`` as a handle's ``extra`` entry (nothing for a first run)."""
    if before is None:
        return {}
    if isinstance(before, Usage):
        return {SESSION_USAGE_BEFORE: before.model_dump()}
    return {SESSION_USAGE_BEFORE: UNKNOWN_BEFORE}


def total_after(reported: Usage | None, before: Before) -> Before:
    """The session's total at the end of a run: what it reported, else what it had before.

    A run that reported nothing (killed before its turn completed) leaves the last known
    total standing, so the next run's delta also covers whatever the killed one used.
    """
    return reported if reported is not None else before
