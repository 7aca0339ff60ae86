"""uvicorn with the daemon's drain behaviour.

The first SIGTERM/SIGINT marks the daemon draining (new webhooks get 503, so Linear
retries them later; ``/readyz`` turns 503), lets requests in flight finish, stops local
agent runs and shuts DBOS down with the workflows left pending, so the next start resumes
them. The whole drain is bounded by ``drain_seconds``: past it the process exits anyway.
A second signal exits at once.

Once started (the lifespan done), the process's start-up heap is exempted from garbage
collection: see :meth:`DrainingServer.startup`.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from types import FrameType

import uvicorn

GC_YOUNG_THRESHOLD = 10_000


class DrainingServer(uvicorn.Server):
    """See the module docstring."""

    def __init__(self, config: uvicorn.Config, *, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._signals = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then tune the garbage collector for a long-lived server.

        Start-up leaves a large heap that lives as long as the process (DBOS, SQLAlchemy,
        pydantic models, the prompts), and every full collection walked all of it: under a
        burst of webhooks that was about a third of the intake's CPU, so it is frozen out
        of the collector's sight. A webhook allocates about a hundred objects, nearly all
        freed by reference counting, so young collections run every ``GC_YOUNG_THRESHOLD``
        allocations rather than every 700: 6-11 % more webhooks a second (bench/README.md).
        Objects created after start-up are collected as usual.
        """
        await super().startup(sockets)
        gc.collect()
        gc.freeze()
        _young, middle, old = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(130)
        daemon = getattr(getattr(self.config.app, "state", None), "daemon", None)
        if daemon is not None:
            daemon.draining = True
        threading.Thread(
            target=self._exit_after,
            args=(time.monotonic() + self.drain_seconds,),
            name="drain-watchdog",
            daemon=True,
        ).start()
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after shutdown (exit status -15); a drained
        # daemon has shut down cleanly, so it exits 0 instead.
        self._captured_signals.clear()

    @staticmethod
    def _exit_after(deadline: float) -> None:
        while time.monotonic() < deadline:
            time.sleep(0.2)
        os._exit(1)  # the drain took too long; the next start resumes the work
