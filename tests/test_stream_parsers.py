"""The sans-I/O parsers of Claude Code stream-json and Codex exec --json, on plain lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_worker.executors.base import RunStatus, Usage
from edge_worker.executors.claude_stream import ClaudeStreamParser, claude_run_result
from edge_worker.executors.codex_stream import CodexStreamParser, codex_run_result
from edge_worker.executors.stream_types import Ending, Progress


def line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


INIT = line(
    {
        "type": "system",
        "subtype": "init",
        "cwd": "/w",
        "session_id": "sess-1",
        "tools": ["Bash", "Edit"],
        "mcp_servers": [],
        "model": "claude-sonnet-4-5",
        "permissionMode": "acceptEdits",
        "apiKeySource": "none",
    }
)


def assistant(content: list[dict[str, Any]], message_id: str = "msg_1", **usage: int) -> str:
    return line(
        {
            "type": "assistant",
            "message": {
                "id": message_id,
                "role": "assistant",
                "content": content,
                "usage": usage or {"input_tokens": 10, "output_tokens": 5},
            },
            "parent_tool_use_id": None,
            "session_id": "sess-1",
        }
    )


TOOL_RESULT = line(
    {
        "type": "user",
        "message": {
            "role": "user",
            "content": [{"tool_use_id": "toolu_1", "type": "tool_result", "content": "ok"}],
        },
        "session_id": "sess-1",
    }
)


def result(subtype: str = "success", **fields: Any) -> str:
    event: dict[str, Any] = {
        "type": "result",
        "subtype": subtype,
        "is_error": subtype != "success",
        "duration_ms": 4200,
        "num_turns": 3,
        "session_id": "sess-1",
        "total_cost_usd": 0.0421,
        "usage": {
            "input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 300,
            "output_tokens": 50,
            "server_tool_use": {"web_search_requests": 0},
        },
        "permission_denials": [],
    }
    if subtype == "success":
        event["result"] = "Added hello.txt."
    event.update(fields)
    return line(event)


def feed_all(parser: ClaudeStreamParser | CodexStreamParser, lines: list[str]) -> list[Progress]:
    progress: list[Progress] = []
    for text in lines:
        progress += parser.feed(text)
    return progress


def test_claude_success_with_progress_cost_usage_and_session() -> None:
    parser = ClaudeStreamParser()
    progress = feed_all(
        parser,
        [
            INIT,
            assistant([{"type": "text", "text": "I will add the file."}]),
            assistant(
                [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "Write",
                        "input": {"file_path": "/w/hello.txt", "content": "hello"},
                    }
                ],
                message_id="msg_2",
            ),
            TOOL_RESULT,
            result(),
        ],
    )
    assert progress == [
        Progress("thought", "I will add the file."),
        Progress("action", "Write: /w/hello.txt"),
    ]
    assert parser.session_id == "sess-1"
    assert parser.model == "claude-sonnet-4-5"
    assert parser.tool_results == 1
    run = claude_run_result(parser, Ending(exit_code=0, duration_seconds=4.5))
    assert run.status is RunStatus.SUCCEEDED
    assert run.cost_usd == 0.0421
    assert run.summary == "Added hello.txt."
    assert run.num_turns == 3
    assert run.session_id == "sess-1"
    assert run.model == "claude-sonnet-4-5"
    assert run.usage == Usage(
        input_tokens=420, cached_input_tokens=300, cache_write_input_tokens=20, output_tokens=50
    )
    assert run.error is None


def test_claude_junk_and_unknown_types_are_skipped() -> None:
    parser = ClaudeStreamParser()
    feed_all(
        parser,
        [
            "Welcome to the CLI!",
            INIT,
            "{not json",
            "[1, 2, 3]",
            line({"type": "stream_event", "event": {"type": "content_block_delta"}}),
            line({"type": "system", "subtype": "compact_boundary"}),
            "",
            result(),
        ],
    )
    assert parser.junk_lines == 3
    assert parser.session_id == "sess-1"
    assert claude_run_result(parser, Ending(exit_code=0)).status is RunStatus.SUCCEEDED


def test_claude_over_budget_is_its_own_status() -> None:
    parser = ClaudeStreamParser()
    feed_all(
        parser,
        [INIT, result("error_max_budget_usd", errors=["Reached maximum budget ($1)"])],
    )
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.OVER_BUDGET
    assert run.cost_usd == 0.0421
    assert run.error == "Reached maximum budget ($1)"


def test_claude_max_turns_fails_with_the_reason() -> None:
    parser = ClaudeStreamParser()
    feed_all(parser, [INIT, result("error_max_turns", num_turns=2)])
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.FAILED
    assert run.error == "reached the maximum number of turns (2)"
    assert run.cost_usd == 0.0421


def test_claude_error_during_execution_carries_its_errors() -> None:
    parser = ClaudeStreamParser()
    feed_all(parser, [INIT, result("error_during_execution", errors=["API Error: 529 overloaded"])])
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "529 overloaded" in run.error


def test_claude_success_subtype_flagged_as_error_is_a_failure() -> None:
    parser = ClaudeStreamParser()
    feed_all(parser, [INIT, result(is_error=True, result="API Error: 401 invalid x-api-key")])
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "401" in run.error


def test_claude_without_a_result_fails_with_the_stderr_tail() -> None:
    parser = ClaudeStreamParser()
    feed_all(parser, [INIT, assistant([{"type": "text", "text": "Working"}], input_tokens=7)])
    run = claude_run_result(
        parser, Ending(exit_code=3, stderr_tail="boom\nTypeError: undefined is not a function\n")
    )
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "exited with code 3 without a result line" in run.error
    assert "TypeError: undefined is not a function" in run.error
    assert run.cost_usd is None  # unknown, never a made-up zero
    assert run.usage.input_tokens == 7
    assert run.session_id == "sess-1"


def test_claude_usage_of_a_message_split_over_lines_is_counted_once() -> None:
    parser = ClaudeStreamParser()
    feed_all(
        parser,
        [
            assistant([{"type": "text", "text": "a"}], "msg_1", input_tokens=10, output_tokens=1),
            assistant([{"type": "text", "text": "b"}], "msg_1", input_tokens=10, output_tokens=4),
            assistant([{"type": "text", "text": "c"}], "msg_2", input_tokens=5, output_tokens=2),
        ],
    )
    assert parser.streamed_usage.input_tokens == 15
    assert parser.streamed_usage.output_tokens == 6


def test_claude_stopped_runs_are_timed_out_or_cancelled() -> None:
    parser = ClaudeStreamParser()
    parser.feed(INIT)
    timed_out = claude_run_result(parser, Ending(stopped="timed_out", duration_seconds=1800))
    assert timed_out.status is RunStatus.TIMED_OUT
    assert timed_out.error is not None and "wall-clock" in timed_out.error
    assert claude_run_result(parser, Ending(stopped="cancelled")).status is RunStatus.CANCELLED


def test_claude_a_result_wins_over_a_late_stop() -> None:
    parser = ClaudeStreamParser()
    feed_all(parser, [INIT, result()])
    assert claude_run_result(parser, Ending(stopped="timed_out")).status is RunStatus.SUCCEEDED


def test_claude_progress_texts_are_clipped() -> None:
    parser = ClaudeStreamParser()
    (progress,) = parser.feed(assistant([{"type": "text", "text": "x" * 5000}]))
    assert len(progress.text) == 500


CODEX_OK = [
    line({"type": "thread.started", "thread_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}),
    line({"type": "turn.started"}),
    line({"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "Plan"}}),
    line(
        {
            "type": "item.started",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": "bash -lc ls",
                "status": "in_progress",
            },
        }
    ),
    line(
        {
            "type": "item.completed",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": "bash -lc ls",
                "aggregated_output": "README.md\n",
                "exit_code": 0,
                "status": "completed",
            },
        }
    ),
    line(
        {
            "type": "item.completed",
            "item": {
                "id": "item_2",
                "type": "file_change",
                "changes": [{"path": "hello.txt", "kind": "add"}],
                "status": "completed",
            },
        }
    ),
    line({"type": "item.updated", "item": {"id": "item_3", "type": "todo_list", "items": []}}),
    line(
        {
            "type": "item.completed",
            "item": {"id": "item_4", "type": "agent_message", "text": "Added hello.txt."},
        }
    ),
    line(
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 24763, "cached_input_tokens": 24448, "output_tokens": 122},
        }
    ),
]


def test_codex_success_with_progress_usage_and_thread() -> None:
    parser = CodexStreamParser()
    progress = feed_all(parser, ["Reading prompt from stdin...", *CODEX_OK])
    assert progress == [
        Progress("thought", "Plan"),
        Progress("action", "$ bash -lc ls"),
        Progress("action", "edited hello.txt"),
        Progress("thought", "Added hello.txt."),
    ]
    assert parser.junk_lines == 1
    run = codex_run_result(parser, Ending(exit_code=0), model="gpt-5-codex", cost_usd=0.05)
    assert run.status is RunStatus.SUCCEEDED
    assert run.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert run.summary == "Added hello.txt."
    assert run.usage == Usage(input_tokens=24763, cached_input_tokens=24448, output_tokens=122)
    assert run.cost_usd == 0.05
    assert run.model == "gpt-5-codex"


def test_codex_usage_is_the_last_thread_total_reported() -> None:
    # The real CLI (0.169.0) reports the thread's running total: the last one is the total.
    parser = CodexStreamParser()
    totals = [
        {"input_tokens": 10, "cached_input_tokens": 4, "output_tokens": 3},
        {
            "input_tokens": 25,
            "cached_input_tokens": 8,
            "cache_write_input_tokens": 5,
            "output_tokens": 7,
            "reasoning_output_tokens": 2,
        },
    ]
    feed_all(parser, [line({"type": "turn.completed", "usage": usage}) for usage in totals])
    assert parser.thread_usage == Usage(
        input_tokens=25,
        cached_input_tokens=8,
        cache_write_input_tokens=5,
        output_tokens=7,
        reasoning_output_tokens=2,
    )
    assert parser.turns_completed == 2


def test_codex_error_item_is_a_notice_that_does_not_fail_the_run() -> None:
    notice = "Model metadata for `gpt-5-codex` not found. Defaulting to fallback metadata."
    parser = CodexStreamParser()
    with capture_logs() as logs:
        feed_all(
            parser,
            [
                line({"type": "thread.started", "thread_id": "t-1"}),
                line({"type": "item.completed", "item": {"type": "error", "message": notice}}),
                *CODEX_OK[1:],
            ],
        )
    run = codex_run_result(parser, Ending(exit_code=0), model="gpt-5-codex", cost_usd=None)
    assert run.status is RunStatus.SUCCEEDED
    assert parser.notices == [notice]
    assert [entry["message"] for entry in logs if entry["event"] == "codex_stream.notice"] == [
        notice
    ]


def test_codex_turn_failed_is_a_failure_with_its_message() -> None:
    parser = CodexStreamParser()
    feed_all(
        parser,
        [
            CODEX_OK[0],
            line({"type": "error", "message": "stream disconnected"}),
            line({"type": "turn.failed", "error": {"message": "model overloaded"}}),
        ],
    )
    run = codex_run_result(parser, Ending(exit_code=1), model=None, cost_usd=None)
    assert run.status is RunStatus.FAILED
    assert run.error == "model overloaded; stream disconnected"


def test_codex_error_without_a_turn_is_a_failure() -> None:
    parser = CodexStreamParser()
    feed_all(parser, [CODEX_OK[0], line({"type": "error", "message": "unauthorized"})])
    run = codex_run_result(parser, Ending(exit_code=1), model=None, cost_usd=None)
    assert run.status is RunStatus.FAILED
    assert run.error == "unauthorized"


def test_codex_without_events_fails_with_the_stderr_tail() -> None:
    parser = CodexStreamParser()
    run = codex_run_result(
        parser,
        Ending(exit_code=2, stderr_tail="error: unexpected argument"),
        model=None,
        cost_usd=None,
    )
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "unexpected argument" in run.error


def test_codex_stopped_before_the_turn_completed() -> None:
    parser = CodexStreamParser()
    parser.feed(CODEX_OK[0])
    ending = Ending(stopped="timed_out")
    run = codex_run_result(parser, ending, model=None, cost_usd=None)
    assert run.status is RunStatus.TIMED_OUT
    cancelled = codex_run_result(parser, Ending(stopped="cancelled"), model=None, cost_usd=None)
    assert cancelled.status is RunStatus.CANCELLED


def test_codex_completed_turn_then_a_failing_exit_is_a_failure() -> None:
    parser = CodexStreamParser()
    feed_all(parser, CODEX_OK)
    run = codex_run_result(parser, Ending(exit_code=1), model=None, cost_usd=None)
    assert run.status is RunStatus.FAILED
    assert run.error == "exited with code 1 after its turn completed"


# Printed by the real Claude Code 2.1.329 (npm @anthropic-ai/claude-code) through
# ClaudeCodeExecutor, against a loopback stand-in of the Messages API, in a network
# namespace with nothing but loopback: see tests/support/capture_claude_transcript.py.
REAL = Path(__file__).parent / "fixtures" / "claude_code_2.1.329"


def replay(name: str) -> tuple[ClaudeStreamParser, list[Progress]]:
    parser = ClaudeStreamParser()
    progress = feed_all(parser, (REAL / name).read_text().splitlines())
    assert parser.junk_lines == 0
    return parser, progress


def test_real_cli_success_transcript() -> None:
    parser, progress = replay("success.jsonl")
    assert parser.session_id == "5131682f-2999-4635-9896-f050a6239886"
    assert parser.model == "claude-sonnet-4-5-20250929"
    assert parser.tool_results == 1
    assert [p.kind for p in progress] == ["action", "thought"]
    assert progress[0].text.startswith("Write: /tmp/") and progress[0].text.endswith("hello.txt")
    run = claude_run_result(parser, Ending(exit_code=0))
    assert run.status is RunStatus.SUCCEEDED
    assert run.cost_usd == 0.0102
    assert run.summary == "Created hello.txt containing 'hello'."
    assert run.num_turns == 2
    assert run.usage == Usage(input_tokens=3000, cached_input_tokens=0, output_tokens=80)


def test_real_cli_over_budget_transcript() -> None:
    parser, _ = replay("over_budget.jsonl")
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.OVER_BUDGET
    assert run.error == "Reached maximum budget ($0.001)"
    assert run.cost_usd == 0.0051
    # The real CLI zeroes ``usage`` in this result; modelUsage still has the counts.
    assert run.usage == Usage(input_tokens=1500, cached_input_tokens=0, output_tokens=40)


def test_real_cli_max_turns_transcript() -> None:
    parser, _ = replay("max_turns.jsonl")
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.FAILED
    assert run.error == "Reached maximum number of turns (1)"
    assert run.cost_usd == 0.0051


def test_real_cli_resumed_transcript_costs_only_this_attempt() -> None:
    parser, _ = replay("resumed.jsonl")
    run = claude_run_result(parser, Ending(exit_code=0))
    assert run.status is RunStatus.SUCCEEDED
    assert parser.result is not None
    assert parser.result.total_cost_usd == pytest.approx(0.0153)  # the whole session
    assert run.cost_usd == 0.0051  # this attempt: model_usage_since_last_result
    assert run.usage == Usage(input_tokens=1500, cached_input_tokens=0, output_tokens=40)


def test_real_cli_api_error_after_resume_costs_nothing_not_the_session() -> None:
    # Printed by the real Claude Code 2.1.332 through the daemon, resumed with feedback
    # against a loopback Messages stand-in that then refused (400): total_cost_usd and
    # modelUsage are the whole session's ($1.674), model_usage_since_last_result is empty.
    parser = ClaudeStreamParser()
    lines = Path(__file__).parent / "fixtures" / "claude_code_2.1.332" / "resumed_api_error.jsonl"
    feed_all(parser, lines.read_text().splitlines())
    assert parser.result is not None and parser.result.total_cost_usd == pytest.approx(1.674)
    run = claude_run_result(parser, Ending(exit_code=1))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "no scripted answer left" in run.error
    assert run.cost_usd == 0.0
    assert run.usage == Usage()
