"""Recovery from known agent failures: a table of failure patterns per executor, each
mapped to an action, and the matcher that picks one (sans-I/O: no clock, no process).

Contract:
- :data:`PATTERNS` lists what is known: a CLI refusing a directory outside its
  workspace, Codex refusing a directory that is not a git repository, an expired login, a
  usage limit reached (with its reset time), a model overloaded.
- :func:`failure_text` is what a failed run's CLI said: the result's ``error`` (the exit
  code, the stderr tail, the CLI's own error lines), never the agent's ``summary``: an
  agent that merely writes "usage limit reached" in its answer has not hit one.
- :func:`decide` matches that text against the patterns of its executor and returns a
  :class:`Recovery`: ``relaunch`` (the same session or a new
  one in the same worktree, with the pattern's corrected flags), ``wait`` (sleep until the
  reset time or a backoff, then continue the same session), ``switch`` (give the sub-task
  to another executor) or ``escalate`` (a human must act). ``None`` when nothing matches.
- A pattern applied as often as its ``bound`` escalates instead: a pattern never loops.
  An overloaded model waits ``overload_wait_seconds``, doubling with each repeat.
  A wait longer than ``max_wait_seconds`` switches executor instead of sleeping.
- A corrected ``--add-dir`` is only given for a directory under an allowed root (the
  repository's clone, the worktree root); any other directory escalates.
- Reasons are the named texts below: one line a user can act on, no paths or commands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any


class Action(StrEnum):
    RELAUNCH = "relaunch"
    WAIT = "wait"
    SWITCH = "switch"
    ESCALATE = "escalate"


REASON_OUTSIDE_WORKSPACE = (
    "The agent was refused a directory outside its worktree; relaunched with it allowed."
)
REASON_OUTSIDE_DENIED = (
    "The agent asked for a directory outside the repository; a human must decide."
)
REASON_NOT_GIT = (
    "Codex refused a directory that is not a git repository; relaunched with the check off."
)
REASON_LOGIN_EXPIRED = (
    "The {executor} login has expired; the sub-task moves to another executor until "
    "someone logs in again."
)
REASON_USAGE_LIMIT = "The {executor} usage limit was reached; the run continues after its reset."
REASON_USAGE_LIMIT_LONG = (
    "The {executor} usage limit resets too late to wait for; the sub-task moves to another "
    "executor."
)
REASON_OVERLOADED = "The model was overloaded; the run continues after a pause."
REASON_BOUND = "The same failure ({pattern}) came back after {times} recoveries; a human must look."

DEFAULT_LIMIT_WAIT_SECONDS = 3600.0
OVERLOAD_BASE_SECONDS = 30.0


@dataclass(frozen=True)
class FailurePattern:
    """A known failure: where it happens, how it reads, what to do, at most how often."""

    name: str
    executors: frozenset[str]
    regex: re.Pattern[str]
    action: Action
    bound: int
    reason: str
    flags: tuple[str, ...] = ()


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


LOCAL = frozenset({"claude-code", "codex"})

PATTERNS: tuple[FailurePattern, ...] = (
    FailurePattern(
        "outside_workspace",
        frozenset({"claude-code"}),
        _re(
            r"(?P<path>/[^\s'\"`,;]+)['\"`]?[^\n]{0,40}?outside (?:of )?(?:the )?"
            r"(?:allowed working director(?:y|ies)|workspace)"
        ),
        Action.RELAUNCH,
        1,
        REASON_OUTSIDE_WORKSPACE,
        ("--add-dir",),
    ),
    FailurePattern(
        "not_a_git_repository",
        frozenset({"codex"}),
        _re(r"not inside a trusted directory and --skip-git-repo-check was not specified"),
        Action.RELAUNCH,
        1,
        REASON_NOT_GIT,
        ("--skip-git-repo-check",),
    ),
    FailurePattern(
        "login_expired",
        LOCAL,
        _re(
            r"invalid api key|please run /login|oauth token (?:has )?expired|"
            r"access token could not be refreshed"
        ),
        Action.SWITCH,
        1,
        REASON_LOGIN_EXPIRED,
    ),
    FailurePattern(
        "usage_limit",
        LOCAL,
        _re(r"usage limit reached|hit your usage limit|\d+-hour limit reached"),
        Action.WAIT,
        2,
        REASON_USAGE_LIMIT,
    ),
    FailurePattern(
        "overloaded",
        LOCAL,
        _re(
            r"overloaded_error|(?:model|server|service) is (?:currently )?overloaded|api error: 529"
        ),
        Action.WAIT,
        3,
        REASON_OVERLOADED,
    ),
)

_EPOCH = re.compile(r"\|(?P<epoch>\d{10})\b|resets? at (?P<at>\d{10})\b")
_IN = re.compile(
    r"try again in (?:(?P<h>\d+)\s*h(?:ours?)?)?\s*(?:(?P<m>\d+)\s*m(?:in(?:utes?)?)?)?\s*"
    r"(?:(?P<s>\d+)\s*s(?:ec(?:onds?)?)?)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Recovery:
    """What to do about one failure; plain data a workflow can store."""

    pattern: str
    action: Action
    reason: str
    times: int
    """This recovery's number for its pattern (1 for the first)."""
    wait_seconds: float = 0.0
    extra_args: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "pattern": self.pattern,
            "action": self.action.value,
            "reason": self.reason,
            "times": self.times,
            "wait_seconds": self.wait_seconds,
            "extra_args": list(self.extra_args),
        }


