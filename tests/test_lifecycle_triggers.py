"""Classifying install lifecycle webhooks, and the stops that name an issue (sans-I/O).

Payloads come from the builders checked against Linear's schema
(``tests/test_payloads_schema.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from edge_worker.sandbox import payloads as p
from edge_worker.webhooks.decisions import Kind, Rules
from edge_worker.webhooks.lifecycle import (
    SCOPE_APP_REVOKED,
    SCOPE_TEAMS,
    issue_team_id,
    lifecycle_scope,
)
from edge_worker.webhooks.triggers import classify

AGENT = "agent-1"
RULES = Rules.build(AGENT)


def test_losing_teams_stops_their_work() -> None:
    payload = p.permission_change(AGENT, removed_team_ids=["team-b", "team-a"])
    decision = classify(payload, RULES)
    assert decision.kind is Kind.STOP
    assert decision.issue_id is None
    assert decision.context == {"scope": SCOPE_TEAMS, "team_ids": ["team-a", "team-b"]}
    assert lifecycle_scope(decision.context) == SCOPE_TEAMS
    assert decision.dedupe_key == classify(payload, RULES).dedupe_key  # a redelivery
    assert "team-a,team-b" in str(decision.dedupe_key)


def test_gaining_teams_needs_nothing() -> None:
    decision = classify(p.permission_change(AGENT, added_team_ids=["team-a"]), RULES)
    assert decision.kind is Kind.IGNORE
    assert decision.reason == "team access granted; nothing to stop"


def test_a_permission_change_for_another_app_user_is_ignored() -> None:
    payload = p.permission_change("someone-else", removed_team_ids=["team-a"])
    decision = classify(payload, RULES)
    assert (decision.kind, decision.reason) == (
        Kind.IGNORE,
        "permission change for another app user",
    )


def test_a_malformed_permission_change_is_ignored_with_its_reason() -> None:
    payload = p.permission_change(AGENT, removed_team_ids=["team-a"])
    payload["removedTeamIds"] = "team-a"
    decision = classify(payload, RULES)
    assert decision.kind is Kind.IGNORE
    assert decision.reason.startswith("malformed PermissionChange payload: removedTeamIds")


def test_the_app_revoked_stops_everything() -> None:
    decision = classify(p.oauth_app_revoked("client-1"), RULES)
    assert decision.kind is Kind.STOP
    assert decision.issue_id is None
    assert lifecycle_scope(decision.context) == SCOPE_APP_REVOKED
    assert decision.context["oauth_client_id"] == "client-1"
    assert decision.reason == "the Linear app was revoked"


def test_another_oauth_app_action_needs_nothing() -> None:
    payload = {**p.oauth_app_revoked(), "action": "created"}
    assert classify(payload, RULES).kind is Kind.IGNORE


def test_undelegation_and_deletion_stop_the_issue() -> None:
    undelegated = classify(p.issue_unassigned("iss-1", AGENT, field="delegateId"), RULES)
    assert (undelegated.kind, undelegated.issue_id) == (Kind.STOP, "iss-1")
    assert undelegated.reason == "undelegated from us"
    removed = classify(p.issue_removed("iss-1"), RULES)
    assert (removed.kind, removed.issue_id, removed.reason) == (Kind.STOP, "iss-1", "issue removed")
    assert lifecycle_scope(undelegated.context) is lifecycle_scope(removed.context) is None


@pytest.mark.parametrize(
    "payload",
    [
        p.issue_assigned("iss-1", AGENT, team_payload=p.team("team-x")),
        p.agent_session_created("s-1", "iss-1", AGENT, team_payload=p.team("team-x")),
        p.comment_created("c-1", "iss-1", "hi"),
        p.notification("issueAssignedToYou", "iss-1", AGENT),
    ],
    ids=["issue", "session", "comment", "notification"],
)
def test_the_team_of_the_issue_is_read_from_the_payload(payload: dict[str, Any]) -> None:
    expected = "team-x" if payload["type"] in ("Issue", "AgentSessionEvent") else "team-eng"
    assert issue_team_id(payload) == expected


def test_no_team_when_the_payload_has_none() -> None:
    assert issue_team_id(p.oauth_app_revoked()) is None
    assert issue_team_id({"type": "Issue", "data": "not an object"}) is None
