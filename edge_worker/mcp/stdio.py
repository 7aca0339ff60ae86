"""``edge-worker mcp``: the MCP server on stdin/stdout, for a client that spawns it.

It is a client of the daemon's database, not a daemon: it writes work into the same
outbox the webhook intake writes to (the running daemon's dispatcher picks it up within
its poll interval) and reads state from the same tables. Logs go to stderr only: stdout
carries the protocol.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import SystemClock
from edge_worker.logging import configure_logging
from edge_worker.mcp.backend import Backend
from edge_worker.mcp.server import build_server
from edge_worker.settings import Settings
from edge_worker.storage.db import create_engine_for, create_tables
from edge_worker.storage.tokens import SharedTokenStore


async def serve_stdio(settings: Settings) -> None:
    """Serve MCP on stdio until the client closes it."""
    engine = create_engine_for(settings.resolved_database_url)
    await asyncio.to_thread(create_tables, engine)
    linear = LinearClient(settings.linear, token_store=_shared_token(settings, engine))
    backend = Backend(settings, engine, linear)
    try:
        await build_server(lambda: backend).run_stdio_async()
    finally:
        backend.close()
        await linear.aclose()
        engine.dispose()


def _shared_token(settings: Settings, engine: sa.Engine) -> SharedTokenStore | None:
    """In client-credentials mode the daemon's app token, shared through the database: a
    token of our own would revoke the daemon's (Linear keeps one per app)."""
    credentials = settings.linear
    if (
        credentials.api_key is None
        and credentials.client_id
        and credentials.client_secret is not None
    ):
        return SharedTokenStore(engine, credentials.client_id, clock=SystemClock())
    return None


def run_stdio(settings: Settings) -> int:
    """The ``edge-worker mcp`` command."""
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(serve_stdio(settings))
    return 0
