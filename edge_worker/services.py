"""The process's long-lived adapters, reachable from DBOS workflows and steps.

DBOS workflows are module-level functions recovered by name after a restart, so they
cannot close over objects made at start-up; they look them up here instead. ``install``
is called once by the daemon (and by tests that run workflows in-process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from edge_worker.settings import Settings


@dataclass
class Services:
    """Adapters shared by workflows: configuration, database, remote clients."""

    settings: Settings
    engine: sa.Engine
    extra: dict[str, Any] = field(default_factory=dict)


_current: Services | None = None


def install(services: Services) -> None:
    """Make ``services`` the process's adapters."""
    global _current
    _current = services


def current() -> Services:
    """The installed adapters; raises if the daemon has not started."""
    if _current is None:
        raise RuntimeError("edge-worker services are not installed (daemon not started)")
    return _current
