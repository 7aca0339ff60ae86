"""The daemon-under-test helpers (shared with the demo)."""

from edge_worker.sandbox.daemon import AGENT, SECRET, Daemon, free_port, wait_for

__all__ = ["AGENT", "SECRET", "Daemon", "free_port", "wait_for"]
