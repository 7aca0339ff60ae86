"""The daemon-under-test helpers (shared with the demo), and :func:`log_events`."""

import json
from typing import Any

from edge_worker.sandbox.daemon import AGENT, SECRET, Daemon, free_port, wait_for

__all__ = ["AGENT", "SECRET", "Daemon", "free_port", "log_events", "wait_for"]


def log_events(log: str, event: str) -> list[dict[str, Any]]:
    """The JSON records of a daemon's log (one a line; other lines skipped) named ``event``."""
    found = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            found.append(record)
    return found
