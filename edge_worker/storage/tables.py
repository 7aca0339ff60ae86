"""Imports every module that declares a table on ``storage.db.METADATA``.

Contract: every table the daemon owns is declared in a module of ``edge_worker.storage``
(the cost ledger's in :mod:`.cost_entries`, the alert outbox's in :mod:`.alert_outbox`), so
this list imports storage modules only and storage imports nothing above it.
"""

from __future__ import annotations

import edge_worker.storage.access
import edge_worker.storage.activity_log
import edge_worker.storage.alert_outbox
import edge_worker.storage.cost_entries
import edge_worker.storage.events
import edge_worker.storage.intake_pause
import edge_worker.storage.issue_links
import edge_worker.storage.stops
import edge_worker.storage.tokens
import edge_worker.storage.work  # noqa: F401
