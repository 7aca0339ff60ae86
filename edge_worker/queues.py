"""The names of the daemon's DBOS queues.

Contract: the single source of the queue names; this module imports nothing of
``edge_worker``, so workflows (which enqueue on these) and :mod:`edge_worker.runtime` (which
registers them) both import it without importing each other.
"""

from __future__ import annotations

TRIGGER_QUEUE = "ew-triggers"
CLOUD_QUEUE = "ew-cloud-runs"
LOCAL_QUEUE = "ew-local-runs"
