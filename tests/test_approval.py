"""Plan approval rules (sans I/O): policies, estimates, and how replies are read."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from edge_worker import approval_policy
from edge_worker.console.controls import answer_message
from edge_worker.console.records import IssueRecord
from edge_worker.orchestration import approval
from edge_worker.orchestration.plan import Plan
from edge_worker.orchestration.strategy import ExecutorEstimate
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.settings import Settings

ESTIMATES = {
    "codegen": ExecutorEstimate(None, 0.8),
    "claude-code": ExecutorEstimate(1.0, 0.8),
    "codex": ExecutorEstimate(0.5, 0.7),
}


def test_policies_parse_and_decide() -> None:
    assert not approval_policy.parse_policy("never").needs_approval(Decimal(1000))
    assert approval_policy.parse_policy("Always").needs_approval(Decimal(0))
    above = approval_policy.parse_policy("above $5")
    assert above == approval_policy.Policy("above", Decimal(5))
    assert not above.needs_approval(Decimal("5.00"))
    assert above.needs_approval(Decimal("5.01"))
    assert above.needs_approval(None)  # an unpriced estimate is never waved through
    for bad in ("sometimes", "above", "above five", ""):
        with pytest.raises(approval_policy.PolicyError):
            approval_policy.parse_policy(bad)


def test_the_repository_wins_over_the_team_over_the_default() -> None:
    teams = {"ENG": "always"}
    policy = approval_policy.policy_for
    assert policy("never", teams, team_key="ENG", repository="above 2").kind == "above"
    assert policy("never", teams, team_key="ENG", repository=None).kind == "always"
    assert policy("never", teams, team_key="OPS", repository=None).kind == "never"


def test_settings_refuse_an_unknown_policy() -> None:
    assert Settings().approval.default == "never"
    with pytest.raises(ValidationError, match="approval policy"):
        Settings(approval={"teams": {"ENG": "maybe"}})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="approval policy"):
        Settings(repositories=[{"id": "demo", "approval": "sometimes"}])  # type: ignore[list-item]


def test_estimates_follow_the_strategy_and_the_iteration_bound() -> None:
    plan = Plan.model_validate(demo_plan(sys.executable))
    found = approval.estimate_plan(
        plan,
        strategy="local-only",
        available=["claude-code", "codex"],
        estimates=ESTIMATES,
        fallback_to_local=True,
        max_iterations=2,
        per_task_limit=Decimal("2.50"),
    )
    assert {r.executor for r in found.rows} == {"claude-code"}
    assert all(r.low == Decimal(1) and r.high == Decimal("2.50") for r in found.rows)
    assert found.high == Decimal("2.50") * len(plan.subtasks)
    text = approval.question(found)
    assert "claude-code, $1.00 to $2.50" in text
    cloud = approval.estimate_plan(
        plan,
        strategy="cloud-only",
        available=["codegen"],
        estimates=ESTIMATES,
        fallback_to_local=False,
        max_iterations=0,
        per_task_limit=None,
    )
    assert cloud.high is None and approval.UNPRICED in approval.question(cloud)


@pytest.mark.parametrize(
    ("text", "choice", "rest"),
    [
        ("approve", "approve", ""),
        ("`Approve`", "approve", ""),
        ("Revise: split the CLI out", "revise", "split the CLI out"),
        ("revise", "revise", ""),
        ("CANCEL please", "cancel", ""),
    ],
)
def test_replies_are_read(text: str, choice: str, rest: str) -> None:
    reply = approval.read_reply(text)
    assert (reply.choice, reply.text, reply.refusal) == (choice, rest, None)


@pytest.mark.parametrize("text", ["approved!", "yes", "rm -rf /", "", "`merge`"])
def test_anything_else_is_refused_with_the_choices(text: str) -> None:
    reply = approval.read_reply(text)
    assert reply.choice is None and reply.refusal is not None
    assert "`approve`" in reply.refusal and "`cancel`" in reply.refusal


def test_the_consoles_answer_is_read_like_a_linear_reply() -> None:
    now = datetime.now(UTC)
    record = IssueRecord("issue-1", "ENG-1", "waiting", "issue-1-abc", 0, now, now)
    message = answer_message(record, {"text": "approve"})
    assert isinstance(message, dict) and message["kind"] == "follow_up"
    assert approval.read_reply(message["text"]).choice == "approve"
