"""A stand-in for Anthropic's Messages API (``POST /v1/messages``), for tests and the demo.

Contract:
- Checks each request the way the real API would reject it: ``x-api-key`` (401
  ``authentication_error``), ``anthropic-version`` and the body's shape (``model``,
  ``max_tokens``, ``messages`` alternating from ``user``, ``tools`` with ``input_schema``,
  ``tool_choice`` naming a declared tool, every ``tool_result`` answering a ``tool_use`` of
  the previous assistant turn) (400 ``invalid_request_error`` naming the problem).
- Answers from a queue of scripted answers, in order: :class:`ToolAnswer` (a ``tool_use``
  block calling the forced tool, or the one it names, with any input, valid or not),
  :class:`TextAnswer` (the model ignored the tool) or :class:`ErrorAnswer` (429, 500,
  529... with ``retry-after``). A request with ``"stream": true`` gets the answer as
  server-sent events (``message_start``, ``content_block_start`` / ``_delta`` / ``_stop``,
  ``message_delta`` with the final usage, ``message_stop``), as agent CLIs ask for it.
  When the queue is empty it repeats ``default`` if one is set, else answers 400 so the
  test fails loudly instead of retrying.
- ``image`` blocks (user turns only) must carry a ``base64`` source with an accepted image
  media type and valid base64 data (or a ``url`` source).
- Every request is recorded (headers, body, what was answered, when, and for a 200 the
  usage billed) in ``requests``.
- Usage is reported as ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``, scripted per answer or :data:`DEFAULT_USAGE`.

``with serve_anthropic(stand_in) as base_url:`` runs it on loopback.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge_worker.sandbox.server import serve_in_thread

API_VERSION = "2023-06-01"
DEFAULT_USAGE: dict[str, int] = {
    "input_tokens": 2_400,
    "output_tokens": 900,
    "cache_read_input_tokens": 1_200,
    "cache_creation_input_tokens": 0,
}


@dataclass
class ToolAnswer:
    """Call ``name``, else the request's forced tool (or ``submit_plan``), with ``input``."""

    input: object
    usage: dict[str, int] | None = None
    stop_reason: str = "tool_use"
    name: str | None = None


@dataclass
class TextAnswer:
    """Answer with text only, as a model that ignored the tool would."""

    text: str
    usage: dict[str, int] | None = None
    stop_reason: str = "end_turn"


@dataclass
class ErrorAnswer:
    """An API error: 429 ``rate_limit_error``, 529 ``overloaded_error``, 500 ``api_error``."""

    status: int
    error_type: str | None = None
    message: str = "scripted error"
    retry_after: str | None = None


Answer = ToolAnswer | TextAnswer | ErrorAnswer

_CHOICE_TYPES = frozenset({"auto", "any", "tool", "none"})

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class RecordedRequest:
    """One request as received, and the status it was answered with."""

    headers: dict[str, str]
    body: Any
    status: int
    problem: str | None = None
    path: str = "/v1/messages"
    usage: dict[str, int] | None = None  # what a 200 reported, hence billed
    at: float = field(default_factory=time.time)


