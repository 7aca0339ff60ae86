"""The cost ledger's tables (the ledger itself is :mod:`edge_worker.costs.ledger`).

Contract: ``cost_entries`` holds one row per planner call, executor run, resume, review or
verification, keyed by the caller's deterministic ``entry_id``; money is integer
micro-dollars (``usd_micros``, ``NULL`` when unpriced) and ``day`` is the local date of
``created_at``. ``cost_entry_details`` holds, per entry that has any, what
``cost_entries`` has no column for (a table of its own, so databases made before it need
no migration). Names and columns are those of existing databases: do not change them.
"""

from __future__ import annotations

import sqlalchemy as sa

from edge_worker.storage.db import METADATA

COST_ENTRIES = sa.Table(
    "cost_entries",
    METADATA,
    sa.Column("entry_id", sa.String, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("day", sa.Date, nullable=False, index=True),
    sa.Column("issue_id", sa.String, nullable=False, index=True),
    sa.Column("issue_identifier", sa.String, nullable=False),
    sa.Column("subtask_key", sa.String, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("executor", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("usd_micros", sa.BigInteger, nullable=True),
)


COST_ENTRY_DETAILS = sa.Table(
    "cost_entry_details",
    METADATA,
    sa.Column("entry_id", sa.String, primary_key=True),
    sa.Column("uncertain", sa.Boolean, nullable=False),
    sa.Column("cache_write_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("reasoning_output_tokens", sa.BigInteger, nullable=False),
)
"""Per entry, what ``cost_entries`` has no column for (absent: certain, zero tokens)."""
