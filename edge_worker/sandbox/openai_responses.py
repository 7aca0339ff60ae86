"""A stand-in for OpenAI's Responses API (``POST /v1/responses``, streamed), for tests that
drive the real Codex CLI.

Contract:
- Checks ``Authorization: Bearer <api_key>`` (401 ``invalid_api_key`` otherwise) and that
  the body is a JSON object with a ``model`` and an ``input`` list (400 otherwise).
- Answers from a queue of scripted answers, in order, as server-sent events
  (``response.created``, ``response.output_item.added`` / ``.done`` per item,
  ``response.output_text.delta`` for text, ``response.completed`` with the usage):
  :class:`ShellCall` (a function call of the request's shell tool running a command),
  :class:`Message` (an assistant message). An empty queue answers 400, so a test fails
  loudly rather than the CLI retrying forever.
- Every answer carries fixed usage (:data:`DEFAULT_USAGE` or the answer's own):
  ``input_tokens`` (cache reads and writes included, as the real API counts them),
  ``input_tokens_details.cached_tokens`` and ``.cache_write_tokens``, ``output_tokens``
  (reasoning included) and ``output_tokens_details.reasoning_tokens``.
  :attr:`ResponsesStandIn.served` sums what was served, for tests to compare with what the
  project recorded.
- Every request is recorded (path, headers, body, status) in ``requests``; any other path
  answers 404 and is recorded too, so a test can see what a CLI asked for.

``with serve_responses(stand_in) as base_url:`` runs it on loopback (``base_url`` ends in
``/v1``, as an OpenAI-compatible provider's base URL does).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge_worker.sandbox.server import serve_in_thread

DEFAULT_USAGE: dict[str, int] = {
    "input_tokens": 1_000,
    "cached_input_tokens": 200,
    "cache_write_input_tokens": 100,
    "output_tokens": 50,
    "reasoning_output_tokens": 20,
}
"""Tokens per answer: input (cache reads and writes included), output (reasoning included)."""

SHELL_TOOL_NAMES = ("shell_command", "shell", "exec_command", "local_shell")


@dataclass(frozen=True)
class ShellCall:
    """Call the request's shell tool with ``command`` (a ``bash -lc`` script)."""

    command: str
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class Message:
    """An assistant message saying ``text``."""

    text: str
    usage: dict[str, int] | None = None


Answer = ShellCall | Message


@dataclass(frozen=True)
class ServedUsage:
    """Token counts summed over the answers served (same meanings as the API's)."""

    responses: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0

    def plus(self, usage: dict[str, int]) -> ServedUsage:
        return ServedUsage(
            responses=self.responses + 1,
            input_tokens=self.input_tokens + usage.get("input_tokens", 0),
            cached_input_tokens=self.cached_input_tokens + usage.get("cached_input_tokens", 0),
            cache_write_input_tokens=(
                self.cache_write_input_tokens + usage.get("cache_write_input_tokens", 0)
            ),
            output_tokens=self.output_tokens + usage.get("output_tokens", 0),
            reasoning_output_tokens=(
                self.reasoning_output_tokens + usage.get("reasoning_output_tokens", 0)
            ),
        )


