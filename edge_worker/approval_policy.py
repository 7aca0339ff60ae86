"""Plan approval policies, sans I/O: when a plan waits for a human's approval.

- :func:`parse_policy` reads ``always``, ``never`` or ``above <USD>`` (the estimate's upper
  bound is compared); :class:`PolicyError` otherwise.
- :func:`policy_for` picks a repository's policy, else its team's, else the default.

It imports nothing of ours: the settings validate policies with it, and the orchestration's
approval flow applies them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

PolicyKind = Literal["always", "never", "above"]


class PolicyError(ValueError):
    """An approval policy that is not ``always``, ``never`` or ``above <USD>``."""


@dataclass(frozen=True)
class Policy:
    """When a plan waits for approval: always, never, or above a USD estimate."""

    kind: PolicyKind
    threshold: Decimal | None = None

    def needs_approval(self, estimated_high: Decimal | None) -> bool:
        """Whether a plan whose estimate tops out at ``estimated_high`` must be approved
        (an estimate that cannot be priced is treated as over any threshold)."""
        if self.kind == "never":
            return False
        if self.kind == "always" or estimated_high is None:
            return True
        assert self.threshold is not None
        return estimated_high > self.threshold


_ABOVE = re.compile(r"^above\s+\$?(\d+(?:\.\d+)?)$")


def parse_policy(text: str) -> Policy:
    """``always`` / ``never`` / ``above <USD>`` (``above $5`` too); :class:`PolicyError`
    otherwise."""
    value = text.strip().lower()
    if value in ("always", "never"):
        return Policy(value)  # type: ignore[arg-type]
    match = _ABOVE.match(value)
    if match is None:
        raise PolicyError(f"approval policy {text!r}: expected always, never or above <USD>")
    return Policy("above", Decimal(match.group(1)))


def policy_for(
    default: str,
    teams: Mapping[str, str],
    *,
    team_key: str | None,
    repository: str | None,
) -> Policy:
    """The policy of the issue's repository (``repository``, already resolved), else its
    team's (by key), else the default."""
    if repository is not None:
        return parse_policy(repository)
    if team_key is not None and team_key in teams:
        return parse_policy(teams[team_key])
    return parse_policy(default)
