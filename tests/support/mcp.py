"""MCP clients of the real daemon for the tests: over streamable HTTP (with a bearer
token) and over stdio (``edge-worker mcp`` spawned as a real subprocess), both the
official SDK's :class:`mcp.Client`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

BIN = Path(sys.executable).parent / "edge-worker"


def http_client(url: str, token: str | None) -> Client:
    """A client of ``url`` (the daemon's ``/mcp``) sending ``token`` as its bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    transport = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers))
    return Client(transport)


def stdio_client(env: dict[str, str]) -> Client:
    """A client of ``edge-worker mcp`` run as a subprocess with ``env`` (the daemon's)."""
    params = StdioServerParameters(command=str(BIN), args=["mcp"], env={**os.environ, **env})
    return Client(params)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The tool's structured answer; ``AssertionError`` when it is a tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    if result.structured_content is not None:
        found = result.structured_content
        return dict(found.get("result", found)) if "result" in found else dict(found)
    text = result.content[0].text  # type: ignore[union-attr]
    return dict(json.loads(text))