@dataclass
class RecordedRequest:
    """One request as received, and the status it was answered with."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int
    problem: str | None = None


@dataclass
class ResponsesStandIn:
    """The stand-in's state: the key it accepts, scripted answers, what it served."""

    api_key: str = "sk-test-loopback"
    answers: deque[Answer] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    served: ServedUsage = field(default_factory=ServedUsage)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: int = 0

    def script(self, *answers: Answer) -> ResponsesStandIn:
        """Queue ``answers`` after those already queued."""
        with self._lock:
            self.answers.extend(answers)
        return self

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/{path:path}", self._elsewhere, methods=["GET", "POST"]),
            ]
        )

    async def _elsewhere(self, request: Request) -> Response:
        self._record(request.url.path, dict(request.headers), await request.body(), 404)
        return JSONResponse({"error": {"message": "not served by this stand-in"}}, 404)

    async def _responses(self, request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        path = request.url.path
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return self._refuse(path, headers, body, 401, "invalid_api_key", "Incorrect API key")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return self._refuse(path, headers, body, 400, "invalid_request", "model is required")
        if not isinstance(body.get("input"), list):
            return self._refuse(path, headers, body, 400, "invalid_request", "input: a list")
        with self._lock:
            answer = self.answers.popleft() if self.answers else None
            self._counter += 1
            number = self._counter
        if answer is None:
            return self._refuse(
                path, headers, body, 400, "invalid_request", "responses stand-in: no answer left"
            )
        item = _item(answer, body, number)
        if item is None:
            return self._refuse(
                path, headers, body, 400, "invalid_request", "no shell tool in the request"
            )
        with self._lock:
            self.served = self.served.plus(dict(answer.usage or DEFAULT_USAGE))
        self._record(path, headers, body, 200)
        events = _events(f"resp_standin_{number:04d}", body["model"], item, answer)
        return StreamingResponse(_sse(events), media_type="text/event-stream")

    def _refuse(
        self, path: str, headers: dict[str, str], body: Any, status: int, code: str, message: str
    ) -> JSONResponse:
        self._record(path, headers, body, status, message)
        error = {"message": message, "type": "invalid_request_error", "code": code}
        return JSONResponse({"error": error}, status_code=status)

    def _record(
        self, path: str, headers: dict[str, str], body: Any, status: int, problem: str | None = None
    ) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(path, headers, body, status, problem))


def shell_tool(body: dict[str, Any]) -> str | None:
    """The name of the shell tool the request declares, if any."""
    names = set()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            names.add(tool.get("name") or tool.get("type"))
    return next((name for name in SHELL_TOOL_NAMES if name in names), None)


def _item(answer: Answer, body: dict[str, Any], number: int) -> dict[str, Any] | None:
    if isinstance(answer, Message):
        return {
            "type": "message",
            "id": f"msg_standin_{number:04d}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": answer.text, "annotations": []}],
        }
    tool = shell_tool(body)
    if tool is None:
        return None
    arguments: dict[str, Any]
    if tool == "shell":
        arguments = {"command": ["bash", "-lc", answer.command]}
    elif tool == "exec_command":
        arguments = {"cmd": answer.command}
    else:
        arguments = {"command": answer.command}
    return {
        "type": "function_call",
        "id": f"fc_standin_{number:04d}",
        "call_id": f"call_standin_{number:04d}",
        "name": tool,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def _events(
    response_id: str, model: str, item: dict[str, Any], answer: Answer
) -> list[dict[str, Any]]:
    usage = dict(answer.usage or DEFAULT_USAGE)
    response = {"id": response_id, "object": "response", "model": model, "status": "in_progress"}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    if isinstance(answer, Message):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": answer.text,
            }
        )
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    completed = {
        **response,
        "status": "completed",
        "output": [item],
        "usage": {
            "input_tokens": usage.get("input_tokens", 0),
            "input_tokens_details": {
                "cached_tokens": usage.get("cached_input_tokens", 0),
                "cache_write_tokens": usage.get("cache_write_input_tokens", 0),
            },
            "output_tokens": usage.get("output_tokens", 0),
            "output_tokens_details": {"reasoning_tokens": usage.get("reasoning_output_tokens", 0)},
            "total_tokens": usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
        },
    }
    events.append({"type": "response.completed", "response": completed})
    return events


async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for sequence, event in enumerate(events):
        data = json.dumps({**event, "sequence_number": sequence})
        yield f"event: {event['type']}\ndata: {data}\n\n".encode()


@contextmanager
def serve_responses(stand_in: ResponsesStandIn) -> Iterator[str]:
    """Serve ``stand_in`` on loopback; yields its base URL (``http://127.0.0.1:<port>/v1``)."""
    with serve_in_thread(stand_in.app) as base_url:
        yield f"{base_url}/v1"
