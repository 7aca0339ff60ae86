"""Alert events: what is worth telling a human outside Linear, and how it reads.

Contract (sans-I/O, no clock, no network):
- :class:`AlertEvent` is one occurrence; its :attr:`AlertEvent.dedupe_key` is deterministic
  (the same occurrence always maps to the same key, so deciding twice alerts once).
- :func:`render` turns an event into a short, secret-free :class:`AlertMessage`; the
  texts are the named constants below. Details are plain facts (identifiers, amounts,
  minutes), never tokens, URLs with credentials, file paths or exception reprs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AlertKind(StrEnum):
    """The events the notifier knows."""

    BUDGET_DAY_WARNING = "budget_day_warning"
    BUDGET_DAY_EXHAUSTED = "budget_day_exhausted"
    SUBTASK_ESCALATED = "subtask_escalated"
    ISSUE_FAILED = "issue_failed"
    SERVICE_UNAVAILABLE = "service_unavailable"
    APP_REVOKED = "app_revoked"


TITLES: dict[AlertKind, str] = {
    AlertKind.BUDGET_DAY_WARNING: "Day budget warning for {day}",
    AlertKind.BUDGET_DAY_EXHAUSTED: "Day budget used up for {day}",
    AlertKind.SUBTASK_ESCALATED: "Sub-task {subject} needs a human",
    AlertKind.ISSUE_FAILED: "Issue {subject} failed",
    AlertKind.SERVICE_UNAVAILABLE: "{subject} unavailable",
    AlertKind.APP_REVOKED: "Linear app access revoked",
}

BODIES: dict[AlertKind, str] = {
    AlertKind.BUDGET_DAY_WARNING: "{detail}",
    AlertKind.BUDGET_DAY_EXHAUSTED: "{detail}",
    AlertKind.SUBTASK_ESCALATED: "{reason}",
    AlertKind.ISSUE_FAILED: "{reason}",
    AlertKind.SERVICE_UNAVAILABLE: (
        "{subject} has not answered for {minutes} minutes; work waits and retries."
    ),
    AlertKind.APP_REVOKED: (
        "The Linear workspace removed the app or revoked its access; no issue is worked on "
        "until it is installed again."
    ),
}

SOURCE = "edge-worker"


@dataclass(frozen=True)
class AlertEvent:
    """One occurrence worth an alert.

    ``subject`` names what it is about (an issue identifier, a sub-issue identifier,
    ``Linear``/``Codegen``, a workspace); ``occurrence`` tells repeated occurrences of the
    same kind and subject apart (a day, an outage's start, an escalation's iteration).
    ``facts`` fill the message's placeholders.
    """

    kind: AlertKind
    subject: str
    occurrence: str = ""
    facts: dict[str, str] = field(default_factory=dict)
    link: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Plain data (a workflow step's argument)."""
        return {
            "kind": self.kind.value,
            "subject": self.subject,
            "occurrence": self.occurrence,
            "facts": dict(self.facts),
            "link": self.link,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertEvent:
        return cls(
            AlertKind(data["kind"]),
            str(data["subject"]),
            str(data.get("occurrence") or ""),
            {str(k): str(v) for k, v in (data.get("facts") or {}).items()},
            data.get("link"),
        )

    @property
    def dedupe_key(self) -> str:
        """Deterministic: the same kind, subject and occurrence give the same key."""
        return f"{self.kind.value}:{self.subject}:{self.occurrence}"[:400]


@dataclass(frozen=True)
class AlertMessage:
    """What a channel shows: a title, one or two sentences, an optional link."""

    kind: str
    title: str
    text: str
    link: str | None
    key: str

    def plain(self) -> str:
        """Title, text and link as plain lines (Slack and Telegram text)."""
        lines = [self.title, self.text]
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


def budget_event(day: str, detail: str, *, exhausted: bool) -> AlertEvent:
    """The day-budget alert for ``day`` (one per day and threshold); ``detail`` is the
    sentence said on Linear (spent and limit)."""
    kind = AlertKind.BUDGET_DAY_EXHAUSTED if exhausted else AlertKind.BUDGET_DAY_WARNING
    return AlertEvent(
        kind=kind, subject="day-budget", occurrence=day, facts={"day": day, "detail": detail}
    )


def render(event: AlertEvent) -> AlertMessage:
    """The message for ``event`` from the named texts; unknown facts read as ``?``."""
    facts = _Facts(event.facts)
    facts["subject"] = event.subject
    return AlertMessage(
        kind=event.kind.value,
        title=TITLES[event.kind].format_map(facts),
        text=BODIES[event.kind].format_map(facts),
        link=event.link,
        key=event.dedupe_key,
    )
