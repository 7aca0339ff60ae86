"""Agent guidance from Linear, in the order the planner must weigh it (sans-I/O).

Linear sends ``guidance`` with an ``AgentSessionEvent`` (``GuidanceRuleWebhookPayload``):
each rule has a markdown ``body`` and an ``origin``, the workspace
(``OrganizationOriginWebhookPayload``) or a team (``TeamOriginWebhookPayload``, with the
team). The schema says the nearest team's guidance takes the highest precedence.

Contract: :func:`parse_guidance` turns the raw list into :class:`GuidanceRule` values,
skipping malformed entries and empty bodies, never raising; :func:`by_precedence` orders
them: the issue's own team first, then other (parent) teams, then the workspace, keeping
Linear's order within each group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel

Origin = Literal["team", "workspace"]


class GuidanceRule(BaseModel):
    """One guidance rule and where it was defined."""

    body: str
    origin: Origin
    team_id: str | None = None
    team_key: str | None = None
    team_name: str | None = None

    @property
    def label(self) -> str:
        """Where the rule comes from, for a reader (``team ENG``, ``workspace``)."""
        if self.origin == "team":
            return f"team {self.team_key or self.team_name or self.team_id or '?'}"
        return "workspace"


def parse_guidance(raw: Iterable[Any] | None) -> list[GuidanceRule]:
    """The well-formed rules of ``raw`` (the webhook's ``guidance`` list)."""
    rules = []
    for entry in raw or []:
        if not isinstance(entry, dict):
            continue
        body = entry.get("body")
        if not isinstance(body, str) or not body.strip():
            continue
        raw_origin = entry.get("origin")
        origin: dict[str, Any] = raw_origin if isinstance(raw_origin, dict) else {}
        raw_team = origin.get("team")
        if origin.get("type") == "Team" or isinstance(raw_team, dict):
            team: dict[str, Any] = raw_team if isinstance(raw_team, dict) else {}
            rules.append(
                GuidanceRule(
                    body=body.strip(),
                    origin="team",
                    team_id=_text(team.get("id")),
                    team_key=_text(team.get("key")),
                    team_name=_text(team.get("name")),
                )
            )
        else:
            rules.append(GuidanceRule(body=body.strip(), origin="workspace"))
    return rules


def by_precedence(
    rules: Iterable[GuidanceRule], *, team_id: str | None = None, team_key: str | None = None
) -> list[GuidanceRule]:
    """``rules`` strongest first: the issue's team, other teams, then the workspace."""

    def rank(rule: GuidanceRule) -> int:
        if rule.origin == "workspace":
            return 2
        own = (team_id is not None and rule.team_id == team_id) or (
            team_key is not None and rule.team_key == team_key
        )
        return 0 if own else 1

    return sorted(rules, key=rank)  # sorted() is stable: Linear's order within a rank


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
