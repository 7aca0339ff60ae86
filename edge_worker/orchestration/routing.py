"""Which configured repository an issue's work happens in.

Contract: :func:`route_repository` is a pure function of the configured repositories and
the issue's description, labels and team key. It decides, in this order:

1. a ``[repo=<id>]`` tag in the description wins (an unknown id, or two different ids,
   is an error: an explicit request is never silently replaced by a guess);
2. repositories whose ``labels`` share a label with the issue (case-insensitive); when
   several do, the team key may narrow them to one;
3. repositories whose ``team_keys`` contain the issue's team key;
4. the only configured repository, when there is exactly one.

Otherwise the :class:`Route` has no repository and its ``reason`` says why in words fit for
a comment on the issue (what matched, what is configured, how to choose).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from edge_worker.settings import Repository

REPO_TAG = re.compile(r"\[\s*repo\s*=\s*([A-Za-z0-9][A-Za-z0-9._/-]*)\s*\]", re.IGNORECASE)

MatchedBy = Literal["tag", "label", "team", "only", "none"]


@dataclass(frozen=True)
class Route:
    """The chosen repository (or ``None``), how it was chosen, and why."""

    repository: Repository | None
    matched_by: MatchedBy
    reason: str


def repo_tags(description: str | None) -> list[str]:
    """The distinct ``[repo=<id>]`` ids in ``description``, in order of appearance."""
    if not description:
        return []
    return list(dict.fromkeys(match.group(1) for match in REPO_TAG.finditer(description)))


def route_repository(
    repositories: Sequence[Repository],
    *,
    description: str | None,
    labels: Iterable[str] = (),
    team_key: str | None = None,
) -> Route:
    """Choose the repository for an issue; see the module docstring for the rules."""
    configured = ", ".join(repo.id for repo in repositories) or "none"
    tags = repo_tags(description)
    if len(tags) > 1:
        return Route(
            None,
            "none",
            f"the description names several repositories ({_list(tags)}); keep exactly one "
            "[repo=<id>] tag",
        )
    if tags:
        wanted = tags[0]
        for repo in repositories:
            if repo.id == wanted:
                return Route(repo, "tag", f"the description asks for [repo={repo.id}]")
        for repo in repositories:
            if repo.id.lower() == wanted.lower():
                return Route(repo, "tag", f"the description asks for [repo={repo.id}]")
        return Route(
            None,
            "none",
            f'the description asks for [repo={wanted}] but no repository "{wanted}" is '
            f"configured (configured: {configured})",
        )

    labels = list(labels)  # read more than once below
    issue_labels = {label.lower() for label in labels}
    team = team_key.lower() if team_key else None
    by_label = [
        repo for repo in repositories if issue_labels & {label.lower() for label in repo.labels}
    ]
    if len(by_label) == 1:
        return Route(by_label[0], "label", f"label match: {_matching_labels(by_label[0], labels)}")
    if len(by_label) > 1:
        narrowed = [repo for repo in by_label if team and _has_team(repo, team)]
        if len(narrowed) == 1:
            return Route(
                narrowed[0],
                "label",
                f"label match ({_matching_labels(narrowed[0], labels)}) narrowed by team "
                f"{team_key}",
            )
        return Route(
            None,
            "none",
            f"the labels match several repositories ({_list(r.id for r in by_label)}); add a "
            "[repo=<id>] tag to the description to choose one",
        )

    by_team = [repo for repo in repositories if team and _has_team(repo, team)]
    if len(by_team) == 1:
        return Route(by_team[0], "team", f"team {team_key} is configured for it")
    if len(by_team) > 1:
        return Route(
            None,
            "none",
            f"team {team_key} is configured for several repositories "
            f"({_list(r.id for r in by_team)}); add a [repo=<id>] tag to the description",
        )

    if len(repositories) == 1:
        return Route(repositories[0], "only", "it is the only configured repository")
    if not repositories:
        return Route(None, "none", "no repository is configured")
    return Route(
        None,
        "none",
        f"no configured repository matches this issue's labels or team "
        f"(configured: {configured}); add a [repo=<id>] tag to the description",
    )


def _has_team(repo: Repository, team: str) -> bool:
    return team in {key.lower() for key in repo.team_keys}


def _matching_labels(repo: Repository, labels: Iterable[str]) -> str:
    wanted = {label.lower() for label in repo.labels}
    return _list(label for label in labels if label.lower() in wanted)


def _list(items: Iterable[str]) -> str:
    return ", ".join(items)