@dataclass
class AnthropicStandIn:
    """The stand-in's state: the key it accepts, scripted answers, recorded requests."""

    api_key: str = "sk-ant-test"
    default: Answer | None = None
    answers: deque[Answer] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: int = 0

    def script(self, *answers: Answer) -> AnthropicStandIn:
        """Queue ``answers`` after those already queued."""
        with self._lock:
            self.answers.extend(answers)
        return self

    def script_plans(self, plans: Iterable[object]) -> AnthropicStandIn:
        """Queue one :class:`ToolAnswer` per plan."""
        return self.script(*(ToolAnswer(plan) for plan in plans))

    @property
    def successful_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.status == 200]

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/{path:path}", self._elsewhere, methods=["GET", "POST", "HEAD"]),
            ]
        )

    async def _elsewhere(self, request: Request) -> JSONResponse:
        """Anything else is 404 (``not_found_error``), recorded with its path."""
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = (await request.body()).decode(errors="replace")
        message = f"{request.url.path} is not served by this stand-in"
        with self._lock:
            self.requests.append(RecordedRequest(headers, body, 404, message, request.url.path))
        payload = {"type": "error", "error": {"type": "not_found_error", "message": message}}
        return JSONResponse(payload, status_code=404)

    async def _messages(self, request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        if headers.get("x-api-key") != self.api_key:
            return self._refuse(headers, body, 401, "invalid x-api-key")
        if headers.get("anthropic-version") != API_VERSION:
            return self._refuse(
                headers, body, 400, f"anthropic-version must be {API_VERSION!r} for this stand-in"
            )
        problem = request_problem(body)
        if problem:
            return self._refuse(headers, body, 400, problem)
        with self._lock:
            answer = self.answers.popleft() if self.answers else self.default
            self._counter += 1
            number = self._counter
        if answer is None:
            return self._refuse(headers, body, 400, "anthropic stand-in: no scripted answer left")
        if isinstance(answer, ErrorAnswer):
            extra = {"retry-after": answer.retry_after} if answer.retry_after is not None else {}
            return self._refuse(
                headers,
                body,
                answer.status,
                answer.message,
                error_type=answer.error_type,
                extra_headers=extra,
            )
        message = self._message(answer, body, number)
        self._record(headers, body, 200, usage=message["usage"])
        if body.get("stream") is True:
            return StreamingResponse(_sse(_stream_events(message)), media_type="text/event-stream")
        return JSONResponse(message)

    def _message(self, answer: ToolAnswer | TextAnswer, body: Any, number: int) -> dict[str, Any]:
        if isinstance(answer, ToolAnswer):
            choice = body.get("tool_choice") or {}
            tool = answer.name or choice.get("name") or "submit_plan"
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_use",
                    "id": f"toolu_standin_{number:04d}",
                    "name": tool,
                    "input": answer.input,
                }
            ]
        else:
            content = [{"type": "text", "text": answer.text}]
        return {
            "id": f"msg_standin_{number:04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": answer.stop_reason,
            "stop_sequence": None,
            "usage": dict(answer.usage or DEFAULT_USAGE),
        }

    def _refuse(
        self,
        headers: dict[str, str],
        body: Any,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        self._record(headers, body, status, message)
        kind = error_type or _ERROR_TYPES.get(status, "api_error")
        payload = {"type": "error", "error": {"type": kind, "message": message}}
        return JSONResponse(payload, status_code=status, headers=extra_headers)

    def _record(
        self,
        headers: dict[str, str],
        body: Any,
        status: int,
        problem: str | None = None,
        *,
        usage: dict[str, int] | None = None,
    ) -> None:
        with self._lock:
            self.requests.append(
                RecordedRequest(headers, body, status, problem, usage=dict(usage or {}) or None)
            )


def _stream_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """``message`` as the Messages API streams it."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 0}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**message, "content": [], "stop_reason": None, "usage": start_usage},
        },
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            events += [
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                },
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                },
            ]
        else:
            events += [
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": block["text"]},
                },
            ]
        events.append({"type": "content_block_stop", "index": index})
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        },
        {"type": "message_stop"},
    ]
    return events


async def _sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def request_problem(body: Any) -> str | None:
    """What the real API would reject in ``body``, or ``None`` when it is well formed."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: field required (a string)"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: field required (a positive integer)"
    if "system" in body and not isinstance(body["system"], str | list):
        return "system: must be a string or a list of text blocks"
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        return "tools: must be a list"
    names = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            return f"tools.{index}.name: field required"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{index}.input_schema: must be a JSON schema of type object"
        names.append(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in _CHOICE_TYPES:
            return "tool_choice.type: must be one of auto, any, tool, none"
        if choice["type"] == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: {choice.get('name')!r} is not one of the declared tools"
    return _messages_problem(body.get("messages"))


def _messages_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    previous_tool_uses: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in {"user", "assistant"}:
            return f"messages.{index}.role: must be user or assistant"
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            return f"messages.{index}.role: roles must alternate, starting with user"
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                return f"messages.{index}.content: must not be empty"
            blocks: list[Any] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            return f"messages.{index}.content: a non-empty string or list of blocks"
        tool_uses: set[str] = set()
        for block_index, block in enumerate(blocks):
            where = f"messages.{index}.content.{block_index}"
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                return f"{where}.type: field required"
            if block["type"] == "image":
                if message["role"] != "user":
                    return f"{where}: image blocks belong to user messages"
                if problem := _image_problem(block.get("source")):
                    return f"{where}.source: {problem}"
            if block["type"] == "tool_use":
                if message["role"] != "assistant":
                    return f"{where}: tool_use blocks belong to assistant messages"
                tool_uses.add(str(block.get("id")))
            if block["type"] == "tool_result" and block.get("tool_use_id") not in (
                previous_tool_uses
            ):
                return (
                    f"{where}.tool_use_id: no tool_use with id {block.get('tool_use_id')!r} in "
                    "the previous assistant message"
                )
        previous_tool_uses = tool_uses
    if messages[-1]["role"] != "user":
        return "messages: the last message must be from the user"
    return None


IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _image_problem(source: Any) -> str | None:
    """What the real API would reject in an image block's ``source``."""
    if not isinstance(source, dict) or source.get("type") not in {"base64", "url"}:
        return "must be an object of type base64 or url"
    if source["type"] == "url":
        return None if isinstance(source.get("url"), str) else "url: field required"
    if source.get("media_type") not in IMAGE_MEDIA_TYPES:
        return f"media_type: must be one of {sorted(IMAGE_MEDIA_TYPES)}"
    data = source.get("data")
    if not isinstance(data, str) or not data:
        return "data: field required (base64)"
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        return "data: not valid base64"
    return None


@contextmanager
def serve_anthropic(stand_in: AnthropicStandIn) -> Iterator[str]:
    """Serve ``stand_in`` on loopback; yields its base URL (``http://127.0.0.1:<port>``)."""
    with serve_in_thread(stand_in.app) as base_url:
        yield base_url
