"""The Responses API stand-in: checks the key, streams scripted answers as server-sent
events with fixed usage, and tallies what it served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from edge_worker.sandbox.openai_responses import (
    DEFAULT_USAGE,
    Message,
    ResponsesStandIn,
    ShellCall,
    serve_responses,
)

KEY = "sk-test"


@pytest.fixture
def stand_in() -> ResponsesStandIn:
    return ResponsesStandIn(api_key=KEY)


@pytest.fixture
def url(stand_in: ResponsesStandIn) -> Iterator[str]:
    with serve_responses(stand_in) as base_url:
        yield base_url + "/responses"


def request(tools: list[str]) -> dict[str, Any]:
    return {
        "model": "gpt-5-codex",
        "input": [{"type": "message", "role": "user", "content": "go"}],
        "tools": [{"type": "function", "name": name} for name in tools],
        "stream": True,
    }


def events_of(answer: httpx.Response) -> list[dict[str, Any]]:
    events = []
    for block in answer.text.strip().split("\n\n"):
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return events


def post(url: str, body: dict[str, Any], key: str = KEY) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("exec_command", {"cmd": "ls"}),
        ("shell_command", {"command": "ls"}),
        ("shell", {"command": ["bash", "-lc", "ls"]}),
    ],
)
def test_a_shell_call_uses_the_shell_tool_the_request_declares(
    stand_in: ResponsesStandIn, url: str, tool: str, arguments: dict[str, Any]
) -> None:
    stand_in.script(ShellCall("ls"))
    answer = post(url, request(["view_image", tool]))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = events_of(answer)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    item = events[2]["item"]
    assert (item["type"], item["name"]) == ("function_call", tool)
    assert json.loads(item["arguments"]) == arguments


def test_usage_is_fixed_per_answer_and_tallied(stand_in: ResponsesStandIn, url: str) -> None:
    own = {"input_tokens": 7, "cached_input_tokens": 3, "output_tokens": 2}
    stand_in.script(Message("hello", usage=own), Message("again"))
    first = events_of(post(url, request([])))
    second = events_of(post(url, request([])))
    assert first[2]["delta"] == "hello"
    assert first[-1]["response"]["usage"]["input_tokens"] == 7
    assert first[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 3
    usage = second[-1]["response"]["usage"]
    assert (
        usage["output_tokens_details"]["reasoning_tokens"]
        == (DEFAULT_USAGE["reasoning_output_tokens"])
    )
    assert (
        usage["input_tokens_details"]["cache_write_tokens"]
        == (DEFAULT_USAGE["cache_write_input_tokens"])
    )
    served = stand_in.served
    assert served.responses == 2
    assert served.input_tokens == 7 + DEFAULT_USAGE["input_tokens"]
    assert served.output_tokens == 2 + DEFAULT_USAGE["output_tokens"]


def test_a_wrong_key_an_empty_script_and_other_paths_are_refused(
    stand_in: ResponsesStandIn, url: str
) -> None:
    stand_in.script(ShellCall("ls"))
    assert post(url, request(["exec_command"]), key="wrong").status_code == 401
    assert post(url, request([])).status_code == 400  # a shell call needs a shell tool
    assert post(url, request([])).status_code == 400  # nothing left to answer
    assert httpx.get(url.replace("/responses", "/models"), timeout=10).status_code == 404
    assert [r.status for r in stand_in.requests] == [401, 400, 400, 404]
    assert stand_in.served.responses == 0  # a refused answer is not counted as served
