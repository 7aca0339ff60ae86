"""App mode end to end: one delegation is one piece of work carried by its agent session,
every session is answered, questions are ``select`` elicitations, links are on the
session, a stop gets one final activity and nothing else, a canceled issue stays put.

The real daemon works against the Linear stand-in over loopback; the stand-in keeps each
session's activities with the state each left the session in (Linear's rules: a
``response`` completes it, an ``elicitation`` leaves it ``awaitingInput``).
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_worker.orchestration import texts
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.linear import WebhookDelivery
from edge_worker.sandbox.linear_store import AgentActivity
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import E2E, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LOCAL = {"EDGE_WORKER_STRATEGY": "local-only"}


def one_subtask_plan(key: str = "add-function") -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] == key]
    return {"summary": plan["summary"], "subtasks": chosen}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world", plan=one_subtask_plan()) as started:
        yield started


def activities(world: SandboxWorld, session_id: str) -> list[AgentActivity]:
    """The agent's activities in a session (the user's prompts left out), oldest first."""
    return [
        a for a in world.linear.store.activities_of(session_id) if a.content.get("type") != "prompt"
    ]


def orchestrations(e2e: E2E, issue_id: str) -> list[str]:
    """The issue's orchestration workflows (sub-task workflows left out)."""
    prefix = f"issue-{issue_id}-"
    return [w for w, _ in e2e.workflows(prefix) if w.count("-") == prefix.count("-")]


def session_of(delivery: WebhookDelivery) -> str:
    return str(delivery.payload["agentSession"]["id"])


def assert_carried_by(world: SandboxWorld, session_id: str) -> list[AgentActivity]:
    """The session was answered at once, carried the work and ended with its response."""
    said = activities(world, session_id)
    assert said, "the session was never answered"
    assert said[0].content == {"type": "thought", "body": texts.ACK_THOUGHT}
    assert said[-1].content["type"] == "response", [a.content for a in said]
    assert said[-1].content["body"].startswith("Done: 1/1 sub-issues passed")
    assert world.linear.store.sessions[session_id].status == "complete"
    assert world.linear.store.sessions[session_id].plan, "the plan never reached the session"
    bodies = " ".join(str(a.content.get("body")) for a in said)
    assert "already working" not in bodies
    return said


ORDERS = list(itertools.permutations(range(3)))


