"""DBOS Transact set-up: one system database (the daemon's database) and the queues.

Contract:
- ``configure_dbos(settings)`` creates the DBOS instance for this process (once) with the
  daemon's database URL and a stable ``executor_id`` (so this machine's unfinished
  workflows resume when it comes back). The application version is DBOS's own hash of the
  workflow code: a workflow is only ever replayed by the code that started it, since a
  replay through changed code would not be deterministic (see the upgrade section of
  ``docs/operations.md``).
- The caller registers the workflows first
  (:func:`edge_worker.workflow_registry.register_all`): this module imports no workflow
  module, so the workflows can import it. The queue names live in :mod:`edge_worker.queues`
  (re-exported here).
- ``launch()`` starts DBOS (recovering this executor's pending workflows) and registers the
  queues; call it from inside the running event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbos import DBOS

from edge_worker.queues import CLOUD_QUEUE as CLOUD_QUEUE
from edge_worker.queues import LOCAL_QUEUE as LOCAL_QUEUE
from edge_worker.queues import TRIGGER_QUEUE as TRIGGER_QUEUE
from edge_worker.settings import Settings
from edge_worker.storage.db import ensure_sqlite_dir

APP_NAME = "edge-worker"


def dbos_url(settings: Settings) -> str:
    """The system database URL in the form DBOS expects.

    On PostgreSQL, DBOS's tables live in the daemon's database (schema ``dbos``). On
    SQLite they get a file of their own beside it (``<name>-dbos.sqlite``): SQLite has one
    writer per file, and webhook commits must not queue behind workflow bookkeeping (a
    burst of deliveries took 45 % longer to answer on a shared file).
    """
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(path.stem + '-dbos' + path.suffix)}"
    if url.startswith("postgresql+psycopg://"):
        return "postgresql://" + url.removeprefix("postgresql+psycopg://")
    return url


def configure_dbos(settings: Settings) -> DBOS:
    """Create the process's DBOS instance (replacing a previous one, for tests).

    Call :func:`edge_worker.workflow_registry.register_all` before this.
    """
    url = dbos_url(settings)
    ensure_sqlite_dir(url)
    config: dict[str, Any] = {
        "name": APP_NAME,
        "system_database_url": url,
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
    }
    return DBOS(config=config)  # type: ignore[arg-type]


async def launch(settings: Settings) -> None:
    """Launch DBOS and register the daemon's queues (idempotent across daemons)."""
    DBOS.launch()
    await DBOS.register_queue_async(TRIGGER_QUEUE, worker_concurrency=8, polling_interval_sec=0.2)
    await DBOS.register_queue_async(
        CLOUD_QUEUE,
        global_concurrency=settings.global_parallel,
        limiter={"limit": settings.codegen.creates_per_minute, "period": 60.0},
        polling_interval_sec=0.5,
    )
    await DBOS.register_queue_async(
        LOCAL_QUEUE,
        worker_concurrency=max(1, settings.global_parallel // 2),
        polling_interval_sec=0.5,
    )


def shutdown(timeout_seconds: int = 0) -> None:
    """Stop DBOS; unfinished workflows stay pending and resume on the next launch."""
    DBOS.destroy(workflow_completion_timeout_sec=timeout_seconds)
