"""The Codegen stand-in speaks Codegen's API as ``shared/codegen/openapi3.json`` describes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from edge_worker.executors.base import VerificationCommand
from edge_worker.sandbox.codegen import CodegenStandIn, RunScript, VerificationScript
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.verification.remote import build_verification_prompt, load_verifier_template
from tests.support.codegen import (
    ORG_ID,
    REPO_ROOT,
    TOKEN,
    FakeClock,
    codegen_settings,
    component,
    load_spec,
    make_executor,
    make_task,
    request_schema,
    response_schema,
    schema_errors,
)

pytestmark = pytest.mark.timeout(60)

RUN = "/v1/organizations/{org_id}/agent/run"
GET = "/v1/organizations/{org_id}/agent/run/{agent_run_id}"
LIST = "/v1/organizations/{org_id}/agent/runs"
RESUME = "/v1/organizations/{org_id}/agent/run/resume"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def spec(codegen_openapi_path: Path) -> dict[str, Any]:
    return load_spec(codegen_openapi_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stand_in(clock: FakeClock) -> CodegenStandIn:
    return CodegenStandIn(org_id=ORG_ID, api_token=TOKEN, clock=clock)


@pytest.fixture
def base_url(stand_in: CodegenStandIn) -> Iterator[str]:
    with serve_in_thread(stand_in.app) as url:
        yield url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url + f"/v1/organizations/{ORG_ID}", headers=AUTH) as client:
        yield client


def conforms(spec: dict[str, Any], value: Any, schema: dict[str, Any]) -> None:
    errors = schema_errors(value, schema, spec)
    assert errors == [], errors


def test_the_stand_in_serves_the_documented_paths(
    spec: dict[str, Any], stand_in: CodegenStandIn
) -> None:
    served = {
        (method, route.path)
        for route in stand_in.app.routes
        if isinstance(route, Route) and route.path.startswith("/v1/")
        for method in route.methods or set()
    }
    for path, method in [(RUN, "POST"), (GET, "GET"), (LIST, "GET"), (RESUME, "POST")]:
        assert method.lower() in spec["paths"][path]
        assert (method, path) in served


def test_create_get_list_resume_match_the_schemas(
    spec: dict[str, Any], http: httpx.Client, stand_in: CodegenStandIn
) -> None:
    stand_in.default_script = RunScript(statuses=["ACTIVE", "COMPLETE"])
    body = {"prompt": "do it", "repo_id": 3, "metadata": {"subtask_key": "api", "attempt": 1}}
    conforms(spec, body, request_schema(spec, RUN, "POST"))

    created = http.post("/agent/run", json=body)
    assert created.status_code == 200
    conforms(spec, created.json(), response_schema(spec, RUN, "POST", 200))
    run_id = created.json()["id"]

    fetched = http.get(f"/agent/run/{run_id}")
    conforms(spec, fetched.json(), response_schema(spec, GET, "GET", 200))
    assert fetched.json()["github_pull_requests"]  # finished: the PR entry is there
    conforms(
        spec,
        fetched.json()["github_pull_requests"][0],
        component(spec, "GithubPullRequestResponse"),
    )

    listed = http.get("/agent/runs", params={"skip": 0, "limit": 10})
    conforms(spec, listed.json(), response_schema(spec, LIST, "GET", 200))

    resume_body = {"agent_run_id": run_id, "prompt": "more"}
    conforms(spec, resume_body, request_schema(spec, RESUME, "POST"))
    resumed = http.post("/agent/run/resume", json=resume_body)
    conforms(spec, resumed.json(), response_schema(spec, RESUME, "POST", 200))


async def test_what_the_executor_sends_matches_the_request_schemas(
    spec: dict[str, Any], base_url: str, clock: FakeClock, stand_in: CodegenStandIn
) -> None:
    executor = make_executor(codegen_settings(base_url), clock)
    task = make_task("api", commands=["pytest -q"])
    try:
        handle = await executor.start(task)
        await executor.follow(handle)
        await executor.resume(handle, task, "please fix")
        await executor.verify(handle, task.verification)
    finally:
        await executor.aclose()

    [create] = stand_in.records("create")
    conforms(spec, create.body, request_schema(spec, RUN, "POST"))
    resumes = stand_in.records("resume")
    assert len(resumes) == 2
    for resume in resumes:
        conforms(spec, resume.body, request_schema(spec, RESUME, "POST"))
    list_parameters = {p["name"]: p for p in spec["paths"][LIST]["get"]["parameters"]}
    for listing in stand_in.records("list"):
        for name, value in listing.query.items():
            conforms(spec, int(value), list_parameters[name]["schema"])


@pytest.mark.parametrize(
    ("status", "path", "method", "schema"),
    [
        (429, RUN, "POST", "APIRateLimitErrorResponse"),
        (402, RUN, "POST", "AgentRunLimitReachedErrorResponse"),
        (429, GET, "GET", "APIRateLimitErrorResponse"),
        (429, LIST, "GET", "APIRateLimitErrorResponse"),
    ],
)
def test_scripted_errors_match_the_schemas(
    spec: dict[str, Any],
    http: httpx.Client,
    stand_in: CodegenStandIn,
    status: int,
    path: str,
    method: str,
    schema: str,
) -> None:
    endpoint = {RUN: "create", GET: "get", LIST: "list"}[path]
    stand_in.fail_next(endpoint, status, retry_after=9 if status == 429 else None)  # type: ignore[arg-type]
    url = {RUN: "/agent/run", GET: "/agent/run/1", LIST: "/agent/runs"}[path]
    response = http.request(method, url, json={"prompt": "x"} if method == "POST" else None)
    assert response.status_code == status
    assert str(status) in spec["paths"][path][method.lower()]["responses"]
    conforms(spec, response.json(), response_schema(spec, path, method, status))
    if status == 429:
        assert response.headers["Retry-After"] == "9"


def test_not_found_forbidden_and_invalid_match_the_schemas(
    spec: dict[str, Any], http: httpx.Client, base_url: str
) -> None:
    missing = http.get("/agent/run/424242")
    assert missing.status_code == 404
    conforms(spec, missing.json(), response_schema(spec, GET, "GET", 404))

    other_org = httpx.get(f"{base_url}/v1/organizations/{ORG_ID + 1}/agent/runs", headers=AUTH)
    assert other_org.status_code == 403
    conforms(spec, other_org.json(), response_schema(spec, LIST, "GET", 403))

    invalid = http.post("/agent/run", json={"repo_id": "three"})
    assert invalid.status_code == 422
    conforms(spec, invalid.json(), response_schema(spec, RUN, "POST", 422))

    too_many = http.get("/agent/runs", params={"limit": 101})
    assert too_many.status_code == 422
    conforms(spec, too_many.json(), response_schema(spec, LIST, "GET", 422))


def test_the_schema_checker_rejects_wrong_shapes(spec: dict[str, Any]) -> None:
    run_schema = response_schema(spec, GET, "GET", 200)
    assert schema_errors({"organization_id": 1}, run_schema, spec)  # id missing
    assert schema_errors({"id": "1", "organization_id": 1}, run_schema, spec)
    assert schema_errors({"id": True, "organization_id": 1}, run_schema, spec)
    assert schema_errors(
        {"id": 1, "organization_id": 1, "github_pull_requests": [{"id": 1}]}, run_schema, spec
    )  # a PR without created_at
    assert schema_errors(
        {"id": 1, "organization_id": 1, "source_type": "CARRIER_PIGEON"}, run_schema, spec
    )
    assert schema_errors({"prompt": 3}, request_schema(spec, RUN, "POST"), spec)


def test_bearer_token_is_required(base_url: str, stand_in: CodegenStandIn) -> None:
    url = f"{base_url}/v1/organizations/{ORG_ID}/agent/runs"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers=AUTH).status_code == 200
    assert [c.status for c in stand_in.records("list")] == [401, 401, 200]


def test_runs_progress_through_mixed_case_statuses_over_polls(
    http: httpx.Client, stand_in: CodegenStandIn
) -> None:
    stand_in.default_script = RunScript(
        statuses=["ACTIVE", "running", "Running", "COMPLETE"], result="done", pull_requests=2
    )
    run = http.post("/agent/run", json={"prompt": "x"}).json()
    assert (run["status"], run["result"], run["github_pull_requests"]) == ("ACTIVE", None, [])
    seen = [http.get(f"/agent/run/{run['id']}").json() for _ in range(4)]
    assert [s["status"] for s in seen] == ["running", "Running", "COMPLETE", "COMPLETE"]
    assert seen[2]["result"] == "done"
    assert len(seen[2]["github_pull_requests"]) == 2
    assert seen[3]["github_pull_requests"] == seen[2]["github_pull_requests"]


def test_list_pages_newest_first_and_counts_as_a_poll(
    http: httpx.Client, stand_in: CodegenStandIn
) -> None:
    ids = [http.post("/agent/run", json={"prompt": str(n)}).json()["id"] for n in range(5)]
    first = http.get("/agent/runs", params={"skip": 0, "limit": 2}).json()
    last = http.get("/agent/runs", params={"skip": 4, "limit": 2}).json()
    assert [r["id"] for r in first["items"]] == ids[::-1][:2]
    assert [r["id"] for r in last["items"]] == [ids[0]]
    assert (first["total"], first["page"], first["size"], first["pages"]) == (5, 1, 2, 3)
    assert last["page"] == 3
    assert first["items"][0]["status"] == "running"  # listed once: one poll further


def test_time_based_runs_finish_only_after_their_duration(
    http: httpx.Client, stand_in: CodegenStandIn, clock: FakeClock
) -> None:
    stand_in.default_script = RunScript(statuses=["ACTIVE", "COMPLETE"], seconds_to_finish=600)
    run_id = http.post("/agent/run", json={"prompt": "x"}).json()["id"]
    assert http.get(f"/agent/run/{run_id}").json()["status"] == "ACTIVE"
    clock.now += 600
    assert http.get(f"/agent/run/{run_id}").json()["status"] == "COMPLETE"


def test_scripted_failures_per_run(http: httpx.Client, stand_in: CodegenStandIn) -> None:
    stand_in.script("bad", RunScript(statuses=["ACTIVE", "ERROR"], result="boom"))
    good = http.post("/agent/run", json={"prompt": "x", "metadata": {"subtask_key": "good"}})
    bad = http.post("/agent/run", json={"prompt": "x", "metadata": {"subtask_key": "bad"}})
    assert http.get(f"/agent/run/{good.json()['id']}").json()["status"] == "running"
    failed = http.get(f"/agent/run/{bad.json()['id']}").json()
    assert (failed["status"], failed["result"]) == ("ERROR", "boom")


def test_limits_are_enforced_with_retry_after(
    http: httpx.Client, stand_in: CodegenStandIn, clock: FakeClock
) -> None:
    statuses = [http.post("/agent/run", json={"prompt": "x"}).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    limited = http.post("/agent/run", json={"prompt": "x"})
    assert limited.headers["Retry-After"] == "60"
    clock.now += 60
    assert http.post("/agent/run", json={"prompt": "x"}).status_code == 200


def test_quota_exhausted_makes_creations_402(http: httpx.Client, stand_in: CodegenStandIn) -> None:
    stand_in.quota_exhausted = True
    assert http.post("/agent/run", json={"prompt": "x"}).status_code == 402
    assert stand_in.runs == {}


@pytest.mark.parametrize("kind", ["valid", "partial", "malformed", "missing"])
def test_verification_resumes_are_answered_as_scripted(
    http: httpx.Client, stand_in: CodegenStandIn, kind: str
) -> None:
    stand_in.default_script = RunScript(statuses=["ACTIVE", "COMPLETE"])
    stand_in.script_verification("api", VerificationScript(kind))  # type: ignore[arg-type]
    run_id = http.post(
        "/agent/run", json={"prompt": "x", "metadata": {"subtask_key": "api"}}
    ).json()["id"]
    commands = [VerificationCommand(command="pytest -q"), VerificationCommand(command="make lint")]
    prompt = build_verification_prompt(load_verifier_template(REPO_ROOT / "prompts"), commands)
    resumed = http.post("/agent/run/resume", json={"agent_run_id": run_id, "prompt": prompt})
    assert resumed.json()["status"] == "ACTIVE"
    answer = http.get(f"/agent/run/{run_id}").json()["result"]
    if kind == "valid":
        assert '"pytest -q"' in answer and '"make lint"' in answer
    elif kind == "partial":
        assert '"pytest -q"' in answer and '"make lint"' not in answer
    elif kind == "malformed":
        assert '"checks"' in answer and ",,]" in answer
    else:
        assert "{" not in answer


def test_the_call_record_is_served_for_other_processes(
    base_url: str, http: httpx.Client, clock: FakeClock
) -> None:
    http.post("/agent/run", json={"prompt": "x"})
    clock.now += 5
    http.get("/agent/runs")
    calls = httpx.get(f"{base_url}/_sandbox/calls").json()
    assert [(c["endpoint"], c["status"], c["at"]) for c in calls] == [
        ("create", 200, 1000.0),
        ("list", 200, 1005.0),
    ]
