"""``edge-worker mcp``: the MCP server on stdin/stdout, for a client that spawns it.

It is a client of the daemon's database, not a daemon: it writes work into the same
outbox the webhook intake writes to (the running daemon's dispatcher picks it up within
its poll interval) and reads state from the same tables. Logs go to stderr only: stdout
carries the protocol.
"""

from __future__ import annotations

import asyncio

from edge_worker.linear.client import LinearClient
from edge_worker.logging import configure_logging
from edge_worker.mcp.backend import Backend
from edge_worker.mcp.server import build_server
from edge_worker.settings import Settings
from edge_worker.storage.db import create_engine_for, create_tables


async def serve_stdio(settings: Settings) -> None:
    """Serve MCP on stdio until the client closes it."""
    engine = create_engine_for(settings.resolved_database_url)
    await asyncio.to_thread(create_tables, engine)
    linear = LinearClient(settings.linear)
    backend = Backend(settings, engine, linear)
    try:
        await build_server(lambda: backend).run_stdio_async()
    finally:
        backend.close()
        await linear.aclose()
        engine.dispose()


def run_stdio(settings: Settings) -> int:
    """The ``edge-worker mcp`` command."""
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(serve_stdio(settings))
    return 0
