"""The Messages API stand-in rejects what the real API would, and answers as scripted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from edge_worker.sandbox.anthropic import (
    AnthropicStandIn,
    ErrorAnswer,
    ToolAnswer,
    request_problem,
    serve_anthropic,
)

TOOL = {"name": "submit_plan", "input_schema": {"type": "object"}}


def body(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "plan this"}],
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": "submit_plan"},
    }
    value.update(overrides)
    return value


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model": None}, "model"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "alternate"),
        ({"tools": [{"name": "submit_plan", "input_schema": {"type": "array"}}]}, "input_schema"),
        ({"tool_choice": {"type": "tool", "name": "other"}}, "not one of the declared tools"),
        ({"tool_choice": {"type": "force"}}, "tool_choice.type"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "text", "text": "y"}]},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}],
                    },
                ]
            },
            "no tool_use with id 'toolu_1'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y"},
                ]
            },
            "last message must be from the user",
        ),
    ],
)
def test_malformed_requests_are_named(overrides: dict[str, Any], expected: str) -> None:
    problem = request_problem(body(**overrides))
    assert problem is not None
    assert expected in problem


def test_a_well_formed_re_ask_is_accepted() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "submit_plan", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "e"}
            ],
        },
    ]
    assert request_problem(body(messages=messages)) is None


@pytest.fixture
def stand_in() -> AnthropicStandIn:
    return AnthropicStandIn(api_key="k")


@pytest.fixture
def url(stand_in: AnthropicStandIn) -> Iterator[str]:
    with serve_anthropic(stand_in) as base_url:
        yield base_url + "/v1/messages"


def headers(key: str = "k", version: str = "2023-06-01") -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": version}


def test_answers_follow_the_script_then_the_default(stand_in: AnthropicStandIn, url: str) -> None:
    stand_in.script(ErrorAnswer(429, retry_after="3"), ToolAnswer({"a": 1}))
    with httpx.Client() as client:
        limited = client.post(url, headers=headers(), json=body())
        called = client.post(url, headers=headers(), json=body())
        exhausted = client.post(url, headers=headers(), json=body())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    message = called.json()
    assert message["content"][0]["type"] == "tool_use"
    assert message["content"][0]["name"] == "submit_plan"
    assert message["content"][0]["input"] == {"a": 1}
    assert message["stop_reason"] == "tool_use"
    assert set(message["usage"]) >= {"input_tokens", "output_tokens", "cache_read_input_tokens"}
    assert exhausted.status_code == 400
    assert "no scripted answer left" in exhausted.json()["error"]["message"]
    assert [r.status for r in stand_in.requests] == [429, 200, 400]


def test_auth_and_version_are_checked(stand_in: AnthropicStandIn, url: str) -> None:
    stand_in.default = ToolAnswer({})
    with httpx.Client() as client:
        assert client.post(url, headers=headers(key="bad"), json=body()).status_code == 401
        assert client.post(url, headers=headers(version="2020-01-01"), json=body()).status_code == (
            400
        )
        assert client.post(url, headers=headers(), json=body()).status_code == 200


def sse_events(text: str) -> list[dict[str, Any]]:
    """The ``data:`` payloads of a server-sent event stream, checked against their names."""
    events = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return events


def test_a_streamed_answer_comes_as_server_sent_events(
    stand_in: AnthropicStandIn, url: str
) -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}
    stand_in.script(ToolAnswer({"command": "ls"}, name="Bash", usage=usage))
    with httpx.Client() as client:
        answer = client.post(url, headers=headers(), json=body(stream=True))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.text)
    assert [event["type"] for event in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1]["content_block"]["name"] == "Bash"
    assert json.loads(events[2]["delta"]["partial_json"]) == {"command": "ls"}
    assert events[4]["usage"] == usage and events[4]["delta"]["stop_reason"] == "tool_use"


def test_other_paths_are_not_found_and_recorded(stand_in: AnthropicStandIn, url: str) -> None:
    with httpx.Client() as client:
        missing = client.get(url.replace("/v1/messages", "/v1/models"), headers=headers())
    assert missing.status_code == 404
    assert [(r.path, r.status) for r in stand_in.requests] == [("/v1/models", 404)]