def test_one_delegation_is_one_session_whatever_the_order(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """The session's ``created``, the inbox notification and the ``delegateId`` update of
    one delegation, in every order (and all at once): one orchestration, the session
    carries it, nothing says "already working"."""
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        cases: list[tuple[str, str]] = []
        for order in ORDERS:
            issue_id = world.new_issue()
            deliveries = world.linear.delegation(issue_id)
            for index in order:
                e2e.send(deliveries[index])
            cases.append((issue_id, session_of(deliveries[0])))
        issue_id = world.new_issue()  # all three at once, on three connections
        deliveries = world.linear.delegation(issue_id)
        threads = [threading.Thread(target=e2e.send, args=(d,)) for d in deliveries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cases.append((issue_id, session_of(deliveries[0])))

        for (issue_id, session_id), order in zip(cases, [*ORDERS, "concurrent"], strict=True):
            assert e2e.wait_end(issue_id) == "done", (order, e2e.log()[-3000:])
            assert len(orchestrations(e2e, issue_id)) == 1, (order, e2e.workflows(issue_id))
            said = assert_carried_by(world, session_id)
            links = [link["url"] for link in world.linear.store.sessions[session_id].external_urls]
            assert any("#comment-" in url for url in links), (order, links)
            assert len([a for a in said if a.content["type"] == "response"]) == 1
            issue = world.linear.store.find_issue(issue_id)
            assert issue.delegate_id == world.agent_id
        failed = e2e.query(
            "SELECT workflow_uuid, error FROM workflow_status WHERE status = 'ERROR'", dbos=True
        )
        assert failed == [], failed
        # one session per issue: no other session was opened or answered
        answered = {a.session_id for a in world.linear.store.activities.values()}
        assert answered == {session for _, session in cases}


def test_a_mention_sets_the_agent_as_delegate_and_links_the_report(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        created = world.linear.agent_session_created(issue_id)  # a mention: no delegation
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done"
        session_id = session_of(created)
        assert_carried_by(world, session_id)
        issue = world.linear.store.find_issue(issue_id)
        assert issue.delegate_id == world.agent_id
        child = world.linear.store.children_of(issue_id)[0]
        assert world.linear.store.issue_url(issue) in (child.description or "")
        assert "#comment-" in (child.description or "")


def test_sessions_are_answered_refused_continued_and_deduplicated(
    world: SandboxWorld, tmp_path: Path
) -> None:
    store = world.linear.store
    stranger = store.add_user("Eve Stranger")
    env = {**LOCAL, "EDGE_WORKER_ALLOWED_USERS": store.human.id}
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **env) as e2e:
        # A refused session gets an error naming the reason and what to do.
        refused = world.linear.agent_session_created(issue_id, creator_id=stranger.id)
        e2e.send(refused)
        refused_id = session_of(refused)
        wait_until(lambda: activities(world, refused_id), timeout=30)
        said = activities(world, refused_id)
        assert [a.content["type"] for a in said] == ["error"]
        assert "EDGE_WORKER_ALLOWED_USERS" in said[0].content["body"]
        assert store.sessions[refused_id].status == "error"
        assert e2e.work_state(issue_id) is None  # no work started

        created = world.linear.agent_session_created(issue_id)
        session_id = session_of(created)
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done"
        assert_carried_by(world, session_id)
        identifier = store.find_issue(issue_id).identifier
        assert len(e2e.agent_calls(identifier, "add-function")) == 1

        # A reply after the work ended, delivered as a prompt and as a comment: handled
        # once, acknowledged at once, and it continues the work (the sub-task it names
        # runs again in its agent's session) to a new response in the same session.
        child = store.children_of(issue_id)[0]
        world.tasks["add-function"] = {"runs": [{"text": "Also handled floats.", "cost_usd": 0.02}]}
        world.scenario_path()
        prompted, commented = world.linear.session_reply(
            session_id, f"{child.identifier}: please also accept floats"
        )
        before = len(activities(world, session_id))
        e2e.send(prompted)
        e2e.send(commented)
        wait_until(lambda: len(e2e.agent_calls(identifier, "add-function")) == 2, timeout=60)
        wait_until(
            lambda: (
                activities(world, session_id)[-1].content["type"] == "response"
                and len(activities(world, session_id)) > before + 1
            ),
            timeout=60,
        )
        later = activities(world, session_id)[before:]
        assert later[0].content == {"type": "thought", "body": texts.PROMPT_ACK}
        assert later[-1].content["type"] == "response"
        assert f"sent to `{child.identifier}`" in later[-1].content["body"]  # what it did
        calls = e2e.agent_calls(identifier, "add-function")
        assert len(calls) == 2 and calls[1]["resume"] == calls[0]["session_id"]
        assert "also accept floats" in calls[1]["prompt"]
        assert store.sessions[session_id].status == "complete"
        stored = e2e.query(
            "SELECT decision FROM ew_webhook_events WHERE event_type IN "
            "('AgentSessionEvent', 'Comment') AND action IN ('prompted', 'create') "
            "AND decision != 'ignore'"
        )
        assert len(stored) == 1, stored  # the comment was a duplicate of the prompt


def test_a_stopped_session_gets_one_final_activity_and_nothing_else(
    world: SandboxWorld, tmp_path: Path
) -> None:
    world.tasks["add-function"] = {
        "runs": [{"text": "Slowly.", "turns": 200, "delay_seconds": 0.2, "cost_usd": 0.1}]
    }
    store = world.linear.store
    issue_id = world.new_issue()
    # Progress goes out once, then not for ten minutes: whatever comes after the stop is
    # the daemon's answer to it, not progress that was on its way.
    quiet = {**LOCAL, "EDGE_WORKER_LINEAR__ACTIVITY_INTERVAL_SECONDS": "600"}
    with running(world, tmp_path / "state", **quiet) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = session_of(created)
        e2e.send(created)
        identifier = store.find_issue(issue_id).identifier
        wait_until(lambda: e2e.agent_calls(identifier, "add-function"), timeout=60)
        wait_until(
            lambda: any(
                a.content["type"] == "action"
                or (a.content["type"] == "thought" and a.content.get("body") != texts.ACK_THOUGHT)
                for a in activities(world, session_id)
            ),
            timeout=60,
        )
        report_before = e2e.report(issue_id)
        stop = world.linear.agent_session_prompted(session_id, "stop", signal="stop")
        stop_at = store.activities_of(session_id)[-1].created_at
        e2e.send(stop)
        assert e2e.wait_end(issue_id) == "stopped"
        after = [a for a in activities(world, session_id) if a.created_at >= stop_at]
        assert [a.content["type"] for a in after] == ["response"], [a.content for a in after]
        assert "Stopped by Ada Lovelace" in after[0].content["body"]
        writes = [
            r.operation
            for r in world.linear.requests
            if r.time >= stop_at
            and r.operation
            in ("CommentCreate", "CommentUpdate", "IssueUpdate", "AgentSessionUpdate")
        ]
        assert writes == [], writes
        assert e2e.report(issue_id) == report_before


def test_a_canceled_issue_is_not_moved(world: SandboxWorld, tmp_path: Path) -> None:
    store = world.linear.store
    canceled = next(s for s in store.team_states(store.team.id) if s.type == "canceled")
    issue_id = world.new_issue()
    store.find_issue(issue_id).state_id = canceled.id
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        created, notified, updated = world.linear.delegation(issue_id)
        e2e.send(updated)
        e2e.send(created)
        e2e.send(notified)
        assert e2e.wait_end(issue_id) == "done"
        assert_carried_by(world, session_of(created))
        assert store.find_issue(issue_id).state_id == canceled.id


def test_the_repository_question_is_a_select_and_its_choice_is_taken(
    world: SandboxWorld, tmp_path: Path
) -> None:
    repositories = [  # configuration order puts the wrong one first
        {"id": "website", "path": str(world.repository), "full_name": "acme/website"},
        {"id": "demo", "path": str(world.repository), "full_name": "acme/calc"},
    ]
    env = {**LOCAL, "EDGE_WORKER_REPOSITORIES": json.dumps(repositories)}
    store = world.linear.store
    issue_id = world.new_issue(
        title="Calc: add a greeting", description="Add `add(a, b)` to the calculator."
    )
    with running(world, tmp_path / "state", **env) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = session_of(created)
        e2e.send(created)
        wait_until(lambda: store.sessions[session_id].status == "awaitingInput", timeout=60)
        question = activities(world, session_id)[-1]
        assert question.content["type"] == "elicitation"
        assert question.signal == "select"
        assert question.signal_metadata is not None
        values = [o["value"] for o in question.signal_metadata["options"]]
        assert values == ["demo", "website"]  # Linear's suggestion ranks calc first
        assert "Pick one of" in question.content["body"]
        e2e.send(world.linear.agent_session_prompted(session_id, "demo"))
        assert e2e.wait_end(issue_id) == "done"
        assert_carried_by(world, session_id)


def test_the_session_links_the_report_the_codegen_run_and_its_pull_request(
    world: SandboxWorld, tmp_path: Path
) -> None:
    store = world.linear.store
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="cloud-only") as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = session_of(created)
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done"
        assert_carried_by(world, session_id)
        links = {link["label"]: link["url"] for link in store.sessions[session_id].external_urls}
        child = store.children_of(issue_id)[0]
        (run,) = world.codegen.runs.values()
        assert links[texts.REPORT_LINK_LABEL].startswith(
            store.issue_url(store.find_issue(issue_id))
        )
        assert links[texts.RUN_LINK_LABEL.format(name=child.identifier)].endswith(str(run.id))
        pull_request = links[texts.PR_LINK_LABEL.format(name=child.identifier)]
        assert pull_request in e2e.result_comment(child.id)


@pytest.mark.postgres
def test_one_delegation_is_one_session_on_postgres(
    world: SandboxWorld, tmp_path: Path, postgres_url: str
) -> None:
    """The same on PostgreSQL (row locks instead of SQLite's single writer): the session
    last, first, and all three at once."""
    import psycopg

    from tests.support.pg import scratch_database

    def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as conn:
            return list(conn.execute(sql, args).fetchall())

    with scratch_database(postgres_url) as url:
        env = {**LOCAL, "EDGE_WORKER_DATABASE_URL": url}
        with running(world, tmp_path / "state", **env) as e2e:
            cases = []
            for order in ((2, 1, 0), (0, 2, 1), None):
                issue_id = world.new_issue()
                deliveries = world.linear.delegation(issue_id)
                if order is None:
                    threads = [threading.Thread(target=e2e.send, args=(d,)) for d in deliveries]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                else:
                    for index in order:
                        e2e.send(deliveries[index])
                cases.append((issue_id, session_of(deliveries[0])))
            for issue_id, session_id in cases:
                wait_until(
                    lambda issue=issue_id: query(
                        url,
                        "SELECT 1 FROM ew_work_items WHERE issue_id = %s AND state = 'done'",
                        issue,
                    ),
                    timeout=90,
                )
                started = query(
                    url,
                    "SELECT workflow_uuid FROM dbos.workflow_status "
                    "WHERE name = 'orchestrate_issue' AND workflow_uuid LIKE %s",
                    f"issue-{issue_id}-%",
                )
                assert len(started) == 1, started
                assert_carried_by(world, session_id)
            failed = query(
                url, "SELECT workflow_uuid FROM dbos.workflow_status WHERE status = 'ERROR'"
            )
            assert failed == [], failed


def test_a_delegations_late_webhooks_do_not_start_its_finished_work_again(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        created, notified, updated = world.linear.delegation(issue_id)
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done"
        said = assert_carried_by(world, session_of(created))
        e2e.send(notified)  # Linear's other two webhooks, delivered late
        e2e.send(updated)

        def triggers_done() -> bool:
            found = e2e.workflows("trigger-")
            return len(found) == 3 and all(status == "SUCCESS" for _, status in found)

        wait_until(triggers_done, timeout=60)
        assert len(orchestrations(e2e, issue_id)) == 1
        assert activities(world, session_of(created)) == said
        assert e2e.work_state(issue_id) == "done"


def test_a_prompt_asking_for_new_work_after_the_end_plans_it_beside_the_old(
    world: SandboxWorld, tmp_path: Path
) -> None:
    from edge_worker.sandbox.anthropic import ToolAnswer

    plan = one_subtask_plan()
    docs = {
        "key": "docs",
        "title": "Document add in the README",
        "description": "Objective: a README line on add.\n\nAcceptance criteria: it mentions add.",
        "role": "builder",
        "executor": "any",
        "depends_on": [],
        "verification": [{"command": "grep -q 'add(a, b)' README.md", "expect_exit": 0}],
    }
    world.anthropic.script(
        ToolAnswer(plan), ToolAnswer({**plan, "subtasks": [*plan["subtasks"], docs]})
    )
    world.tasks["docs"] = {
        "runs": [
            {"text": "Documented.", "edits": [{"path": "README.md", "content": "add(a, b)\n"}]}
        ]
    }
    world.scenario_path()
    store = world.linear.store
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = session_of(created)
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done"
        before = len(activities(world, session_id))
        prompted, _comment = world.linear.session_reply(session_id, "Please also document it.")
        e2e.send(prompted)
        wait_until(lambda: len(store.children_of(issue_id)) == 2, timeout=60)
        wait_until(
            lambda: (
                len(activities(world, session_id)) > before + 1
                and activities(world, session_id)[-1].content["type"] == "response"
            ),
            timeout=90,
        )
        final = activities(world, session_id)[-1].content["body"]
        assert final.startswith("Done: 2/2 sub-issues passed"), final
        assert "added 1 sub-task(s): `docs`" in final
        identifier = store.find_issue(issue_id).identifier
        assert len(e2e.agent_calls(identifier, "add-function")) == 1  # not redone
        assert len(e2e.agent_calls(identifier, "docs")) == 1
        assert len(orchestrations(e2e, issue_id)) == 2  # the work, and its continuation


def test_a_question_after_the_end_is_answered_with_the_works_history(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """A prompt that asks about finished work is answered in the session (the planner is
    shown the work so far), and nothing is run again."""
    from edge_worker.sandbox.anthropic import ToolAnswer

    plan = one_subtask_plan()
    answer = "add(a, b) lives in calc.py and returns a + b; its check passed."
    world.anthropic.script(ToolAnswer(plan), ToolAnswer({**plan, "answer": answer}))
    store = world.linear.store
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = session_of(created)
        e2e.send(created)
        assert e2e.wait_end(issue_id) == "done"
        before = len(activities(world, session_id))
        prompted, _comment = world.linear.session_reply(session_id, "Where did you put add?")
        e2e.send(prompted)
        wait_until(
            lambda: (
                len(activities(world, session_id)) > before + 1
                and activities(world, session_id)[-1].content["type"] == "response"
            ),
            timeout=90,
        )
        said = [a.content for a in activities(world, session_id)[before:]]
        expected = texts.FOLLOW_UP_ANSWERED.format(author=store.human.name, answer=answer)
        assert {"type": "thought", "body": expected} in said, said
        final = said[-1]["body"]
        assert expected in final, final
        assert texts.FOLLOW_UP_NOTED.split("{")[0] not in final
        planner_input = json.dumps(world.anthropic.requests[-1].body)
        assert "orchestration.work_so_far" in planner_input  # the history reached the planner
        assert "`add-function`" in planner_input
        identifier = store.find_issue(issue_id).identifier
        assert len(e2e.agent_calls(identifier, "add-function")) == 1  # not run again
