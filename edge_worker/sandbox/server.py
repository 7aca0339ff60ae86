"""Run an ASGI app (a stand-in server) on loopback in a background thread.

Contract: ``with serve_in_thread(app) as base_url:`` starts uvicorn on ``127.0.0.1`` on a
free port, returns only once the server accepts connections, yields
``"http://127.0.0.1:<port>"`` (no trailing slash), and on exit stops the server and joins
the thread. A server that fails to start raises :class:`RuntimeError` instead of hanging.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 10.0


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that does not install signal handlers (it runs off the main thread)."""

    def install_signal_handlers(self) -> None:  # pragma: no cover - intentionally empty
        return None


def _bound_socket(host: str) -> socket.socket:
    """A listening-ready socket on a free port; handing it to uvicorn avoids a port race."""
    # IPPROTO_TCP explicitly: asyncio only disables Nagle on sockets it knows are TCP, and
    # without it every loopback request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", log_level: str = "warning"
) -> Iterator[str]:
    """Serve ``app`` on ``host`` at a free port for the duration of the ``with`` block."""
    sock = _bound_socket(host)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="auto", access_log=False
    )
    server = _ThreadServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"serve:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"server on {host}:{port} exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {host}:{port} did not start in time")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_SECONDS)
        sock.close()
