"""Classification of webhook payloads (pure functions, schema-shaped payloads)."""

from __future__ import annotations

from edge_worker.reporting.markers import marker
from edge_worker.sandbox import payloads as p
from edge_worker.webhooks.decisions import Kind, Rules
from edge_worker.webhooks.triggers import classify

AGENT = "agent-1"
RULES = Rules.build(AGENT)


def test_assignment_to_agent_starts_work() -> None:
    decision = classify(p.issue_assigned("iss-1", AGENT), RULES)
    assert decision.kind is Kind.START
    assert decision.issue_id == "iss-1"
    assert decision.issue_identifier == "ENG-1"
    assert decision.dedupe_key and "assigneeId" in decision.dedupe_key


def test_delegation_to_agent_starts_work() -> None:
    decision = classify(p.issue_assigned("iss-1", AGENT, field="delegateId"), RULES)
    assert decision.kind is Kind.START
    assert decision.reason == "delegated to us"


def test_assignment_to_someone_else_is_ignored() -> None:
    decision = classify(p.issue_assigned("iss-1", "someone-else"), RULES)
    assert decision.kind is Kind.IGNORE


def test_reassigning_to_agent_when_already_agent_is_ignored() -> None:
    decision = classify(p.issue_assigned("iss-1", AGENT, previous=AGENT), RULES)
    assert decision.kind is Kind.IGNORE


def test_same_change_has_same_dedupe_key_and_a_later_change_differs() -> None:
    first = p.issue_assigned("iss-1", AGENT, updated_at="2026-01-01T00:00:00.000Z")
    again = p.issue_assigned("iss-1", AGENT, updated_at="2026-01-01T00:00:00.000Z")
    later = p.issue_assigned("iss-1", AGENT, updated_at="2026-01-02T00:00:00.000Z")
    assert classify(first, RULES).dedupe_key == classify(again, RULES).dedupe_key
    assert classify(first, RULES).dedupe_key != classify(later, RULES).dedupe_key


def test_unassignment_and_undelegation_stop() -> None:
    assert classify(p.issue_unassigned("iss-1", AGENT), RULES).kind is Kind.STOP
    undelegated = classify(p.issue_unassigned("iss-1", AGENT, field="delegateId"), RULES)
    assert undelegated.kind is Kind.STOP
    assert undelegated.reason == "undelegated from us"


def test_issue_removed_stops() -> None:
    assert classify(p.issue_removed("iss-1"), RULES).kind is Kind.STOP


def test_issue_cancelled_stops_only_if_active() -> None:
    payload = p.issue_unassigned("iss-1", "nobody", state_type="canceled")
    payload["updatedFrom"] = {"stateId": "state-started"}
    decision = classify(payload, RULES)
    assert decision.kind is Kind.STOP
    assert decision.only_if_active


def test_agent_session_created_starts_with_prompt_context() -> None:
    decision = classify(p.agent_session_created("sess-1", "iss-1", AGENT), RULES)
    assert decision.kind is Kind.START
    assert decision.session_id == "sess-1"
    assert decision.dedupe_key == "session:sess-1:created"
    assert "ENG-1" in decision.context["prompt_context"]


def test_agent_session_for_another_app_is_ignored() -> None:
    decision = classify(p.agent_session_created("sess-1", "iss-1", "other-app"), RULES)
    assert decision.kind is Kind.IGNORE


def test_prompted_is_a_follow_up_with_content_body() -> None:
    decision = classify(p.agent_session_prompted("sess-1", "iss-1", AGENT, "also docs"), RULES)
    assert decision.kind is Kind.FOLLOW_UP
    assert decision.text == "also docs"


def test_prompted_falls_back_to_activity_body() -> None:
    payload = p.agent_session_prompted("sess-1", "iss-1", AGENT, "")
    payload["agentActivity"]["content"] = {"type": "prompt"}
    payload["agentActivity"]["body"] = "from the body field"
    assert classify(payload, RULES).text == "from the body field"


def test_stop_signal_stops() -> None:
    payload = p.agent_session_prompted("sess-1", "iss-1", AGENT, "stop", signal="stop")
    decision = classify(payload, RULES)
    assert decision.kind is Kind.STOP
    assert decision.actor_name == "Ada Lovelace"


def test_comment_is_a_follow_up_only_if_active() -> None:
    decision = classify(p.comment_created("c-1", "iss-1", "please add docs"), RULES)
    assert decision.kind is Kind.FOLLOW_UP
    assert decision.only_if_active
    assert decision.text == "please add docs"


def test_own_comment_and_marked_comment_are_ignored() -> None:
    mine = classify(p.comment_created("c-1", "iss-1", "done", user_id=AGENT), RULES)
    assert mine.kind is Kind.IGNORE
    assert mine.reason == "written by our own user"
    marked_body = marker("report", "iss-1") + "\nreport"
    marked = classify(p.comment_created("c-2", "iss-1", marked_body), RULES)
    assert marked.kind is Kind.IGNORE


