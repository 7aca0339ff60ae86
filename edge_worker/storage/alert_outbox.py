"""The alert outbox's table (the outbox itself is :mod:`edge_worker.alerts.outbox`).

Contract: one row per alert and channel, unique on ``(dedupe_key, channel)``; a row is
pending until ``sent_at`` or ``failed_reason`` is set, and ``lease_until`` is the
compare-and-set lease a sender holds while sending. Names and columns are those of
existing databases: do not change them.
"""

from __future__ import annotations

import sqlalchemy as sa

from edge_worker.storage.db import METADATA

alert_outbox = sa.Table(
    "ew_alert_outbox",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(400), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("failed_reason", sa.String(300), nullable=True),
    sa.UniqueConstraint("dedupe_key", "channel", name="ew_alert_outbox_once"),
)
