"""ActivityCoalescer sending through LinearClient to the stand-in over loopback HTTP.

Time is a ManualClock shared by coalescer, client and stand-in: the test moves it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from edge_worker.linear.activities import (
    HEARTBEAT_BODY,
    MAX_MERGED_ITEMS,
    ActivityCoalescer,
    merge_progress,
)
from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import ManualClock
from edge_worker.sandbox.linear import LinearStandIn
from tests.support.linear import settings_for, until

pytest_plugins = ("tests.support.linear_fixtures",)

ACTIVITY = "AgentActivityCreate"


@pytest.fixture
def session_id(standin: LinearStandIn) -> str:
    issue = standin.store.add_issue("Parent")
    return str(standin.agent_session_created(issue.id).payload["agentSession"]["id"])


@pytest.fixture
async def coalescer(
    make_client: Callable[..., LinearClient], clock: ManualClock
) -> AsyncIterator[ActivityCoalescer]:
    coalescer = ActivityCoalescer(make_client(), clock=clock, interval=10.0, heartbeat=1200.0)
    yield coalescer
    await coalescer.aclose()


def sent(standin: LinearStandIn, session_id: str) -> list[dict[str, object]]:
    return [a.content for a in standin.store.activities_of(session_id)]


async def test_a_hundred_progress_events_in_five_seconds_become_one_request_per_interval(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    for step in range(100):
        if step % 2:
            coalescer.note_action(session_id, "Bash", f"pytest -k case{step}", "passed")
        else:
            coalescer.note_thought(session_id, f"Looking at case {step}")
        if step == 0:
            await coalescer.drain()  # the first event goes out at once, at t = 0
        await clock.advance(0.05)
    await coalescer.drain()
    assert standin.count(ACTIVITY) == 1  # the other 99 wait for the interval

    await clock.advance(4.99)  # t = 9.99 s: still inside the interval
    await coalescer.flush_due()
    assert standin.count(ACTIVITY) == 1

    await clock.advance(0.01)
    await coalescer.flush_due()
    assert standin.count(ACTIVITY) == 2
    merged = sent(standin, session_id)[-1]
    assert merged["type"] == "thought"
    body = str(merged["body"])
    assert "earlier steps" in body and "Bash `pytest -k case99` → passed" in body
    assert len(body.splitlines()) == MAX_MERGED_ITEMS + 1

    times = [r.time for r in standin.requests_for(ACTIVITY)]
    assert times[1] - times[0] == pytest.approx(10.0, abs=1e-3)
    assert coalescer.pending(session_id) == 0


async def test_a_terminal_response_flushes_pending_progress_and_goes_out_last(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.note_thought(session_id, "Planning")
    await coalescer.drain()
    coalescer.note_thought(session_id, "Building")
    coalescer.note_action(session_id, "Edit", "greet.py")

    await coalescer.respond(session_id, "All done: 3 sub-issues verified.")
    coalescer.note_thought(session_id, "late straggler")
    await clock.advance(3600)
    await coalescer.flush_due()

    kinds = [content["type"] for content in sent(standin, session_id)]
    assert kinds == ["thought", "thought", "response"]
    assert "Building" in str(sent(standin, session_id)[1]["body"])
    assert standin.store.sessions[session_id].status == "complete"


async def test_an_error_is_terminal_too(
    standin: LinearStandIn, coalescer: ActivityCoalescer, session_id: str
) -> None:
    coalescer.note_thought(session_id, "Trying")
    await coalescer.drain()
    coalescer.note_action(session_id, "Bash", "make test", "exit 2")
    await coalescer.fail(session_id, "Verification failed twice; a human should look.")
    assert [c["type"] for c in sent(standin, session_id)] == ["thought", "action", "error"]


async def test_a_terminal_goes_out_even_inside_the_interval(
    standin: LinearStandIn, coalescer: ActivityCoalescer, session_id: str
) -> None:
    coalescer.note_thought(session_id, "Working")
    await coalescer.drain()
    await coalescer.respond(session_id, "Done")  # 0 s after the last send
    assert standin.count(ACTIVITY) == 2


async def test_elicitation_flushes_first_and_keeps_the_session_open(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.note_thought(session_id, "a")
    await coalescer.drain()
    coalescer.note_thought(session_id, "b")
    await coalescer.elicit(session_id, "Which database?")
    coalescer.note_thought(session_id, "c")
    await clock.advance(10)
    await coalescer.flush_due()
    assert [c["type"] for c in sent(standin, session_id)] == [
        "thought",
        "thought",
        "elicitation",
        "thought",
    ]


async def test_empty_bodies_are_never_sent(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.note_thought(session_id, "   ")
    coalescer.note_action(session_id, " ")
    await clock.advance(30)
    await coalescer.flush_due()
    assert coalescer.pending(session_id) == 0
    with pytest.raises(ValueError, match="non-empty"):
        await coalescer.respond(session_id, "\n")
    assert standin.count(ACTIVITY) == 0


async def test_a_quiet_session_gets_a_heartbeat(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.open(session_id)
    await clock.advance(1199)
    await coalescer.flush_due()
    assert standin.count(ACTIVITY) == 0

    await clock.advance(1)
    await coalescer.flush_due()
    heartbeat = standin.store.activities_of(session_id)[-1]
    assert heartbeat.content == {"type": "thought", "body": HEARTBEAT_BODY}
    assert heartbeat.ephemeral is True

    await clock.advance(600)  # quiet again, but not long enough
    await coalescer.flush_due()
    assert standin.count(ACTIVITY) == 1
    await clock.advance(600)
    await coalescer.flush_due()
    assert standin.count(ACTIVITY) == 2


async def test_progress_postpones_the_heartbeat(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.open(session_id)
    await clock.advance(1000)
    coalescer.note_thought(session_id, "still busy")
    await coalescer.drain()
    await clock.advance(1000)
    await coalescer.flush_due()
    assert [c["body"] for c in sent(standin, session_id)] == ["still busy"]


async def test_a_select_question_carries_its_options_and_silences_the_heartbeat(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    await coalescer.elicit(session_id, "Which repository?", options=["demo", "website"])
    question = standin.store.activities_of(session_id)[-1]
    assert question.signal == "select"
    assert question.signal_metadata == {
        "options": [{"label": "demo", "value": "demo"}, {"label": "website", "value": "website"}]
    }
    assert standin.store.sessions[session_id].status == "awaitingInput"
    assert coalescer.awaiting_input(session_id)
    await clock.advance(3 * 1200)
    await coalescer.flush_due()
    assert standin.count(ACTIVITY) == 1  # no heartbeat flipped it back to active
    assert standin.store.sessions[session_id].status == "awaitingInput"

    coalescer.resume(session_id)  # the answer came: heartbeats again when quiet
    await clock.advance(1200)
    await coalescer.flush_due()
    assert sent(standin, session_id)[-1] == {"type": "thought", "body": HEARTBEAT_BODY}


async def test_a_final_activity_after_a_stop_drops_pending_progress(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.note_thought(session_id, "a")
    await coalescer.drain()
    coalescer.note_thought(session_id, "b")
    await coalescer.respond(session_id, "Stopped by Ada.", discard_pending=True)
    assert [c.get("body") for c in sent(standin, session_id)] == ["a", "Stopped by Ada."]


async def test_the_background_loop_sends_due_progress_when_time_passes(
    standin: LinearStandIn, coalescer: ActivityCoalescer, clock: ManualClock, session_id: str
) -> None:
    coalescer.start()
    coalescer.note_thought(session_id, "one")
    await until(lambda: standin.count(ACTIVITY) == 1)
    coalescer.note_thought(session_id, "two")
    await clock.advance(9)
    await coalescer.drain()
    assert standin.count(ACTIVITY) == 1

    await clock.advance(1)
    await until(lambda: standin.count(ACTIVITY) == 2)
    assert sent(standin, session_id)[-1]["body"] == "two"


async def test_progress_waits_for_the_budget_but_the_terminal_does_not(
    standin: LinearStandIn,
    base_url: str,
    make_client: Callable[..., LinearClient],
    clock: ManualClock,
    session_id: str,
) -> None:
    client = make_client(settings=settings_for(base_url, requests_per_hour=10))
    for _ in range(8):  # leave only the reserve
        await client.team_states(standin.store.team.id)
    coalescer = ActivityCoalescer(client, clock=clock, interval=10.0, heartbeat=1200.0)
    coalescer.note_thought(session_id, "progress that can wait")
    await until(lambda: clock.waiting == 1)  # held by the budget, at low priority

    await coalescer.respond(session_id, "Finished")
    assert [c["type"] for c in sent(standin, session_id)] == ["thought", "response"]
    await coalescer.aclose()


def test_merging_keeps_a_single_item_as_it_is() -> None:
    action = {"type": "action", "action": "Read", "parameter": "README.md"}
    assert merge_progress([action]) == action


def test_merging_lists_many_items_in_one_thought() -> None:
    items = [{"type": "thought", "body": f"step {n}\nmore"} for n in range(3)]
    assert merge_progress(items) == {
        "type": "thought",
        "body": "- step 0 more\n- step 1 more\n- step 2 more",
    }


async def test_progress_for_work_that_ended_elsewhere_is_dropped_not_said(
    standin: LinearStandIn,
    make_client: Callable[..., LinearClient],
    clock: ManualClock,
    session_id: str,
) -> None:
    """Another daemon stopped the work and said the last word: the gate (the shared
    database's answer) says so, and neither the progress this daemon holds nor its
    heartbeat goes out after it."""
    working = {session_id: True}

    async def still_working(asked: str) -> bool:
        return working[asked]

    coalescer = ActivityCoalescer(
        make_client(), clock=clock, interval=10.0, heartbeat=60.0, still_working=still_working
    )
    try:
        coalescer.note_thought(session_id, "Reading the code")
        await coalescer.drain()
        assert [a["body"] for a in sent(standin, session_id)] == ["Reading the code"]

        coalescer.note_thought(session_id, "Running the tests")
        working[session_id] = False  # the stop was handled on another daemon
        await clock.advance(10.0)
        await coalescer.flush_due()
        await clock.advance(120.0)  # past the heartbeat too
        await coalescer.flush_due()
        assert [a["body"] for a in sent(standin, session_id)] == ["Reading the code"]
        assert coalescer.pending(session_id) == 0

        working[session_id] = True  # the work continues (a prompt after the stop)
        coalescer.note_thought(session_id, "Back at it")
        await clock.advance(10.0)
        await coalescer.flush_due()
        assert sent(standin, session_id)[-1]["body"] == "Back at it"
    finally:
        await coalescer.aclose()
