"""The MCP server: edge-worker's tools and resources over the official SDK.

Contract: a call that cannot be carried out is a JSON-RPC error (``-32602``, invalid
params) whose message says why, and nothing is started: an unknown tool, arguments that
do not fit the tool's schema, a repository the caller may not use, an issue Linear does
not know, work that is not in flight. Tool results are JSON objects (structured output).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import ValidationError

from edge_worker.mcp import texts
from edge_worker.mcp.backend import Backend
from edge_worker.mcp.errors import Refused

Strategy = Literal["local-only", "cloud-only", "hybrid-smart", "hybrid-parallel", "cost-optimized"]
T = TypeVar("T")


class StrictServer(MCPServer[Any]):
    """An :class:`MCPServer` that answers bad calls with a JSON-RPC error, not a result."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        known = [tool.name for tool in await self.list_tools()]
        if name not in known:
            raise MCPError(INVALID_PARAMS, texts.UNKNOWN_TOOL.format(name=name, known=known))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                    for err in cause.errors()
                )
                raise MCPError(
                    INVALID_PARAMS, texts.BAD_ARGUMENTS.format(name=name, problems=problems)
                ) from None
            raise


async def _answer(call: Awaitable[T]) -> T:
    """The backend's answer, a :class:`Refused` turned into the JSON-RPC error."""
    try:
        return await call
    except Refused as exc:
        raise MCPError(INVALID_PARAMS, str(exc)) from None


def build_server(backend: Callable[[], Backend]) -> StrictServer:
    """The server, its tools reading ``backend()`` when called (the daemon's is made in
    its lifespan, after the routes)."""
    server = StrictServer(texts.SERVER_NAME, instructions=texts.INSTRUCTIONS)

    @server.tool()
    async def create_work(
        description: str | None = None,
        issue: str | None = None,
        repository: str | None = None,
        strategy: Strategy | None = None,
        title: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Start work: on a Linear issue (`issue`: ENG-12 or its id), or on a new issue
        made in the configured team from `description` (with an optional `title`).
        `repository` names a configured repository, `strategy` how sub-tasks are
        dispatched. Give the same `request_id` to retry without starting twice."""
        return await _answer(
            backend().create_work(
                description=description,
                issue=issue,
                repository=repository,
                strategy=strategy,
                title=title,
                request_id=request_id,
            )
        )

    @server.tool()
    async def get_status(issue: str) -> dict[str, Any]:
        """The issue's work: its state, sub-tasks by state, where they run, spend so far."""
        return await _answer(backend().status(issue))

    @server.tool()
    async def get_result(issue: str) -> dict[str, Any]:
        """The status plus every sub-task run: executor, outcome, PR or branch, cost, and
        the evidence of its verification (each command, its exit code, its output tail)."""
        return await _answer(backend().result(issue))

    @server.tool()
    async def verify(issue: str, subtask: str, commands: list[str] | None = None) -> dict[str, Any]:
        """Run a verification command set on sub-task `subtask`'s work (its branch, in a
        scratch checkout): its own verification commands, or `commands` (each must exit
        0) when the daemon allows callers' commands. Each check's exit code and output."""
        return await _answer(backend().verify(issue, subtask, commands))

    @server.tool()
    async def send_feedback(
        issue: str, text: str, subtask: str | None = None, request_id: str | None = None
    ) -> dict[str, Any]:
        """Send feedback to the issue's running work (about sub-task `subtask` if given),
        as a reply on the issue would."""
        return await _answer(backend().send_feedback(issue, text, subtask, request_id))

    @server.tool()
    async def stop(issue: str, request_id: str | None = None) -> dict[str, Any]:
        """Stop the issue's running work, as Linear's stop signal does."""
        return await _answer(backend().stop(issue, request_id))

    @server.resource("edge-worker://issue/{ref}/plan", mime_type="application/json")
    async def plan(ref: str) -> str:
        """The issue's plan: its sub-tasks, roles and dependencies."""
        return json.dumps(await _answer(backend().plan(ref)), indent=2)

    @server.resource("edge-worker://issue/{ref}/report", mime_type="application/json")
    async def report(ref: str) -> str:
        """The issue's report: state, each sub-task run with its evidence and cost."""
        return json.dumps(await _answer(backend().result(ref)), indent=2, default=str)

    _ = (create_work, get_status, get_result, verify, send_feedback, stop, plan, report)
    return server
