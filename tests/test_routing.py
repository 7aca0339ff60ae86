"""Choosing the repository an issue's work happens in."""

from __future__ import annotations

from edge_worker.orchestration.routing import repo_tags, route_repository
from edge_worker.settings import Repository

WEB = Repository(id="web", team_keys=["FE"], labels=["frontend", "ui"])
API = Repository(id="api", team_keys=["BE", "OPS"], labels=["backend"])
INFRA = Repository(id="infra", team_keys=["OPS"], labels=["terraform", "backend"])
ALL = [WEB, API, INFRA]


def test_a_repo_tag_wins_over_labels_and_team() -> None:
    route = route_repository(
        ALL, description="Fix it.\n\n[repo=infra]", labels=["frontend"], team_key="FE"
    )
    assert route.repository == INFRA
    assert route.matched_by == "tag"
    assert "[repo=infra]" in route.reason


def test_a_repo_tag_is_case_and_space_tolerant() -> None:
    route = route_repository(ALL, description="see [ Repo = API ] please")
    assert route.repository == API


def test_an_unknown_repo_tag_is_refused_not_guessed() -> None:
    route = route_repository(ALL, description="[repo=mobile]", labels=["frontend"])
    assert route.repository is None
    assert route.matched_by == "none"
    assert 'no repository "mobile" is configured' in route.reason
    assert "web, api, infra" in route.reason


def test_two_different_repo_tags_are_ambiguous() -> None:
    route = route_repository(ALL, description="[repo=web] and [repo=api]")
    assert route.repository is None
    assert "several repositories (web, api)" in route.reason


def test_the_same_tag_twice_is_fine() -> None:
    assert repo_tags("[repo=web] ... [repo=web]") == ["web"]
    assert route_repository(ALL, description="[repo=web] [repo=web]").repository == WEB


def test_a_label_match_chooses_the_repository() -> None:
    route = route_repository(ALL, description="no tag", labels=["Bug", "UI"], team_key="BE")
    assert route.repository == WEB
    assert route.matched_by == "label"
    assert "UI" in route.reason


def test_labels_matching_several_repositories_are_narrowed_by_team() -> None:
    route = route_repository(ALL, description=None, labels=["backend"], team_key="ops")
    # both api and infra carry "backend" and team OPS: still ambiguous
    assert route.repository is None
    assert "several repositories (api, infra)" in route.reason
    route = route_repository(ALL, description=None, labels=["backend"], team_key="BE")
    assert route.repository == API
    assert "narrowed by team BE" in route.reason


def test_a_team_key_match_chooses_when_no_label_matches() -> None:
    route = route_repository(ALL, description="", labels=["bug"], team_key="fe")
    assert (route.repository, route.matched_by) == (WEB, "team")


def test_a_team_configured_for_several_repositories_is_ambiguous() -> None:
    route = route_repository(ALL, description="", labels=[], team_key="OPS")
    assert route.repository is None
    assert "team OPS is configured for several repositories (api, infra)" in route.reason


def test_the_only_repository_is_chosen_when_nothing_matches() -> None:
    only = Repository(id="mono")
    route = route_repository([only], description="x", labels=["bug"], team_key="ZZ")
    assert (route.repository, route.matched_by) == (only, "only")


def test_nothing_matches_among_several() -> None:
    route = route_repository(ALL, description="x", labels=["bug"], team_key="ZZ")
    assert route.repository is None
    assert "no configured repository matches" in route.reason
    assert "[repo=<id>]" in route.reason


def test_no_repositories_configured() -> None:
    route = route_repository([], description="[repo=web]")
    assert route.repository is None
    assert "configured: none" in route.reason
    assert route_repository([], description="").reason == "no repository is configured"


def test_labels_may_be_a_one_shot_iterator() -> None:
    route = route_repository(ALL, description="", labels=iter(["frontend"]))
    assert route.repository == WEB
    assert "frontend" in route.reason
