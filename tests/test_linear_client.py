"""LinearClient against the Linear stand-in over real loopback HTTP.

Waits are measured on a ManualClock shared by client and stand-in, never with sleeps.
stamina's testing switch removes its backoff delays but keeps our attempt bounds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
import stamina
from pydantic import SecretStr

from edge_worker.ids import stable_uuid4
from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import ManualClock
from edge_worker.linear.errors import (
    LinearAuthError,
    LinearRequestError,
    LinearUnavailable,
)
from edge_worker.linear.limits import (
    RateLimitSnapshot,
    RequestBudget,
    rate_limited_wait,
    read_rate_limit_headers,
)
from edge_worker.linear.metrics import request_count
from edge_worker.linear.models import ExternalUrl, IssueRef, PlanStep
from edge_worker.reporting.markers import marker
from edge_worker.sandbox.linear import LinearStandIn
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import LinearSettings
from tests.support.linear import make_standin, settings_for, until

pytest_plugins = ("tests.support.linear_fixtures",)

MakeClient = Callable[..., LinearClient]


@pytest.fixture(autouse=True)
def no_backoff_delays() -> Iterator[None]:
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


# -- auth -----------------------------------------------------------------------------------


async def test_api_key_is_sent_as_is(standin: LinearStandIn, make_client: MakeClient) -> None:
    viewer = await make_client().viewer()
    assert viewer.id == standin.store.agent.id
    assert viewer.organization_id == standin.store.organization.id
    assert standin.requests[-1].authorization == "lin_api_sandbox_key"


async def test_access_token_is_sent_as_bearer(clock: ManualClock) -> None:
    standin = make_standin(clock=clock.time, api_keys=(), access_tokens={"tok-123"})
    with serve_in_thread(standin.app) as url:
        settings = settings_for(url, api_key=None, access_token=SecretStr("tok-123"))
        async with LinearClient(settings, clock=clock) as client:
            await client.viewer()
    assert standin.requests[-1].authorization == "Bearer tok-123"


def test_no_credentials_is_a_clear_error() -> None:
    with pytest.raises(LinearAuthError, match="EDGE_WORKER_LINEAR__API_KEY"):
        LinearClient(LinearSettings())


async def test_a_refused_api_key_fails_at_once(
    standin: LinearStandIn, base_url: str, make_client: MakeClient
) -> None:
    client = make_client(settings=settings_for(base_url, api_key=SecretStr("wrong")))
    with pytest.raises(LinearAuthError, match="401"):
        await client.viewer()
    assert standin.count() == 1


async def test_client_credentials_token_is_fetched_once_and_refreshed_once_on_401(
    standin: LinearStandIn, base_url: str, make_client: MakeClient
) -> None:
    settings = settings_for(
        base_url,
        api_key=None,
        client_id="sandbox-client-id",
        client_secret=SecretStr("sandbox-client-secret"),
    )
    client = make_client(settings=settings)
    team_id = standin.store.team.id
    await client.team_states(team_id)
    first_token = standin.requests[-1].authorization
    assert first_token is not None and first_token.startswith("Bearer lin_oauth_")
    assert standin.token_requests == 1

    standin.revoke_tokens()
    results = await asyncio.gather(*(client.team_states(team_id) for _ in range(5)))

    assert all(len(states) == 6 for states in results)
    assert standin.token_requests == 2  # five callers hit the 401, one refresh
    assert standin.requests[-1].authorization not in (None, first_token)


async def test_wrong_client_secret_is_an_auth_error(base_url: str, make_client: MakeClient) -> None:
    settings = settings_for(
        base_url, api_key=None, client_id="sandbox-client-id", client_secret=SecretStr("nope")
    )
    with pytest.raises(LinearAuthError, match="client-credentials grant \\(401\\)"):
        await make_client(settings=settings).viewer()


async def test_an_app_token_is_replaced_before_it_expires(
    clock: ManualClock,
) -> None:
    standin = make_standin(clock=clock.time, token_lifetime_seconds=600)
    with serve_in_thread(standin.app) as url:
        settings = settings_for(
            url,
            api_key=None,
            client_id="sandbox-client-id",
            client_secret=SecretStr("sandbox-client-secret"),
        )
        async with LinearClient(settings, clock=clock) as client:
            await client.team_states(standin.store.team.id)
            await clock.advance(599)  # inside the safety margin before expiry
            await client.team_states(standin.store.team.id)
    assert standin.token_requests == 2
    assert [r.status for r in standin.requests] == [200, 200]  # no 401 on the way


# -- typed reads, and no hidden requests ----------------------------------------------------


async def test_issue_comes_back_typed_with_its_planning_context(
    standin: LinearStandIn, make_client: MakeClient, clock: ManualClock
) -> None:
    store = standin.store
    parent = store.add_issue("Parent", "Do things", labels=["backend", "api"], project="Q3")
    child = store.add_issue("Child", None, parent_id=parent.id)
    store.add_comment(parent.id, "first")
    clock._now += 5
    store.add_comment(parent.id, "second")

    issue = await make_client().issue(parent.identifier)

    assert (issue.identifier, issue.title, issue.description) == ("ENG-1", "Parent", "Do things")
    assert (issue.team.key, issue.state.type) == ("ENG", "backlog")
    assert issue.labels == ["backend", "api"]
    assert issue.project == "Q3"
    assert issue.parent is None
    assert [(c.id, c.identifier, c.state.name) for c in issue.children] == [
        (child.id, "ENG-2", "Backlog")
    ]
    assert [c.body for c in issue.comments] == ["first", "second"]
    assert issue.comments[0].user_id == store.human.id

    sub = await make_client().issue(child.id)
    assert sub.parent is not None and sub.parent.identifier == "ENG-1"


async def test_team_states_are_ordered_and_include_in_review(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    states = await make_client().team_states(standin.store.team.id)
    assert [s.position for s in states] == sorted(s.position for s in states)
    assert ("In Review", "started") in [(s.name, s.type) for s in states]


async def test_each_call_is_one_request_and_the_viewer_is_asked_once(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    client = make_client()
    issue = standin.store.add_issue("Parent")
    states = await client.team_states(standin.store.team.id)
    await client.viewer()
    await client.viewer()
    await client.update_issue(issue.id, state_id=states[2].id)
    await client.create_comment(id=stable_uuid4("c", "1"), issue_id=issue.id, body="hi")
    await client.update_comment(stable_uuid4("c", "1"), "hello")
    session = standin.agent_session_created(issue.id).payload["agentSession"]["id"]
    await client.create_activity(session_id=session, content={"type": "thought", "body": "x"})
    await client.update_session(session)  # nothing to change: nothing sent
    assert standin.operation_counts() == {
        "TeamStates": 1,
        "Viewer": 1,
        "IssueUpdate": 1,
        "CommentCreate": 1,
        "CommentUpdate": 1,
        "AgentActivityCreate": 1,
    }
    assert standin.store.issues[issue.id].state_id == states[2].id


async def test_session_plan_and_links_are_sent(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    issue = standin.store.add_issue("Parent")
    session = standin.agent_session_created(issue.id).payload["agentSession"]["id"]
    await make_client().update_session(
        session,
        external_urls=[ExternalUrl(label="Run", url="https://example.com/run/1")],
        plan=[
            PlanStep(content="Plan", status="completed"),
            PlanStep(content="Build", status="inProgress"),
        ],
    )
    stored = standin.store.sessions[session]
    assert stored.external_urls == [{"label": "Run", "url": "https://example.com/run/1"}]
    assert stored.plan == [
        {"content": "Plan", "status": "completed"},
        {"content": "Build", "status": "inProgress"},
    ]


async def test_invalid_activity_content_is_refused_before_any_request(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="body"):
        await client.create_activity(session_id="s", content={"type": "response", "body": "  "})
    with pytest.raises(ValueError, match="ephemeral"):
        await client.create_activity(
            session_id="s", content={"type": "response", "body": "x"}, ephemeral=True
        )
    with pytest.raises(ValueError, match="type"):
        await client.create_activity(session_id="s", content={"type": "prompt", "body": "x"})
    assert standin.count() == 0


# -- idempotent creates ---------------------------------------------------------------------


async def test_a_retried_create_step_returns_the_existing_sub_issue(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    parent = standin.store.add_issue("Parent")
    sub_id = stable_uuid4(parent.id, "build")

    async def create_step(client: LinearClient) -> IssueRef:
        return await client.create_issue(
            id=sub_id,
            team_id=standin.store.team.id,
            title="Build it",
            description="Objective...",
            parent_id=parent.id,
        )

    first = await create_step(make_client())
    again = await create_step(make_client())  # a new process retrying the step

    assert first == again and first.id == sub_id
    assert [c.id for c in standin.store.children_of(parent.id)] == [sub_id]
    assert standin.operation_counts() == {"IssueCreate": 2, "IssueRef": 1}


async def test_a_create_whose_answer_was_lost_is_retried_without_duplicating(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    parent = standin.store.add_issue("Parent")
    standin.fail_next(1, "server_error", after_processing=True)
    comment = await make_client().create_comment(
        id=stable_uuid4(parent.id, "ack"), issue_id=parent.id, body="On it."
    )
    assert comment.body == "On it."
    assert [c.id for c in standin.store.comments_on(parent.id)] == [comment.id]
    assert standin.operation_counts() == {"CommentCreate": 2, "CommentById": 1}


async def test_an_activity_with_a_chosen_id_is_created_once(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    issue = standin.store.add_issue("Parent")
    session = standin.agent_session_created(issue.id).payload["agentSession"]["id"]
    activity_id = stable_uuid4(session, "final")
    content = {"type": "response", "body": "Done."}
    client = make_client()
    assert await client.create_activity(session_id=session, content=content, id=activity_id) == (
        activity_id
    )
    assert await client.create_activity(session_id=session, content=content, id=activity_id) == (
        activity_id
    )
    assert [a.id for a in standin.store.activities_of(session)] == [activity_id]


async def test_a_refused_create_that_is_not_a_duplicate_keeps_linears_message(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    with pytest.raises(LinearRequestError, match="Could not find referenced Issue") as caught:
        await make_client().create_issue(
            id=stable_uuid4("x"),
            team_id=standin.store.team.id,
            title="Orphan",
            description="",
            parent_id="00000000-0000-4000-8000-000000000000",
        )
    assert caught.value.code == "INVALID_INPUT"


async def test_a_document_whose_id_exists_is_read_back_not_created_twice(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    team_id = await make_client().team_id("ENG")
    assert team_id == standin.store.team.id
    doc_id = stable_uuid4("doc", "2026-03-01")
    first = await make_client().create_document(
        id=doc_id, title="Report", content="# Report", team_id=team_id
    )
    again = await make_client().create_document(  # a retried step in a new process
        id=doc_id, title="Report", content="# Report", team_id=team_id
    )
    assert first == again and first.id == doc_id and first.team_id == team_id
    assert [d.id for d in standin.store.documents_in(team_id)] == [doc_id]
    assert standin.store.documents[doc_id].creator_id == standin.store.agent.id
    assert standin.operation_counts() == {"TeamByKey": 1, "DocumentCreate": 2, "DocumentById": 1}


async def test_a_refused_document_that_is_not_a_duplicate_keeps_linears_message(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    with pytest.raises(LinearRequestError, match="Could not find referenced Team"):
        await make_client().create_document(
            id=stable_uuid4("doc", "x"),
            title="Report",
            content="# Report",
            team_id="00000000-0000-4000-8000-000000000000",
        )
    assert not standin.store.documents


async def test_an_unknown_team_key_is_a_clear_error(make_client: MakeClient) -> None:
    with pytest.raises(LinearRequestError, match="no team with key 'NOPE'"):
        await make_client().team_id("NOPE")


# -- marker comments ------------------------------------------------------------------------


async def test_the_report_comment_is_edited_in_place(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    issue = standin.store.add_issue("Parent")
    client = make_client()
    first = await client.upsert_marked_comment(issue_id=issue.id, purpose="report", body="v1")
    second = await client.upsert_marked_comment(issue_id=issue.id, purpose="report", body="v2")
    # A restarted daemon has no memory of the comment: it still edits the same one.
    third = await make_client().upsert_marked_comment(
        issue_id=issue.id, purpose="report", body="v3"
    )

    assert first.id == second.id == third.id == stable_uuid4(issue.id, "report")
    comments = standin.store.comments_on(issue.id)
    assert len(comments) == 1
    assert comments[0].body == "v3\n\n" + marker("report", issue.id)
    assert standin.operation_counts() == {"CommentCreate": 2, "CommentUpdate": 2}


async def test_a_marked_comment_with_another_id_is_found_among_known_comments(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    issue = standin.store.add_issue("Parent")
    old = standin.store.add_comment(
        issue.id, "old report " + marker("report", issue.id), user_id=standin.store.agent.id
    )
    client = make_client()
    context = await client.issue(issue.id)
    updated = await client.upsert_marked_comment(
        issue_id=issue.id, purpose="report", body="new", known_comments=context.comments
    )
    assert updated.id == old.id
    assert len(standin.store.comments_on(issue.id)) == 1
    assert standin.count("CommentCreate") == 0


async def test_different_purposes_get_different_comments(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    issue = standin.store.add_issue("Parent")
    client = make_client()
    body = "already marked " + marker("question", issue.id)
    await client.upsert_marked_comment(issue_id=issue.id, purpose="report", body="r")
    asked = await client.upsert_marked_comment(issue_id=issue.id, purpose="question", body=body)
    assert asked.body == body  # a marker already present is not added twice
    assert len(standin.store.comments_on(issue.id)) == 2


# -- rate limits, 5xx, validation errors ----------------------------------------------------


@pytest.mark.parametrize("status", [400, 429])
async def test_ratelimited_waits_until_the_reset_then_succeeds(
    standin: LinearStandIn, make_client: MakeClient, clock: ManualClock, status: int
) -> None:
    clock.auto_advance = True
    standin.fail_next(1, "ratelimited", status=status, reset_in=42)

    states = await make_client().team_states(standin.store.team.id)

    assert len(states) == 6
    assert clock.sleeps == [pytest.approx(42, abs=0.01)]
    first, second = standin.requests_for("TeamStates")
    assert second.time - first.time == pytest.approx(42, abs=0.01)
    assert request_count("TeamStates", "ratelimited") >= 1


async def test_retry_after_wins_over_the_reset_header(
    standin: LinearStandIn, make_client: MakeClient, clock: ManualClock
) -> None:
    clock.auto_advance = True
    standin.fail_next(1, "ratelimited", status=429, reset_in=600, retry_after=7)
    await make_client().viewer()
    assert clock.sleeps == [7.0]


async def test_rate_limiting_that_never_ends_gives_up_after_the_bound(
    standin: LinearStandIn, make_client: MakeClient, clock: ManualClock
) -> None:
    clock.auto_advance = True
    standin.fail_next(10, "ratelimited")
    with pytest.raises(LinearUnavailable, match="rate limited"):
        await make_client(max_rate_limit_retries=2).viewer()
    assert standin.count("Viewer") == 3


async def test_a_5xx_burst_is_retried_until_success(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    before = request_count("Viewer", "server_error")
    standin.fail_next(3, "server_error", status=502)
    viewer = await make_client().viewer()
    assert viewer.id == standin.store.agent.id
    assert standin.count("Viewer") == 4
    assert request_count("Viewer", "server_error") - before == 3


async def test_a_5xx_burst_longer_than_the_bound_fails(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    standin.fail_next(10, "server_error")
    with pytest.raises(LinearUnavailable, match="503"):
        await make_client(transient_attempts=3).viewer()
    assert standin.count("Viewer") == 3


async def test_network_errors_are_retried_a_bounded_number_of_times(clock: ManualClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = request_count("Viewer", "network_error")
    settings = settings_for(f"http://127.0.0.1:{port}")
    async with LinearClient(settings, clock=clock, transient_attempts=3) as client:
        with pytest.raises(LinearUnavailable, match="unreachable"):
            await client.viewer()
    assert request_count("Viewer", "network_error") - before == 3


async def test_a_validation_error_fails_at_once_with_linears_message(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    issue = standin.store.add_issue("Parent")
    before = request_count("IssueUpdate", "error")
    with pytest.raises(LinearRequestError, match="Could not find referenced WorkflowState"):
        await make_client().update_issue(issue.id, state_id=stable_uuid4("no such state"))
    assert standin.count("IssueUpdate") == 1
    assert request_count("IssueUpdate", "error") - before == 1


async def test_rate_limit_headers_are_recorded(
    standin: LinearStandIn, make_client: MakeClient
) -> None:
    client = make_client()
    await client.viewer()
    assert client.rate_limit.requests_limit == 5000
    assert client.rate_limit.requests_remaining == 4999


# -- the client-side budget -----------------------------------------------------------------


async def test_when_the_budget_runs_low_low_priority_writes_wait_first(
    standin: LinearStandIn, base_url: str, make_client: MakeClient, clock: ManualClock
) -> None:
    issue = standin.store.add_issue("Parent")
    client = make_client(settings=settings_for(base_url, requests_per_hour=10))
    assert client.budget.reserve == 2
    for _ in range(8):  # 10 -> 2 tokens left, the reserve
        await client.team_states(standin.store.team.id)

    low = asyncio.create_task(
        client.create_comment(
            id=stable_uuid4("low"), issue_id=issue.id, body="progress", priority="low"
        )
    )
    await until(lambda: clock.waiting == 1)
    await client.update_issue(issue.id, state_id=standin.store.team_states(issue.team_id)[2].id)

    assert not low.done()
    assert standin.count("CommentCreate") == 0 and standin.count("IssueUpdate") == 1

    await clock.advance(720)  # refills 2 requests at 10 an hour
    await low
    assert standin.count("CommentCreate") == 1
    assert standin.requests[-1].time >= standin.requests_for("IssueUpdate")[0].time + 720


async def test_low_priority_holds_back_when_linear_reports_the_token_running_low(
    clock: ManualClock,
) -> None:
    clock.auto_advance = True
    standin = make_standin(clock=clock.time, requests_per_hour=5)
    with serve_in_thread(standin.app) as url:
        async with LinearClient(settings_for(url), clock=clock) as client:
            for _ in range(4):  # Linear now says: 1 of 5 left
                await client.team_states(standin.store.team.id)
            assert clock.sleeps == []
            issue = standin.store.add_issue("Parent")
            await client.create_comment(
                id=stable_uuid4("p"), issue_id=issue.id, body="progress", priority="low"
            )
    assert clock.sleeps == [pytest.approx(3600, abs=1)]


async def test_budget_is_a_leaky_bucket_on_the_injected_clock() -> None:
    clock = ManualClock(auto_advance=True)
    budget = RequestBudget(3600, clock=clock)
    for _ in range(3600):
        await budget.acquire()
    assert clock.sleeps == []
    await budget.acquire()
    assert clock.sleeps == [pytest.approx(1.0)]  # one request a second refills


# -- header parsing (sans-I/O) --------------------------------------------------------------


def test_rate_limit_headers_accept_milliseconds_and_seconds() -> None:
    snapshot = read_rate_limit_headers(
        httpx.Headers(
            {
                "X-RateLimit-Requests-Limit": "5000",
                "X-RateLimit-Requests-Remaining": "12",
                "X-RateLimit-Requests-Reset": "1700000060000",
                "X-RateLimit-Complexity-Reset": "1700000090",
                "X-Complexity": "7",
            }
        )
    )
    assert snapshot == RateLimitSnapshot(
        requests_limit=5000,
        requests_remaining=12,
        requests_reset_at=1_700_000_060.0,
        complexity_reset_at=1_700_000_090.0,
        complexity=7,
    )
    assert read_rate_limit_headers({"X-RateLimit-Requests-Remaining": "many"}).empty


def test_rate_limited_wait_prefers_retry_after_and_is_clamped() -> None:
    now = 1_700_000_000.0
    reset = {"X-RateLimit-Requests-Remaining": "0", "X-RateLimit-Requests-Reset": "1700000030000"}
    assert rate_limited_wait(reset, now) == 30.0
    assert rate_limited_wait({**reset, "Retry-After": "5"}, now) == 5.0
    assert rate_limited_wait({}, now) == 60.0
    assert rate_limited_wait({"Retry-After": "0"}, now) == 1.0
    assert rate_limited_wait({"Retry-After": "99999"}, now, max_wait=600) == 600


def test_the_request_counter_survives_a_second_import() -> None:
    import importlib

    import edge_worker.linear.metrics as metrics

    metrics.count_request("Probe", "ok")
    reloaded = importlib.reload(metrics)  # would raise on duplicate registration
    reloaded.count_request("Probe", "ok")
    assert reloaded.request_count("Probe", "ok") == 2
