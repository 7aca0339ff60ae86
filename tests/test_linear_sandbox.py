"""The Linear stand-in, spoken to with raw HTTP over loopback (no LinearClient)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from edge_worker.linear.documents import operations
from edge_worker.sandbox.linear import DEFAULT_API_KEY, LinearStandIn, send_webhook
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.webhooks.verify import sign
from tests.support.linear import make_standin

AUTH = {"Authorization": DEFAULT_API_KEY}


@pytest.fixture
def standin() -> LinearStandIn:
    return make_standin()


@pytest.fixture
def http(standin: LinearStandIn) -> Iterator[httpx.Client]:
    with serve_in_thread(standin.app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def gql(
    http: httpx.Client,
    operation: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"query": operations()[operation], "variables": variables or {}}
    return http.post("/graphql", json=body, headers=AUTH if headers is None else headers)


def create_issue_input(standin: LinearStandIn, **fields: Any) -> dict[str, Any]:
    return {"input": {"teamId": standin.store.team.id, "title": "Sub-task", **fields}}


# -- schema validation ----------------------------------------------------------------------


def test_a_document_the_schema_rejects_is_a_400_naming_the_problem(
    linear_schema_path: Path, http: httpx.Client
) -> None:
    response = http.post(
        "/graphql", json={"query": "query Bad { viewer { id shoeSize } }"}, headers=AUTH
    )
    assert response.status_code == 400
    messages = [error["message"] for error in response.json()["errors"]]
    assert any("shoeSize" in message and "User" in message for message in messages)


def test_variables_the_input_types_reject_are_a_400(
    linear_schema_path: Path, standin: LinearStandIn, http: httpx.Client
) -> None:
    variables = create_issue_input(standin, parentIssue="ENG-1")
    response = gql(http, "IssueCreate", variables)
    assert response.status_code == 400
    assert "parentIssue" in response.json()["errors"][0]["message"]
    assert standin.store.issues == {}


def test_unparsable_bodies_are_a_400(http: httpx.Client) -> None:
    assert http.post("/graphql", content=b"{not json", headers=AUTH).status_code == 400
    response = http.post("/graphql", json={"query": "query {"}, headers=AUTH)
    assert response.status_code == 400
    assert "Syntax Error" in response.json()["errors"][0]["message"]


def test_without_the_schema_file_it_warns_and_still_serves(tmp_path: Path) -> None:
    with capture_logs() as logs:
        standin = LinearStandIn(schema_path=tmp_path / "absent.graphql")
    assert not standin.validates
    assert any(entry["event"] == "linear_standin.schema_missing" for entry in logs)
    with serve_in_thread(standin.app) as url, httpx.Client(base_url=url) as client:
        response = gql(client, "Viewer")
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["id"] == standin.store.agent.id
    with pytest.raises(FileNotFoundError):
        LinearStandIn(schema_path=tmp_path / "absent.graphql", require_schema=True)


# -- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "lin_api_wrong"}, {"Authorization": "Bearer x"}]
)
def test_auth_is_required(
    http: httpx.Client, standin: LinearStandIn, headers: dict[str, str]
) -> None:
    response = gql(http, "Viewer", headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_ERROR"
    assert standin.requests[-1].status == 401


def test_the_token_endpoint_issues_bearer_tokens_that_can_be_revoked(
    http: httpx.Client, standin: LinearStandIn
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret",
        "scope": "read,write",
    }
    token = http.post("/oauth/token", data=form).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    bearer = {"Authorization": "Bearer " + token["access_token"]}
    assert gql(http, "Viewer", headers=bearer).status_code == 200
    standin.revoke_tokens()
    assert gql(http, "Viewer", headers=bearer).status_code == 401
    bad = http.post("/oauth/token", data={**form, "client_secret": "guess"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


# -- data and mutations ---------------------------------------------------------------------


def test_seeded_team_has_linears_state_types_including_in_review(
    http: httpx.Client, standin: LinearStandIn
) -> None:
    states = gql(http, "TeamStates", {"teamId": standin.store.team.id}).json()["data"]
    found = {(s["name"], s["type"]) for s in states["team"]["states"]["nodes"]}
    assert ("In Review", "started") in found
    assert {t for _, t in found} == {"backlog", "unstarted", "started", "completed", "canceled"}


def test_issues_get_identifiers_parents_children_and_labels(
    http: httpx.Client, standin: LinearStandIn
) -> None:
    parent = standin.store.add_issue("Parent", labels=["bug"])
    label_id = next(iter(standin.store.labels))
    child_id = str(uuid.uuid4())
    created = gql(
        http,
        "IssueCreate",
        create_issue_input(standin, id=child_id, parentId=parent.identifier, labelIds=[label_id]),
    ).json()["data"]["issueCreate"]
    assert created["issue"]["identifier"] == "ENG-2"
    issue = gql(http, "Issue", {"id": "ENG-1"}).json()["data"]["issue"]
    assert issue["children"]["nodes"][0]["id"] == child_id
    assert [n["name"] for n in issue["labels"]["nodes"]] == ["bug"]
    child = gql(http, "Issue", {"id": child_id}).json()["data"]["issue"]
    assert child["parent"] == {"id": parent.id, "identifier": "ENG-1"}
    assert child["state"]["type"] == "backlog"


def test_a_reused_client_chosen_id_is_refused(http: httpx.Client, standin: LinearStandIn) -> None:
    chosen = str(uuid.uuid4())
    assert gql(http, "IssueCreate", create_issue_input(standin, id=chosen)).status_code == 200
    again = gql(http, "IssueCreate", create_issue_input(standin, id=chosen))
    assert again.status_code == 400
    error = again.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID_INPUT"
    assert "already exists" in error["extensions"]["userPresentableMessage"]
    assert len(standin.store.issues) == 1

    issue_id = next(iter(standin.store.issues))
    comment = {"input": {"id": chosen, "issueId": issue_id, "body": "x"}}
    assert gql(http, "CommentCreate", comment).status_code == 400  # ids are unique across kinds

    not_v4 = gql(http, "IssueCreate", create_issue_input(standin, id=str(uuid.uuid1())))
    assert "UUID v4" in not_v4.json()["errors"][0]["extensions"]["userPresentableMessage"]


def test_documents_belong_to_a_team_by_id_and_their_ids_are_unique(
    http: httpx.Client, standin: LinearStandIn
) -> None:
    chosen = str(uuid.uuid4())
    fields = {"id": chosen, "title": "Report", "content": "# Report"}
    created = gql(http, "DocumentCreate", {"input": {**fields, "teamId": standin.store.team.id}})
    assert created.json()["data"]["documentCreate"]["document"]["content"] == "# Report"
    again = gql(http, "DocumentCreate", {"input": {**fields, "teamId": standin.store.team.id}})
    assert "already exists" in again.json()["errors"][0]["extensions"]["userPresentableMessage"]
    by_key = gql(http, "DocumentCreate", {"input": {**fields, "id": None, "teamId": "ENG"}})
    assert by_key.json()["errors"][0]["message"] == "Entity not found: Team"
    orphan = gql(http, "DocumentCreate", {"input": {**fields, "id": None}})
    assert "needs a team" in orphan.json()["errors"][0]["extensions"]["userPresentableMessage"]
    assert list(standin.store.documents) == [chosen]
    found = gql(http, "DocumentById", {"id": chosen}).json()["data"]["document"]
    assert found["team"]["id"] == standin.store.team.id
    teams = gql(http, "TeamByKey", {"key": "ENG"}).json()["data"]["teams"]["nodes"]
    assert [t["id"] for t in teams] == [standin.store.team.id]
    assert gql(http, "TeamByKey", {"key": "NOPE"}).json()["data"]["teams"]["nodes"] == []


def test_missing_entities_are_refused_with_linears_wording(http: httpx.Client) -> None:
    response = gql(http, "Issue", {"id": "ENG-404"})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["message"] == "Entity not found: Issue"
    assert error["extensions"]["userPresentableMessage"] == "Could not find referenced Issue."


def test_only_the_author_can_edit_a_comment(http: httpx.Client, standin: LinearStandIn) -> None:
    issue = standin.store.add_issue("Parent")
    human_comment = standin.store.add_comment(issue.id, "mine", user_id=standin.store.human.id)
    response = gql(http, "CommentUpdate", {"id": human_comment.id, "input": {"body": "edited"}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert standin.store.comments[human_comment.id].body == "mine"


@pytest.mark.parametrize(
    ("content", "ephemeral", "problem"),
    [
        ({"type": "thought", "body": "  "}, False, "non-empty body"),
        ({"type": "action", "action": "Bash"}, False, "parameter"),
        ({"type": "prompt", "body": "hi"}, False, "content.type"),
        ({"type": "response", "body": "done"}, True, "ephemeral"),
    ],
)
def test_malformed_activities_are_refused(
    http: httpx.Client,
    standin: LinearStandIn,
    content: dict[str, Any],
    ephemeral: bool,
    problem: str,
) -> None:
    issue = standin.store.add_issue("Parent")
    session = standin.store.add_session(issue.id)
    activity = {"agentSessionId": session.id, "content": content, "ephemeral": ephemeral}
    response = gql(http, "AgentActivityCreate", {"input": activity})
    assert response.status_code == 400
    assert problem in response.json()["errors"][0]["extensions"]["userPresentableMessage"]
    assert standin.store.activities_of(session.id) == []


def test_activities_move_the_session_status(http: httpx.Client, standin: LinearStandIn) -> None:
    issue = standin.store.add_issue("Parent")
    session = standin.store.add_session(issue.id)
    for kind, status in [
        ("thought", "active"),
        ("elicitation", "awaitingInput"),
        ("response", "complete"),
    ]:
        activity = {"agentSessionId": session.id, "content": {"type": kind, "body": "x"}}
        assert gql(http, "AgentActivityCreate", {"input": activity}).status_code == 200
        assert standin.store.sessions[session.id].status == status


# -- scripted failures, rate-limit headers, request log ---------------------------------------


@pytest.mark.parametrize("status", [400, 429])
def test_scripted_ratelimited_answers_carry_the_headers(
    http: httpx.Client, standin: LinearStandIn, status: int
) -> None:
    standin.fail_next(2, "ratelimited", status=status, reset_in=90, retry_after=5)
    for _ in range(2):
        response = gql(http, "Viewer")
        assert response.status_code == status
        assert response.json()["errors"][0]["extensions"]["code"] == "RATELIMITED"
        assert response.headers["X-RateLimit-Requests-Remaining"] == "0"
        reset_s = int(response.headers["X-RateLimit-Requests-Reset"]) / 1000
        assert reset_s == pytest.approx(standin.requests[-1].time + 90, abs=1)
        assert response.headers["Retry-After"] == "5"
    ok = gql(http, "Viewer")
    assert ok.status_code == 200
    assert int(ok.headers["X-RateLimit-Requests-Remaining"]) == 4999


def test_scripted_server_errors_then_recovery(http: httpx.Client, standin: LinearStandIn) -> None:
    standin.fail_next(2, "server_error", status=502)
    assert [gql(http, "Viewer").status_code for _ in range(3)] == [502, 502, 200]


def test_a_lost_response_still_carries_out_the_write(
    http: httpx.Client, standin: LinearStandIn
) -> None:
    standin.fail_next(1, "server_error", after_processing=True)
    response = gql(http, "IssueCreate", create_issue_input(standin, id=str(uuid.uuid4())))
    assert response.status_code == 503
    assert len(standin.store.issues) == 1


def test_the_hourly_limit_is_enforced() -> None:
    limited = make_standin(requests_per_hour=2)
    with serve_in_thread(limited.app) as url, httpx.Client(base_url=url) as client:
        statuses = [gql(client, "Viewer").status_code for _ in range(3)]
    assert statuses == [200, 200, 400]
    assert limited.requests[-1].status == 400


def test_every_request_is_recorded_and_counted_per_operation(
    http: httpx.Client, standin: LinearStandIn
) -> None:
    issue = standin.store.add_issue("Parent")
    gql(http, "Viewer")
    gql(http, "Issue", {"id": issue.id})
    gql(http, "Issue", {"id": issue.identifier})
    gql(http, "Viewer", headers={})
    assert standin.operation_counts() == {"Viewer": 2, "Issue": 2}
    assert standin.count() == 4 and standin.count("Issue") == 2
    recorded = standin.requests_for("Issue")[1]
    assert recorded.variables == {"id": "ENG-1"} and recorded.status == 200
    assert [r.status for r in standin.requests_for("Viewer")] == [200, 401]
    standin.clear_requests()
    assert standin.count() == 0


def test_fields_the_stand_in_does_not_model_are_named(
    linear_schema_path: Path, http: httpx.Client
) -> None:
    response = http.post(
        "/graphql", json={"query": "query Q { viewer { id timezone } }"}, headers=AUTH
    )
    assert "does not implement User.timezone" in response.json()["errors"][0]["message"]


# -- webhooks -------------------------------------------------------------------------------


class Receiver:
    """A stand-in daemon endpoint that keeps what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()

    async def endpoint(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        with self._lock:
            self.received.append((dict(request.headers), body))
        return PlainTextResponse("ok")


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/webhooks/linear", receiver.endpoint, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield receiver, url + "/webhooks/linear"


def test_webhooks_are_signed_over_the_exact_bytes_and_update_the_data(
    standin: LinearStandIn, receiver: tuple[Receiver, str]
) -> None:
    inbox, url = receiver
    secret = "whsec-test"
    issue = standin.store.add_issue("Add greeting", "Write greet()")

    deliveries = [standin.issue_assigned(issue.id), standin.assignment_notification(issue.id)]
    created = standin.agent_session_created(issue.id)
    session_id = created.payload["agentSession"]["id"]
    deliveries += [
        created,
        standin.agent_session_prompted(session_id, "also add docs"),
        standin.agent_session_prompted(session_id, "stop", signal="stop"),
        standin.comment_created(issue.id, "Please use type hints"),
    ]
    for delivery in deliveries:
        assert send_webhook(url, secret, delivery).status_code == 200

    events = [headers["linear-event"] for headers, _ in inbox.received]
    assert events == [
        "Issue",
        "AppUserNotification",
        "AgentSessionEvent",
        "AgentSessionEvent",
        "AgentSessionEvent",
        "Comment",
    ]
    for (headers, body), delivery in zip(inbox.received, deliveries, strict=True):
        assert headers["linear-signature"] == sign(secret.encode(), body)
        assert headers["content-type"] == "application/json"
        assert uuid.UUID(headers["linear-delivery"]).version == 4
        assert json.loads(body) == delivery.payload

    store = standin.store
    assert store.issues[issue.id].delegate_id == store.agent.id
    assigned = deliveries[0].payload
    assert assigned["updatedFrom"] == {"delegateId": None}
    assert (
        assigned["data"]["identifier"] == "ENG-1"
        and assigned["data"]["delegateId"] == store.agent.id
    )
    assert store.sessions[session_id].issue_id == issue.id
    prompts = [a.content["body"] for a in store.activities_of(session_id)]
    assert prompts == ["also add docs", "stop"]
    assert deliveries[4].payload["agentActivity"]["signal"] == "stop"
    assert [c.body for c in store.comments_on(issue.id)] == ["Please use type hints"]
    assert deliveries[5].payload["data"]["userId"] == store.human.id


def test_assignment_as_assignee_is_supported(standin: LinearStandIn) -> None:
    issue = standin.store.add_issue("x")
    delivery = standin.issue_assigned(issue.id, field="assigneeId")
    assert delivery.payload["updatedFrom"] == {"assigneeId": None}
    assert standin.store.issues[issue.id].assignee_id == standin.store.agent.id


def test_client_env_points_a_daemon_at_the_stand_in(
    standin: LinearStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_worker.settings import Settings

    for name, value in standin.client_env("http://127.0.0.1:9/").items():
        monkeypatch.setenv(name, value)
    linear = Settings().linear
    assert linear.api_url == "http://127.0.0.1:9/graphql"
    assert linear.api_key is not None and linear.api_key.get_secret_value() == DEFAULT_API_KEY
    assert linear.agent_user_id == standin.store.agent.id
