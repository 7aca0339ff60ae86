"""Plan approval end to end: the plan with its cost estimate is a ``select`` question (a
comment in user mode), nothing is created or dispatched until it is answered; approve
runs it, revise plans again with the text, cancel ends it, silence gets one reminder and
then the issue waits; replies from outside the allowed users and unknown options change
nothing and are said so.

The real daemon works against the Linear and Anthropic stand-ins over loopback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_worker.orchestration import approval
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.linear_store import AgentActivity
from edge_worker.sandbox.world import SandboxWorld, solved_runs
from tests.support.e2e import E2E, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ALWAYS = {"EDGE_WORKER_STRATEGY": "local-only", "EDGE_WORKER_APPROVAL__DEFAULT": "always"}


def plan_of(*keys: str) -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] in keys]
    return {"summary": plan["summary"], "subtasks": chosen}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world", plan=plan_of("add-function")) as started:
        yield started


def said(world: SandboxWorld, session_id: str) -> list[AgentActivity]:
    return [
        a for a in world.linear.store.activities_of(session_id) if a.content.get("type") != "prompt"
    ]


def questions(world: SandboxWorld, session_id: str) -> list[AgentActivity]:
    return [a for a in said(world, session_id) if a.content["type"] == "elicitation"]


def start_session(world: SandboxWorld, e2e: E2E, issue_id: str) -> str:
    created = world.linear.agent_session_created(issue_id)
    e2e.send(created)
    return str(created.payload["agentSession"]["id"])


def wait_question(world: SandboxWorld, session_id: str, count: int = 1) -> AgentActivity:
    return wait_until(lambda: questions(world, session_id)[count - 1 :], timeout=60)[0]


def assert_nothing_dispatched(world: SandboxWorld, e2e: E2E, issue_id: str) -> None:
    assert world.linear.store.children_of(issue_id) == []
    assert e2e.subtask_rows(issue_id) == {}


def test_approve_shows_the_estimate_and_only_then_dispatches(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **ALWAYS) as e2e:
        session_id = start_session(world, e2e, issue_id)
        question = wait_question(world, session_id)
        assert question.signal == "select"
        assert question.signal_metadata is not None
        values = [o["value"] for o in question.signal_metadata["options"]]
        assert values == list(approval.OPTIONS)
        body = question.content["body"]
        # claude-code at $1.00 a run, up to 1 + 2 iterations: $1.00 to $3.00
        assert "add-function" in body and "claude-code, $1.00 to $3.00" in body
        assert world.linear.store.sessions[session_id].status == "awaitingInput"
        wait_until(lambda: e2e.work_state(issue_id) == "waiting", timeout=30)  # set after the ask
        assert_nothing_dispatched(world, e2e, issue_id)

        e2e.send(world.linear.agent_session_prompted(session_id, "approve"))
        assert e2e.wait_end(issue_id) == "done"
        assert len(world.linear.store.children_of(issue_id)) == 1
        assert "Plan approved by" in e2e.report(issue_id)


def test_revise_plans_again_with_the_text_and_asks_about_the_new_plan(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    world.anthropic.script_plans([plan_of("add-function"), plan_of("multiply-function")])
    world.tasks["multiply-function"] = solved_runs("multiply-function")
    world.scenario_path()
    with running(world, tmp_path / "state", **ALWAYS) as e2e:
        session_id = start_session(world, e2e, issue_id)
        first = wait_question(world, session_id)
        assert "add-function" in first.content["body"]
        e2e.send(world.linear.agent_session_prompted(session_id, "revise"))
        what = wait_question(world, session_id, 2)  # "revise" alone: what should change?
        assert what.content["body"] == approval.REVISE_WITHOUT_TEXT
        e2e.send(world.linear.agent_session_prompted(session_id, "do multiply() instead"))
        second = wait_question(world, session_id, 3)
        assert "multiply-function" in second.content["body"]
        assert "add-function" not in second.content["body"]
        planner_calls = world.anthropic.successful_requests
        assert len(planner_calls) == 2
        assert "do multiply() instead" in json.dumps(planner_calls[1].body)
        assert_nothing_dispatched(world, e2e, issue_id)

        e2e.send(world.linear.agent_session_prompted(session_id, "approve"))
        assert e2e.wait_end(issue_id) == "done"
        titles = [c.title for c in world.linear.store.children_of(issue_id)]
        assert len(titles) == 1 and "multiply" in titles[0].lower()


def test_cancel_ends_the_work_without_dispatching(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **ALWAYS) as e2e:
        session_id = start_session(world, e2e, issue_id)
        wait_question(world, session_id)
        e2e.send(world.linear.agent_session_prompted(session_id, "cancel"))
        assert e2e.wait_end(issue_id) == "stopped"
        assert_nothing_dispatched(world, e2e, issue_id)
        last = said(world, session_id)[-1]
        assert last.content["type"] == "response"
        assert "Plan cancelled by" in last.content["body"]


def test_no_answer_gets_one_reminder_then_the_issue_waits_in_user_mode(
    world: SandboxWorld, tmp_path: Path
) -> None:
    env = {**ALWAYS, "EDGE_WORKER_APPROVAL__REMIND_AFTER_SECONDS": "1"}
    store = world.linear.store
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **env) as e2e:
        e2e.assign(issue_id)

        def comments_with(text: str) -> list[str]:
            return [c.body for c in store.comments_on(issue_id) if text in c.body]

        asked = wait_until(lambda: comments_with("Approve this plan"), timeout=60)[0]
        for option in approval.OPTIONS:
            assert f"`{option}`" in asked
        wait_until(lambda: comments_with("Reminder:"), timeout=60)
        wait_until(lambda: e2e.work_state(issue_id) == "waiting", timeout=30)  # set after the ask
        wait_until(lambda: approval.WAITING_NOTE in e2e.report(issue_id), timeout=30)
        assert_nothing_dispatched(world, e2e, issue_id)
        # Still waiting after the reminder, not dropped: a later answer is taken.
        assert len(comments_with("Reminder:")) == 1
        e2e.send(world.linear.comment_created(issue_id, "approve"))
        assert e2e.wait_end(issue_id) == "done"


def test_a_stranger_and_a_forged_option_change_nothing_and_are_told(
    world: SandboxWorld, tmp_path: Path
) -> None:
    store = world.linear.store
    stranger = store.add_user("Eve Stranger")
    env = {**ALWAYS, "EDGE_WORKER_ALLOWED_USERS": store.human.id}
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **env) as e2e:
        session_id = start_session(world, e2e, issue_id)
        wait_question(world, session_id)
        before = len(said(world, session_id))
        e2e.send(world.linear.agent_session_prompted(session_id, "approve", user_id=stranger.id))
        told = wait_until(lambda: said(world, session_id)[before:], timeout=30)
        assert "EDGE_WORKER_ALLOWED_USERS" in told[0].content["body"]
        wait_until(lambda: e2e.work_state(issue_id) == "waiting", timeout=30)  # set after the ask

        before = len(said(world, session_id))
        e2e.send(world.linear.agent_session_prompted(session_id, "delete-everything"))
        wanted = "`delete-everything` is not one of the choices"
        wait_until(
            lambda: [a for a in said(world, session_id)[before:] if wanted in a.content["body"]],
            timeout=30,
        )
        wait_until(lambda: e2e.work_state(issue_id) == "waiting", timeout=30)  # set after the ask
        assert_nothing_dispatched(world, e2e, issue_id)

        e2e.send(world.linear.agent_session_prompted(session_id, "approve"))
        assert e2e.wait_end(issue_id) == "done"


def test_a_crash_while_waiting_asks_nothing_twice_and_the_answer_still_counts(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **ALWAYS) as e2e:
        session_id = start_session(world, e2e, issue_id)
        wait_question(world, session_id)
        e2e.crash()
        e2e.restart()
        e2e.send(world.linear.agent_session_prompted(session_id, "approve"))
        assert e2e.wait_end(issue_id) == "done"
        assert len(questions(world, session_id)) == 1
        assert len(world.linear.store.children_of(issue_id)) == 1
