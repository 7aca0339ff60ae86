"""The planner over real loopback HTTP (Anthropic stand-in) and a real subprocess (claude CLI)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina.instrumentation

from edge_worker.executors.base import Usage
from edge_worker.orchestration.context import PlanningContext, render_planner_input
from edge_worker.orchestration.plan import PlanError, plan_json_schema
from edge_worker.orchestration.planner import (
    Planner,
    PlannerCall,
    PlannerUnavailable,
    PlanningFailed,
    StaticBackend,
    load_orchestrator_prompt,
)
from edge_worker.orchestration.planner_anthropic import (
    AnthropicBackend,
    RetryPolicy,
    TransientAPIError,
    parse_retry_after,
    retry_backoff,
)
from edge_worker.orchestration.planner_claude import ClaudeCodeBackend
from edge_worker.orchestration.wiring import build_planner
from edge_worker.sandbox.anthropic import (
    DEFAULT_USAGE,
    AnthropicStandIn,
    ErrorAnswer,
    TextAnswer,
    ToolAnswer,
    serve_anthropic,
)
from edge_worker.sandbox.demo_plan import DEMO_ISSUE_DESCRIPTION, DEMO_ISSUE_TITLE, demo_plan
from edge_worker.settings import PROJECT_ROOT, ConfigError, Settings
from tests.support.planning import recorded_calls, result, write_fake_claude

API_KEY = "sk-ant-test-123"
MODEL = "claude-sonnet-4-5"
PROMPT = load_orchestrator_prompt(PROJECT_ROOT / "prompts", max_subtasks=8, max_depth=4)
FAST = RetryPolicy(attempts=3, timeout_seconds=20, wait_initial=0, wait_max=0, wait_jitter=0)


def pricer(model: str, usage: Usage) -> float | None:
    """Sonnet list prices: $3 in, $0.30 cached, $15 out per million tokens."""
    if model != MODEL:
        return None
    return (
        usage.input_tokens * 3.0 + usage.cached_input_tokens * 0.30 + usage.output_tokens * 15.0
    ) / 1e6


DEFAULT_COST = (2400 * 3.0 + 1200 * 0.30 + 900 * 15.0) / 1e6


def context(repository_path: str | None = None) -> PlanningContext:
    return PlanningContext(
        issue_id="issue-uuid-1",
        issue_identifier="ENG-42",
        title=DEMO_ISSUE_TITLE,
        description=DEMO_ISSUE_DESCRIPTION,
        labels=["feature"],
        team_key="ENG",
        repository_id="demo",
        repository_path=repository_path,
        base_branch="main",
    )


def broken(plan: dict[str, Any], mutate: str) -> dict[str, Any]:
    """A copy of ``plan`` broken in one named way."""
    bad = copy.deepcopy(plan)
    if mutate == "shape":
        bad["subtasks"][0]["role"] = "tester"
    elif mutate == "cycle":
        bad["subtasks"][0]["depends_on"] = ["review"]
    elif mutate == "no-verification":
        bad["subtasks"][1]["verification"] = []
    return bad


@pytest.fixture
def stand_in() -> AnthropicStandIn:
    return AnthropicStandIn(api_key=API_KEY)


@pytest.fixture
def base_url(stand_in: AnthropicStandIn) -> Iterator[str]:
    with serve_anthropic(stand_in) as url:
        yield url


def anthropic_planner(
    base_url: str, *, max_subtasks: int = 8, key: str = API_KEY, with_pricer: bool = True
) -> Planner:
    backend = AnthropicBackend(
        base_url=base_url,
        api_key=key,
        model=MODEL,
        max_tokens=4096,
        timeout_seconds=10,
        pricer=pricer if with_pricer else None,
        retry=FAST,
    )
    return Planner(backend=backend, system_prompt=PROMPT, max_subtasks=max_subtasks)


# --- anthropic backend --------------------------------------------------------------------


async def test_a_good_plan_in_one_call_with_usage_and_cost(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(ToolAnswer(demo_plan()))
    outcome = await anthropic_planner(base_url).plan(context())

    assert [s.key for s in outcome.plan.subtasks] == [s["key"] for s in demo_plan()["subtasks"]]
    assert outcome.attempts == 1
    assert outcome.model == MODEL
    assert outcome.usage == Usage(input_tokens=2400, cached_input_tokens=1200, output_tokens=900)
    assert outcome.cost_usd == pytest.approx(DEFAULT_COST)
    assert [c.rejected_because for c in outcome.calls] == [None]

    (request,) = stand_in.requests
    assert request.status == 200
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = request.body
    assert body["model"] == MODEL
    assert body["max_tokens"] == 4096
    assert body["system"] == [
        {"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}
    ]
    assert body["tools"] == [
        {
            "name": "submit_plan",
            "description": body["tools"][0]["description"],
            "input_schema": plan_json_schema(),
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "submit_plan"}
    assert body["messages"] == [{"role": "user", "content": render_planner_input(context())}]


async def test_the_prompt_states_its_limits() -> None:
    assert "Never plan more than 8 sub-tasks" in PROMPT
    assert "{{" not in PROMPT
    assert "untrusted-data" in PROMPT
    assert '"verification"' in PROMPT


async def test_a_malformed_plan_is_re_asked_once_with_the_error(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(ToolAnswer(broken(demo_plan(), "shape")), ToolAnswer(demo_plan()))
    outcome = await anthropic_planner(base_url).plan(context())

    assert outcome.attempts == 2
    assert len(outcome.plan.subtasks) == 5
    second = stand_in.requests[1]
    first_call = second.body["messages"][1]
    assert first_call["role"] == "assistant"
    assert first_call["content"][0]["type"] == "tool_use"
    assert first_call["content"][0]["input"] == broken(demo_plan(), "shape")
    (tool_result,) = second.body["messages"][2]["content"]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == first_call["content"][0]["id"]
    assert tool_result["is_error"] is True
    assert 'subtasks[0] ("add-function").role' in tool_result["content"]
    assert "tester" in tool_result["content"]
    assert outcome.calls[0].rejected_because is not None
    assert "tester" in outcome.calls[0].rejected_because
    assert outcome.calls[1].rejected_because is None
    assert outcome.usage.output_tokens == 2 * DEFAULT_USAGE["output_tokens"]
    assert outcome.cost_usd == pytest.approx(2 * DEFAULT_COST)


async def test_malformed_twice_raises_plan_error_with_both_calls(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(ToolAnswer({"summary": "x"}), ToolAnswer(["not", "an", "object"]))
    stand_in.default = ToolAnswer(demo_plan())  # a third ask would succeed: it must not happen
    with pytest.raises(PlanError) as caught:
        await anthropic_planner(base_url).plan(context())

    assert isinstance(caught.value, PlanningFailed)
    assert "must be a JSON object" in str(caught.value)
    assert "not an array" in str(caught.value)
    assert len(stand_in.requests) == 2
    assert [c.attempt for c in caught.value.calls] == [1, 2]
    assert all(c.cost_usd == pytest.approx(DEFAULT_COST) for c in caught.value.calls)


async def test_a_cyclic_plan_is_named_and_fails_when_repeated(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    cyclic = broken(demo_plan(), "cycle")
    stand_in.script(ToolAnswer(cyclic), ToolAnswer(cyclic))
    with pytest.raises(PlanningFailed) as caught:
        await anthropic_planner(base_url).plan(context())
    assert "cycle" in str(caught.value)
    assert '"add-function" depends on "review"' in str(caught.value)
    reask = stand_in.requests[1].body["messages"][2]["content"][0]["content"]
    assert '"add-function" depends on "review"' in reask


async def test_too_many_subtasks_is_rejected_with_the_limit(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(ToolAnswer(demo_plan()), ToolAnswer(demo_plan()))
    with pytest.raises(PlanningFailed, match="the plan has 5 sub-tasks; at most 3 are allowed"):
        await anthropic_planner(base_url, max_subtasks=3).plan(context())
    assert len(stand_in.requests) == 2


async def test_a_code_task_without_verification_is_re_asked(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(ToolAnswer(broken(demo_plan(), "no-verification")), ToolAnswer(demo_plan()))
    outcome = await anthropic_planner(base_url).plan(context())
    assert outcome.attempts == 2
    reask = stand_in.requests[1].body["messages"][2]["content"][0]["content"]
    assert 'sub-task "multiply-function" is a builder task without verification' in reask


async def test_a_text_answer_is_re_asked_as_a_user_message(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(TextAnswer("Here is my plan: ..."), ToolAnswer(demo_plan()))
    outcome = await anthropic_planner(base_url).plan(context())
    assert outcome.attempts == 2
    messages = stand_in.requests[1].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Here is my plan: ..."}],
    }
    assert "you did not call the submit_plan tool" in messages[2]["content"]


async def test_a_plan_cut_off_at_max_tokens_is_re_asked(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(ToolAnswer(demo_plan(), stop_reason="max_tokens"), ToolAnswer(demo_plan()))
    outcome = await anthropic_planner(base_url).plan(context())
    assert outcome.attempts == 2
    assert "cut off" in (outcome.calls[0].rejected_because or "")


async def test_429_and_overloaded_are_retried_then_succeed(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.script(
        ErrorAnswer(429, retry_after="0"),
        ErrorAnswer(529),
        ToolAnswer(demo_plan()),
    )
    outcome = await anthropic_planner(base_url).plan(context())
    assert outcome.attempts == 1  # retries are transport-level, not a re-ask
    assert [r.status for r in stand_in.requests] == [429, 529, 200]
    assert stand_in.requests[0].body == stand_in.requests[2].body
    assert outcome.cost_usd == pytest.approx(DEFAULT_COST)  # errors are not billed


async def test_the_wait_is_what_retry_after_asks(stand_in: AnthropicStandIn, base_url: str) -> None:
    waits: list[float] = []
    previous = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([lambda details: waits.append(details.wait_for)])
    try:
        stand_in.script(ErrorAnswer(429, retry_after="0.05"), ToolAnswer(demo_plan()))
        await anthropic_planner(base_url).plan(context())
    finally:
        stamina.instrumentation.set_on_retry_hooks(previous)
    assert waits == [pytest.approx(0.05)]


async def test_retries_are_bounded_and_then_the_planner_is_unavailable(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.default = ErrorAnswer(529, message="Overloaded")
    with pytest.raises(PlannerUnavailable) as caught:
        await anthropic_planner(base_url).plan(context())
    assert len(stand_in.requests) == FAST.attempts
    assert "529 overloaded_error: Overloaded" in caught.value.reason
    assert f"after {FAST.attempts} attempts" in caught.value.reason


async def test_a_wrong_key_is_not_retried_and_never_appears_in_the_error(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    stand_in.default = ToolAnswer(demo_plan())
    with pytest.raises(PlannerUnavailable) as caught:
        await anthropic_planner(base_url, key="sk-ant-wrong-999").plan(context())
    assert len(stand_in.requests) == 1
    assert "401 authentication_error" in caught.value.reason
    assert "sk-ant-wrong-999" not in caught.value.reason


async def test_an_unreachable_api_is_unavailable_after_retries() -> None:
    with serve_anthropic(AnthropicStandIn()) as url:
        pass  # the server is gone: its port now refuses connections
    with pytest.raises(PlannerUnavailable, match="could not be reached after 3 attempts"):
        await anthropic_planner(url).plan(context())


async def test_an_unpriced_model_reports_no_cost(stand_in: AnthropicStandIn, base_url: str) -> None:
    stand_in.script(ToolAnswer(demo_plan()))
    outcome = await anthropic_planner(base_url, with_pricer=False).plan(context())
    assert outcome.cost_usd is None
    assert outcome.usage.input_tokens == 2400


async def test_the_stand_in_refuses_a_malformed_request(base_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/v1/messages",
            headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
            json={
                "model": MODEL,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [],
                "tool_choice": {"type": "tool", "name": "submit_plan"},
            },
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "submit_plan" in response.json()["error"]["message"]


def test_retry_backoff_follows_retry_after() -> None:
    assert retry_backoff(TransientAPIError(429, "rate_limit_error", 2.5)) == 2.5
    assert retry_backoff(TransientAPIError(429, "rate_limit_error", 3600)) == 60.0
    assert retry_backoff(TransientAPIError(529, "overloaded_error", None)) is True
    assert retry_backoff(httpx.ConnectError("refused")) is True
    assert retry_backoff(ValueError("bug")) is False


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# --- claude-code backend ------------------------------------------------------------------


def claude_planner(tmp_path: Path, answers: list[dict[str, Any]], **options: Any) -> Planner:
    script = write_fake_claude(tmp_path / "fake", answers)
    backend = ClaudeCodeBackend(
        binary=str(script),
        model="sonnet",
        timeout_seconds=options.pop("timeout_seconds", 20),
        kill_grace_seconds=options.pop("kill_grace_seconds", 1),
        pass_env=["FAKE_PLANNER_DIR"],
    )
    return Planner(backend=backend, system_prompt=PROMPT, max_subtasks=8)


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAKE_PLANNER_DIR", str(tmp_path / "fake"))
    monkeypatch.setenv("EDGE_WORKER_ANTHROPIC__API_KEY", "sk-must-not-leak")
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo


async def test_claude_code_plans_read_only_in_the_repository(
    tmp_path: Path, fake_env: Path
) -> None:
    planner = claude_planner(tmp_path, [result(demo_plan())])
    outcome = await planner.plan(context(str(fake_env)))

    assert len(outcome.plan.subtasks) == 5
    assert outcome.cost_usd == pytest.approx(0.0421)
    assert outcome.usage == Usage(input_tokens=3012, cached_input_tokens=9000, output_tokens=700)
    assert outcome.model == "claude-sonnet-4-5-20250929"
    (call,) = recorded_calls(tmp_path / "fake")
    argv = call["argv"]
    assert argv[0] == "-p"
    assert argv[argv.index("--output-format") + 1] == "json"
    assert json.loads(argv[argv.index("--json-schema") + 1]) == plan_json_schema()
    assert argv[argv.index("--permission-mode") + 1] == "plan"
    assert "Edit" in argv[argv.index("--disallowedTools") + 1]
    assert argv[argv.index("--append-system-prompt") + 1] == PROMPT
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert call["stdin"] == render_planner_input(context(str(fake_env)))
    assert os.path.samefile(call["cwd"], fake_env)
    assert "EDGE_WORKER_ANTHROPIC__API_KEY" not in call["env"]
    assert call["env"]["FAKE_PLANNER_DIR"] == str(tmp_path / "fake")


async def test_claude_code_re_asks_in_the_same_session(tmp_path: Path, fake_env: Path) -> None:
    planner = claude_planner(
        tmp_path,
        [result(broken(demo_plan(), "cycle"), session_id="sess-42"), result(demo_plan())],
    )
    outcome = await planner.plan(context(str(fake_env)))
    assert outcome.attempts == 2
    assert outcome.cost_usd == pytest.approx(2 * 0.0421)
    first, second = recorded_calls(tmp_path / "fake")
    assert "--resume" not in first["argv"]
    assert second["argv"][second["argv"].index("--resume") + 1] == "sess-42"
    assert "Your plan was rejected" in second["stdin"]
    assert '"add-function" depends on "review"' in second["stdin"]


async def test_claude_code_result_text_is_used_without_structured_output(
    tmp_path: Path, fake_env: Path
) -> None:
    text = "```json\n" + json.dumps(demo_plan()) + "\n```"
    outcome = await claude_planner(tmp_path, [result(text=text)]).plan(context(str(fake_env)))
    assert len(outcome.plan.subtasks) == 5


async def test_claude_code_structured_output_retries_exhausted_is_a_rejection(
    tmp_path: Path, fake_env: Path
) -> None:
    exhausted = result(subtype="error_max_structured_output_retries", is_error=True)
    planner = claude_planner(tmp_path, [exhausted, exhausted])
    with pytest.raises(PlanningFailed, match="no plan matching the JSON schema"):
        await planner.plan(context(str(fake_env)))


async def test_claude_code_error_result_is_unavailable(tmp_path: Path, fake_env: Path) -> None:
    failed = result(subtype="error_during_execution", is_error=True, errors=["API Error: 500"])
    with pytest.raises(PlannerUnavailable, match=r"error_during_execution.*API Error: 500"):
        await claude_planner(tmp_path, [failed]).plan(context(str(fake_env)))


async def test_claude_code_crash_is_unavailable_with_stderr(tmp_path: Path, fake_env: Path) -> None:
    with pytest.raises(PlannerUnavailable, match="status 3 without a result: not logged in"):
        await claude_planner(tmp_path, [{"crash": "not logged in"}]).plan(context(str(fake_env)))


async def test_claude_code_that_hangs_is_killed(tmp_path: Path, fake_env: Path) -> None:
    planner = claude_planner(
        tmp_path, [{"hang": True}], timeout_seconds=1.0, kill_grace_seconds=0.2
    )
    with pytest.raises(PlannerUnavailable, match="did not finish planning within 1 s"):
        await planner.plan(context(str(fake_env)))
    (call,) = recorded_calls(tmp_path / "fake")
    with pytest.raises(ProcessLookupError):
        os.kill(call["pid"], 0)


async def test_a_missing_claude_binary_is_unavailable(tmp_path: Path) -> None:
    backend = ClaudeCodeBackend(binary=str(tmp_path / "no-such-claude"))
    planner = Planner(backend=backend, system_prompt=PROMPT, max_subtasks=8)
    with pytest.raises(PlannerUnavailable, match="cannot start"):
        await planner.plan(context())


# --- static backend and configuration ----------------------------------------------------


async def test_static_plan_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(demo_plan()))
    planner = build_planner(Settings(planner="static", planner_static_plan=str(path)))
    outcome = await planner.plan(context())
    assert outcome.model == "static"
    assert outcome.cost_usd == 0.0
    assert len(outcome.plan.subtasks) == 5


async def test_a_bad_static_plan_fails_after_the_single_re_ask() -> None:
    planner = Planner(backend=StaticBackend("{}"), system_prompt=PROMPT, max_subtasks=8)
    with pytest.raises(PlanningFailed) as caught:
        await planner.plan(context())
    assert len(caught.value.calls) == 2


def test_static_plan_file_missing_is_a_config_error(tmp_path: Path) -> None:
    settings = Settings(planner="static", planner_static_plan=str(tmp_path / "none.json"))
    with pytest.raises(ConfigError, match="EDGE_WORKER_PLANNER_STATIC_PLAN"):
        build_planner(settings)
    with pytest.raises(ConfigError, match="EDGE_WORKER_PLANNER_STATIC_PLAN"):
        build_planner(Settings(planner="static"))


def test_anthropic_without_a_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_WORKER_ANTHROPIC__API_KEY", raising=False)
    with pytest.raises(ConfigError, match="EDGE_WORKER_ANTHROPIC__API_KEY"):
        build_planner(Settings(planner="anthropic"))


async def test_build_planner_from_settings_talks_to_the_configured_api(
    stand_in: AnthropicStandIn, base_url: str
) -> None:
    settings = Settings(
        planner="anthropic",
        max_subtasks=6,
        anthropic={"base_url": base_url, "api_key": API_KEY, "model": MODEL},
    )
    stand_in.script(ToolAnswer(demo_plan()))
    outcome = await build_planner(settings, pricer=pricer).plan(context())
    assert outcome.cost_usd == pytest.approx(DEFAULT_COST)
    assert "Never plan more than 6 sub-tasks" in stand_in.requests[0].body["system"][0]["text"]


def test_planner_errors_survive_pickling_with_their_calls() -> None:
    call = PlannerCall(attempt=1, backend="anthropic", model=MODEL, cost_usd=0.01)
    failed = pickle.loads(pickle.dumps(PlanningFailed(["a cycle"], [call])))
    assert (failed.problems, failed.calls) == (["a cycle"], [call])
    unavailable = pickle.loads(pickle.dumps(PlannerUnavailable("529", [call])))
    assert (unavailable.reason, unavailable.calls) == ("529", [call])
