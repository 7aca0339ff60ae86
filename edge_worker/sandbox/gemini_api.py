"""A stand-in for the Gemini API's ``streamGenerateContent`` (server-sent events), for the
test that drives the real Gemini CLI.

Contract:
- ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse`` checks the
  ``x-goog-api-key`` header (401 otherwise) and a JSON body with a ``contents`` list (400
  otherwise), and answers the next scripted text from its queue as one event: a
  candidate with that text, ``finishReason: STOP`` and ``usageMetadata`` (fixed
  :data:`DEFAULT_USAGE`: prompt tokens with the cached ones among them, candidates,
  thoughts, and their total). An empty queue answers 400 so a test fails loudly.
  :attr:`GeminiStandIn.served` sums what was served.
- Every request is recorded (path, body, status) in ``requests``; any other path answers
  404 and is recorded too.

``with serve_gemini(stand_in) as base_url:`` runs it on loopback (the CLI's
``GOOGLE_GEMINI_BASE_URL``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_worker.sandbox.server import serve_in_thread

DEFAULT_USAGE = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 400,
    "candidatesTokenCount": 30,
    "thoughtsTokenCount": 20,
}


@dataclass
class GeminiStandIn:
    """The scripted model: answers texts in order; records every request."""

    api_key: str
    answers: deque[str] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    served: dict[str, int] = field(default_factory=dict)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        record: dict[str, Any] = {"path": request.url.path, "query": request.url.query}
        self.requests.append(record)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record["body"] = body
        if not request.url.path.endswith(":streamGenerateContent"):
            record["status"] = 404
            return JSONResponse({"error": {"code": 404, "message": "not found"}}, 404)
        if request.headers.get("x-goog-api-key") != self.api_key:
            record["status"] = 401
            return JSONResponse({"error": {"code": 401, "message": "API key not valid"}}, 401)
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            record["status"] = 400
            return JSONResponse({"error": {"code": 400, "message": "contents required"}}, 400)
        if not self.answers:
            record["status"] = 400
            return JSONResponse({"error": {"code": 400, "message": "no scripted answer"}}, 400)
        text = self.answers.popleft()
        usage = {
            **DEFAULT_USAGE,
            "totalTokenCount": DEFAULT_USAGE["promptTokenCount"]
            + DEFAULT_USAGE["candidatesTokenCount"]
            + DEFAULT_USAGE["thoughtsTokenCount"],
        }
        for name, value in usage.items():
            self.served[name] = self.served.get(name, 0) + value
        model = request.url.path.rsplit("/", 1)[-1].split(":", 1)[0]
        event = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
        }
        record["status"] = 200
        return Response(
            f"data: {json.dumps(event)}\r\n\r\n".encode(), media_type="text/event-stream"
        )


@contextmanager
def serve_gemini(stand_in: GeminiStandIn) -> Iterator[str]:
    """Serve ``stand_in`` on loopback; yields its base URL."""
    with serve_in_thread(stand_in.app) as base_url:
        yield base_url
