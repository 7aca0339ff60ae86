"""The sans-I/O parser of the Gemini CLI's ``stream-json`` output."""

from __future__ import annotations

import json
from typing import Any

from edge_worker.executors.base import RunStatus, Usage
from edge_worker.executors.gemini_stream import GeminiStreamParser, gemini_run_result
from edge_worker.executors.stream_types import Ending, Progress


def line(**event: Any) -> str:
    return json.dumps(event)


def test_deltas_join_into_one_message_and_the_last_message_is_the_summary() -> None:
    parser = GeminiStreamParser()
    assert parser.feed(line(type="init", session_id="s-1", model="gemini-2.5-pro")) == []
    parser.feed(line(type="message", role="user", content="do it"))
    assert parser.feed(line(type="message", role="assistant", content="Look", delta=True)) == []
    parser.feed(line(type="message", role="assistant", content="ing.", delta=True))
    progress = parser.feed(
        line(
            type="tool_use",
            tool_name="run_shell_command",
            tool_id="t1",
            parameters={"command": "make test"},
        )
    )
    assert progress == [Progress("thought", "Looking."), Progress("action", "$ make test")]
    parser.feed(line(type="message", role="assistant", content="All done.", delta=True))
    parser.feed(line(type="result", status="success", stats={}))
    assert parser.summary == "All done."
    assert parser.session_id == "s-1" and parser.model == "gemini-2.5-pro"
    assert parser.finished


def test_usage_is_kept_per_model_and_summed() -> None:
    parser = GeminiStreamParser()
    models = {
        "gemini-2.5-pro": {
            "total_tokens": 1100,
            "input_tokens": 1000,
            "output_tokens": 50,
            "cached": 400,
        },
        "gemini-2.5-flash": {
            "total_tokens": 220,
            "input_tokens": 200,
            "output_tokens": 20,
            "cached": 0,
        },
    }
    parser.feed(line(type="result", status="success", stats={"models": models, "tool_calls": 2}))
    assert parser.usage_by_model["gemini-2.5-pro"] == Usage(
        input_tokens=1000, cached_input_tokens=400, output_tokens=100, reasoning_output_tokens=50
    )
    assert parser.usage.input_tokens == 1200 and parser.usage.output_tokens == 120
    assert parser.tool_calls == 2


def test_warnings_and_junk_do_not_fail_a_successful_run() -> None:
    parser = GeminiStreamParser()
    parser.feed("not json at all")
    parser.feed(line(type="error", severity="warning", message="loop detected"))
    parser.feed(line(type="some_future_event", value=1))
    parser.feed(line(type="result", status="success", stats={}))
    result = gemini_run_result(parser, Ending(exit_code=0), model=None, cost_usd=None)
    assert result.status is RunStatus.SUCCEEDED
    assert parser.notices == ["loop detected"] and parser.junk_lines == 1


def test_an_error_result_and_a_silent_exit_are_failures_that_say_why() -> None:
    failed = GeminiStreamParser()
    failed.feed(line(type="result", status="error", error={"type": "Api", "message": "429"}))
    result = gemini_run_result(failed, Ending(exit_code=1), model=None, cost_usd=None)
    assert (result.status, result.error) == (RunStatus.FAILED, "429")

    silent = GeminiStreamParser()
    ending = Ending(exit_code=42, stderr_tail="Unknown argument: --bogus")
    result = gemini_run_result(silent, ending, model=None, cost_usd=None)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and "Unknown argument: --bogus" in result.error

    stopped = gemini_run_result(
        GeminiStreamParser(), Ending(stopped="timed_out"), model=None, cost_usd=None
    )
    assert stopped.status is RunStatus.TIMED_OUT
