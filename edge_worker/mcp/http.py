"""``/mcp`` on the daemon: the MCP server over streamable HTTP, behind a bearer token.

Contract: without a configured token (``EDGE_WORKER_MCP__TOKEN`` or ``__TOKEN_FILE``) there
is no endpoint. With one, a request without ``Authorization: Bearer <token>``, or with
another token, is answered 401 with a JSON-RPC error saying so and reaches nothing else
(the comparison takes the same time whatever the token); before the daemon has started,
or once it drains, a request is answered 503 with a JSON-RPC error. The endpoint is
stateless (no MCP session to lose): a client goes on across a daemon restart.
"""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from edge_worker.mcp.backend import Backend
from edge_worker.mcp.server import build_server
from edge_worker.settings import Settings

PATH = "/mcp"
UNAUTHORIZED_CODE = -32001
MISSING_TOKEN = "Missing bearer token: send `Authorization: Bearer <EDGE_WORKER_MCP__TOKEN>`."
WRONG_TOKEN = "Wrong bearer token for this daemon's MCP endpoint."
UNAVAILABLE_CODE = -32002
NOT_SERVING = "The daemon is starting or shutting down: nothing was done, try again shortly."


def token_problem(expected: str, authorization: str | None) -> str | None:
    """Why ``authorization`` (the header) does not carry ``expected``, or ``None``."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return MISSING_TOKEN
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return WRONG_TOKEN
    return None


class McpEndpoint:
    """The ``/mcp`` route and what it needs running: the SDK's session manager and the
    backend the tools act on (set by :meth:`serving`, in the daemon's lifespan)."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._backend: Backend | None = None
        self._server = build_server(self._current)
        self._server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            # The bearer token is the guard; the daemon may sit behind any host name.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._inner = StreamableHTTPASGIApp(self._server.session_manager)

    @classmethod
    def configured(cls, settings: Settings) -> McpEndpoint | None:
        """The endpoint when a token is configured, else ``None`` (no route at all)."""
        token = settings.mcp.bearer_token()
        return cls(token) if token else None

    def _current(self) -> Backend:
        assert self._backend is not None, "the MCP endpoint is used before the daemon started"
        return self._backend

    def routes(self) -> list[Route]:
        return [Route(PATH, self, methods=["GET", "POST", "DELETE"])]

    @contextlib.asynccontextmanager
    async def serving(self, backend: Backend) -> AsyncIterator[None]:
        """Serve with ``backend`` for the duration of the block."""
        self._backend = backend
        try:
            async with self._server.session_manager.run():
                yield
        finally:
            backend.close()
            self._backend = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        if problem := token_problem(self._token, authorization):
            await _refuse(send, 401, UNAUTHORIZED_CODE, problem)
            return
        if self._backend is None:
            await _refuse(send, 503, UNAVAILABLE_CODE, NOT_SERVING)
            return
        await self._inner(scope, receive, send)


async def _refuse(send: Send, status: int, code: int, message: str) -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="edge-worker"'))
    else:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
