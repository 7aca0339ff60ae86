"""Imports every module that declares a table on ``storage.db.METADATA``."""

from __future__ import annotations

import edge_worker.alerts.outbox
import edge_worker.costs.ledger
import edge_worker.storage.access
import edge_worker.storage.activity_log
import edge_worker.storage.events
import edge_worker.storage.intake_pause
import edge_worker.storage.issue_links
import edge_worker.storage.stops
import edge_worker.storage.tokens
import edge_worker.storage.work  # noqa: F401