def test_event_by_our_own_user_is_ignored() -> None:
    decision = classify(p.issue_assigned("iss-1", AGENT, actor_id=AGENT), RULES)
    assert decision.kind is Kind.IGNORE
    assert decision.reason == "written by our own user"


def test_team_outside_allowed_teams_is_ignored() -> None:
    rules = Rules.build(AGENT, teams=["OPS"])
    decision = classify(p.issue_assigned("iss-1", AGENT), rules)
    assert decision.kind is Kind.IGNORE
    assert "EDGE_WORKER_ALLOWED_TEAMS" in decision.reason
    assert classify(p.issue_assigned("iss-1", AGENT), Rules.build(AGENT, ["ENG"])).acts


def test_user_outside_allowed_users_is_ignored() -> None:
    rules = Rules.build(AGENT, users=["user-boss"])
    assert classify(p.issue_assigned("iss-1", AGENT), rules).kind is Kind.IGNORE
    allowed = classify(p.issue_assigned("iss-1", AGENT, actor_id="user-boss"), rules)
    assert allowed.kind is Kind.START


def test_notifications_start_and_stop() -> None:
    start = classify(p.notification("issueAssignedToYou", "iss-1", AGENT), RULES)
    stop = classify(p.notification("issueUnassignedFromYou", "iss-1", AGENT), RULES)
    other = classify(p.notification("issueNewComment", "iss-1", AGENT), RULES)
    assert (start.kind, stop.kind, other.kind) == (Kind.START, Kind.STOP, Kind.IGNORE)


def test_unknown_and_malformed_events_are_ignored_with_reason() -> None:
    assert classify({"type": "Project", "action": "create"}, RULES).kind is Kind.IGNORE
    assert "unhandled" in classify({"foo": 1}, RULES).reason
    broken = classify({"type": "AgentSessionEvent", "action": "created"}, RULES)
    assert broken.kind is Kind.IGNORE
    assert "malformed" in broken.reason


def test_unknown_fields_are_tolerated() -> None:
    payload = p.issue_assigned("iss-1", AGENT)
    payload["brandNewField"] = {"nested": True}
    payload["data"]["anotherNewField"] = [1, 2]
    assert classify(payload, RULES).kind is Kind.START


def test_a_session_the_access_rules_refuse_is_answered_not_ignored() -> None:
    rules = Rules.build(AGENT, users=["user-boss"])
    created = classify(p.agent_session_created("ses-1", "iss-1", AGENT), rules)
    assert created.kind is Kind.REFUSE and created.acts
    assert created.session_id == "ses-1"
    assert created.context == {"refusal": "user"}
    teams = classify(p.agent_session_created("ses-1", "iss-1", AGENT), Rules.build(AGENT, ["OPS"]))
    assert teams.kind is Kind.REFUSE and teams.context == {"refusal": "team"}
    prompted = classify(p.agent_session_prompted("ses-1", "iss-1", AGENT, "hi"), rules)
    assert prompted.kind is Kind.REFUSE
    assert prompted.dedupe_key != created.dedupe_key
    allowed = p.agent_session_created("ses-1", "iss-1", AGENT, creator_id="user-boss")
    assert classify(allowed, rules).kind is Kind.START


def test_a_session_without_an_issue_is_refused() -> None:
    payload = p.agent_session_created("ses-1", "iss-1", AGENT)
    payload["agentSession"]["issue"] = None
    payload["agentSession"]["issueId"] = None
    decision = classify(payload, RULES)
    assert decision.kind is Kind.REFUSE
    assert decision.context == {"refusal": "no_issue"}


def test_delegation_and_its_notification_expect_a_session_assignment_does_not() -> None:
    delegated = classify(p.issue_assigned("iss-1", AGENT, field="delegateId"), RULES)
    notified = classify(p.notification("issueAssignedToYou", "iss-1", AGENT), RULES)
    assigned = classify(p.issue_assigned("iss-1", AGENT), RULES)
    assert delegated.context == notified.context == {"expects_session": True}
    assert assigned.context == {}


def test_a_prompt_and_its_comment_share_one_dedupe_key() -> None:
    prompted = p.agent_session_prompted(
        "ses-1", "iss-1", AGENT, "also floats", source_comment_id="com-1"
    )
    comment = p.comment_created("com-1", "iss-1", "also floats")
    assert classify(prompted, RULES).dedupe_key == classify(comment, RULES).dedupe_key
    plain = p.agent_session_prompted("ses-1", "iss-1", AGENT, "also floats", activity_id="a-1")
    assert classify(plain, RULES).dedupe_key == "activity:a-1"
