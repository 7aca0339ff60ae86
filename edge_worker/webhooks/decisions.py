"""The decision a webhook classification returns, and the rules it depends on (sans-I/O).

:class:`Kind` is what the daemon does with an event, :class:`Rules` the configuration
classification depends on, and :class:`Decision` the outcome; ``triggers.py`` and
``lifecycle.py`` both return them, so they live here, below both.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edge_worker.webhooks.events import IssueRef


class Kind(enum.StrEnum):
    """What the daemon does with an event."""

    START = "start"
    FOLLOW_UP = "follow_up"
    STOP = "stop"
    REFUSE = "refuse"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Rules:
    """The configuration classification depends on."""

    agent_user_id: str | None
    allowed_teams: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, agent_user_id: str | None, teams: Iterable[str] = (), users: Iterable[str] = ()
    ) -> Rules:
        return cls(agent_user_id, frozenset(teams), frozenset(users))


@dataclass(frozen=True)
class Decision:
    """The outcome of classifying one event."""

    kind: Kind
    reason: str
    issue_id: str | None = None
    issue_identifier: str | None = None
    dedupe_key: str | None = None
    session_id: str | None = None
    actor_id: str | None = None
    actor_name: str | None = None
    text: str | None = None
    only_if_active: bool = False
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def acts(self) -> bool:
        """True for start, follow-up, stop and refuse (a session that must be answered)."""
        return self.kind is not Kind.IGNORE


def ignore(reason: str, issue: IssueRef | None = None) -> Decision:
    """An ``ignore`` decision with its reason."""
    return Decision(
        Kind.IGNORE,
        reason,
        issue_id=issue.id if issue else None,
        issue_identifier=issue.identifier if issue else None,
    )