def reset_wait(text: str, now: datetime) -> float | None:
    """Seconds until the reset the failure names (epoch or "try again in ..."), if any."""
    found = _EPOCH.search(text)
    if found:
        epoch = int(found.group("epoch") or found.group("at"))
        return max(0.0, epoch - now.timestamp())
    relative = _IN.search(text)
    if relative and any(relative.group(name) for name in "hms"):
        hours, minutes, seconds = (int(relative.group(name) or 0) for name in "hms")
        return float(timedelta(hours=hours, minutes=minutes, seconds=seconds).total_seconds())
    return None


def failure_text(result: Mapping[str, Any]) -> str:
    """What the CLI of a failed run (a ``RunResult`` as stored) said about the failure: its
    ``error``; the agent's ``summary`` is left out (see the module contract)."""
    return str(result.get("error") or "")


def _under(path: str, roots: list[str]) -> bool:
    candidate = PurePosixPath(path)
    if ".." in candidate.parts:
        return False
    return any(
        candidate == PurePosixPath(r) or PurePosixPath(r) in candidate.parents for r in roots
    )


def decide(
    executor: str,
    text: str,
    *,
    now: datetime,
    used: dict[str, int],
    allowed_roots: list[str],
    max_wait_seconds: float,
    overload_wait_seconds: float = OVERLOAD_BASE_SECONDS,
) -> Recovery | None:
    """The recovery for a run of ``executor`` that failed saying ``text``.

    ``used`` counts the recoveries already applied per pattern in this sub-task.
    """
    for pattern in PATTERNS:
        if executor not in pattern.executors:
            continue
        found = pattern.regex.search(text)
        if found is None:
            continue
        times = used.get(pattern.name, 0) + 1
        reason = pattern.reason.format(executor=executor)
        if times > pattern.bound:
            bound = REASON_BOUND.format(pattern=pattern.name, times=pattern.bound)
            return Recovery(pattern.name, Action.ESCALATE, bound, times)
        if pattern.name == "outside_workspace":
            path = found.group("path").rstrip(".")
            if not _under(path, allowed_roots):
                return Recovery(pattern.name, Action.ESCALATE, REASON_OUTSIDE_DENIED, times)
            return Recovery(
                pattern.name, pattern.action, reason, times, extra_args=["--add-dir", path]
            )
        if pattern.action is Action.RELAUNCH:
            return Recovery(
                pattern.name, pattern.action, reason, times, extra_args=list(pattern.flags)
            )
        if pattern.name == "usage_limit":
            wait = reset_wait(text, now)
            wait = DEFAULT_LIMIT_WAIT_SECONDS if wait is None else wait
            if wait > max_wait_seconds:
                long = REASON_USAGE_LIMIT_LONG.format(executor=executor)
                return Recovery(pattern.name, Action.SWITCH, long, times)
            return Recovery(pattern.name, Action.WAIT, reason, times, wait_seconds=wait)
        if pattern.action is Action.WAIT:
            wait = overload_wait_seconds * 2 ** (times - 1)
            return Recovery(
                pattern.name, Action.WAIT, reason, times, wait_seconds=min(wait, max_wait_seconds)
            )
        return Recovery(pattern.name, pattern.action, reason, times)
    return None
