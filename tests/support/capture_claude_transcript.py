"""Capture a real Claude Code stream-json transcript against a loopback Messages API.

Not a test: a tool that produced ``tests/fixtures/claude_code_real_transcript.jsonl``.
Run it inside a network namespace that has only loopback, so the real CLI cannot reach
anything but the stand-in::

    unshare -rn sh -c 'ip link set lo up && \
        .venv/bin/python -m tests.support.capture_claude_transcript /path/to/claude OUT.jsonl MODE'

with ``MODE`` one of ``success`` (default), ``over-budget`` (``--max-budget-usd 0.001``) or
``max-turns`` (``--max-turns 1``) or ``resume`` (a first run, then ``--resume`` with
feedback; the transcript of the resumed run is written).

The stand-in answers ``POST /v1/messages`` with Anthropic's streaming events: first a
``Write`` tool use for ``hello.txt``, then (once the request carries a tool result) a final
text. The CLI runs through :class:`ClaudeCodeExecutor` in a real git worktree, so the
capture also checks the executor end to end against the real binary.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge_worker.executors.base import TaskLimits
from edge_worker.executors.claude_code import ClaudeCodeExecutor
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import ClaudeSettings
from tests.support.local_agents import init_repo, make_task

MODEL = "claude-sonnet-4-5-20250929"
REQUESTS: list[dict[str, Any]] = []


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def _has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return True
    return False


def _reply_blocks(body: dict[str, Any], workdir: str) -> tuple[list[dict[str, Any]], str]:
    tools = {tool.get("name") for tool in body.get("tools", []) if isinstance(tool, dict)}
    if "Write" in tools and not _has_tool_result(body):
        tool_input = {"file_path": f"{workdir}/hello.txt", "content": "hello\n"}
        block = {"type": "tool_use", "id": "toolu_01StandIn", "name": "Write", "input": tool_input}
        return [block], "tool_use"
    return [{"type": "text", "text": "Created hello.txt containing 'hello'."}], "end_turn"


async def _stream(blocks: list[dict[str, Any]], stop_reason: str) -> AsyncIterator[str]:
    usage = {
        "input_tokens": 1500,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {"id": "msg_01StandIn", "type": "message", "role": "assistant"}
    message |= {"model": MODEL, "content": [], "stop_reason": None, "stop_sequence": None}
    message["usage"] = usage
    yield _sse({"type": "message_start", "message": message})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield _sse(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            yield _sse({"type": "content_block_start", "index": index, "content_block": start})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield _sse({"type": "content_block_delta", "index": index, "delta": delta})
        yield _sse({"type": "content_block_stop", "index": index})
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 40},
        }
    )
    yield _sse({"type": "message_stop"})


def make_app(workdir_holder: dict[str, str]) -> Starlette:
    async def messages(request: Request) -> Response:
        body = await request.json()
        REQUESTS.append(
            {"path": request.url.path, "model": body.get("model"), "stream": body.get("stream")}
        )
        blocks, stop_reason = _reply_blocks(body, workdir_holder.get("path", "/tmp"))
        if body.get("stream"):
            return StreamingResponse(_stream(blocks, stop_reason), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "msg_01StandIn",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": 1500, "output_tokens": 40},
            }
        )

    async def count_tokens(request: Request) -> Response:
        return JSONResponse({"input_tokens": 1500})

    async def other(request: Request) -> Response:
        REQUESTS.append({"path": request.url.path, "method": request.method})
        return JSONResponse(
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": "not served by the stand-in"},
            },
            status_code=404,
        )

    return Starlette(
        routes=[
            Route("/v1/messages", messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
            Route("/{path:path}", other, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


LIMITS = {
    "success": TaskLimits(wall_clock_seconds=120),
    "over-budget": TaskLimits(wall_clock_seconds=120, max_usd=0.001),
    "max-turns": TaskLimits(wall_clock_seconds=120, max_turns=1),
    "resume": TaskLimits(wall_clock_seconds=120),
}


async def capture(binary: str, out: Path, mode: str) -> None:

    holder: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(make_app(holder)) as base_url:
        root = Path(tmp)
        os.environ.update(
            {
                "ANTHROPIC_BASE_URL": base_url,
                "ANTHROPIC_API_KEY": "sk-ant-stand-in-not-a-real-key",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "HOME": str(root / "home"),
            }
        )
        (root / "home").mkdir()
        repo = init_repo(root / "project")
        settings = ClaudeSettings(
            binary=binary,
            model=MODEL,
            timeout_seconds=120,
            kill_grace_seconds=2,
            pass_env=[
                "ANTHROPIC_BASE_URL",
                "ANTHROPIC_API_KEY",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                "DISABLE_AUTOUPDATER",
            ],
        )
        executor = ClaudeCodeExecutor(settings, WorktreeManager(root / "worktrees"))
        task = make_task(repo, limits=LIMITS[mode])
        holder["path"] = str(executor.worktrees.path_for(repo, task.issue_identifier, task.key))
        handle = await executor.start(task)
        result = await executor.follow(handle)
        if mode == "resume":
            handle = await executor.resume(handle, task, "Please also confirm the file.")
            result = await executor.follow(handle)
        report = await executor.verify(handle, task.verification)
        out.write_text(Path(handle.extra["transcript"]).read_text())
        print(
            json.dumps(
                {
                    "result": result.model_dump(mode="json"),
                    "verification_passed": report.passed,
                    "requests": REQUESTS,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    asyncio.run(
        capture(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "success")
    )
