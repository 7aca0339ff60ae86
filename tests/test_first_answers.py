"""The first activity of a session trigger, through LinearClient to the stand-in over
loopback HTTP: posted once wherever it is begun, nothing for a stop, and a failure left to
the trigger's workflow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_worker.linear.client import LinearClient
from edge_worker.orchestration import texts
from edge_worker.orchestration.answers import FirstAnswers, first_activity, first_activity_id
from edge_worker.sandbox.linear import LinearStandIn

pytest_plugins = ("tests.support.linear_fixtures",)


def trigger(standin: LinearStandIn, kind: str, **extra: Any) -> dict[str, Any]:
    issue = standin.store.add_issue("Parent")
    created = standin.agent_session_created(issue.id)
    session = created.payload["agentSession"]["id"]
    return {"kind": kind, "dedupe_key": f"{kind}:{session}", "session_id": session, **extra}


async def test_begun_at_commit_and_settled_at_dispatch_it_is_posted_once(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    answers = FirstAnswers(make_client())
    start = trigger(standin, "start")
    answers.start(start)
    answers.start(start)  # a second call begins nothing new
    assert await answers.settle(start) is True
    said = standin.store.activities_of(start["session_id"])
    assert [(a.id, a.content) for a in said] == [
        (first_activity_id(start), {"type": "thought", "body": texts.ACK_THOUGHT})
    ]
    assert said[0].status_after == "active"


async def test_settled_without_a_start_it_is_posted_then(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    answers = FirstAnswers(make_client())
    refused = trigger(standin, "refuse", context={"refusal": "team"})
    assert await answers.settle(refused) is True
    (said,) = standin.store.activities_of(refused["session_id"])
    assert said.content["type"] == "error" and "EDGE_WORKER_ALLOWED_TEAMS" in said.content["body"]
    assert standin.store.sessions[refused["session_id"]].status == "error"


async def test_a_stop_and_a_trigger_without_a_session_get_nothing(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    answers = FirstAnswers(make_client())
    stop = trigger(standin, "stop")
    assert first_activity(stop) is None
    answers.start(stop)
    assert await answers.settle(stop) is False
    assert await answers.settle({"kind": "start", "dedupe_key": "issue:1"}) is False
    assert standin.count("AgentActivityCreate") == 0


async def test_a_post_linear_refuses_is_left_to_the_workflow(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    answers = FirstAnswers(make_client())
    missing = {"kind": "start", "dedupe_key": "start:gone", "session_id": "no-such-session"}
    answers.start(missing)
    assert await answers.settle(missing) is False
