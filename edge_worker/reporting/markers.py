"""Hidden HTML markers that let the daemon find and edit its own comments.

A marker is invisible in Linear's rendered markdown and names a purpose and an issue, so
``report`` on ENG-1 never matches ``report`` on ENG-2 or ``result`` on ENG-1.
"""

from __future__ import annotations

PREFIX = "<!-- edge-worker:"


def marker(purpose: str, issue_id: str) -> str:
    """The hidden marker for ``purpose`` (e.g. ``"report"``) on ``issue_id``."""
    return f"{PREFIX}{purpose}:{issue_id} -->"


def find_marker(body: str, purpose: str, issue_id: str) -> bool:
    """True when ``body`` carries the marker for ``purpose`` on ``issue_id``."""
    return marker(purpose, issue_id) in body


def has_any_marker(body: str) -> bool:
    """True when ``body`` was written by edge-worker (it carries some marker)."""
    return PREFIX in body
