"""Which sub-tasks a follow-up comment is about (sans-I/O).

A follow-up during execution is feedback to the sub-task it names, or (naming none) a
request to the orchestrator, which re-plans and may add sub-tasks. A sub-task is named by
its sub-issue's identifier (``ENG-8``, case-insensitive, not a prefix of ``ENG-80``) or by
its key in backticks (`` `cli` ``). Bare words are not enough: keys such as ``review`` or
``cli`` are everyday words in a comment addressed to the whole issue.

Contract: :func:`named_subtasks` returns the keys named, in plan order, without repeats;
an empty list means the follow-up is for the orchestrator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

REOPENABLE = frozenset({"passed", "failed", "timed_out"})
"""Finished sub-tasks that feedback runs again (resuming their session where it can)."""


@dataclass(frozen=True)
class Named:
    """What a sub-task can be called by: its key and, once created, its sub-issue."""

    key: str
    identifier: str | None


def named_subtasks(text: str, tasks: Iterable[Named]) -> list[str]:
    """The keys of the sub-tasks ``text`` names, in the order ``tasks`` lists them."""
    quoted = {m.group(1) for m in re.finditer(r"`([^`\s]+)`", text)}
    named = []
    for task in tasks:
        by_identifier = task.identifier is not None and re.search(
            rf"(?<![\w-]){re.escape(task.identifier)}(?![\w-])", text, re.IGNORECASE
        )
        if (by_identifier or task.key in quoted) and task.key not in named:
            named.append(task.key)
    return named


def feedback_block(entries: Iterable[str]) -> str:
    """The follow-ups for one sub-task, as one block of feedback (oldest first)."""
    return "\n\n".join(entries)
