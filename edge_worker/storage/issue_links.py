"""Each issue's Linear URL: the ``ew_issue_links`` side table.

``ew_work_items`` predates the need and ``create_tables`` only creates missing tables, so
the URL lives beside it, keyed by issue id. The orchestration records it from the issue it
reads when it starts (:func:`remember`); the console links *History* and *Issue* to it.

Contract: :func:`remember` upserts (the latest URL wins: an issue moved to another team
gets a new one); :func:`urls` reads many at once; an issue never recorded has none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from edge_worker.storage.db import METADATA

issue_links = sa.Table(
    "ew_issue_links",
    METADATA,
    sa.Column("issue_id", sa.String(100), primary_key=True),
    sa.Column("url", sa.String(1000), nullable=False),
)


def remember(conn: sa.Connection, issue_id: str, url: str) -> None:
    """Record ``url`` as the Linear URL of ``issue_id``."""
    updated = conn.execute(
        sa.update(issue_links).where(issue_links.c.issue_id == issue_id).values(url=url)
    )
    if updated.rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(issue_links).values(issue_id=issue_id, url=url))
        except sa.exc.IntegrityError:  # inserted meanwhile by another daemon
            conn.execute(
                sa.update(issue_links).where(issue_links.c.issue_id == issue_id).values(url=url)
            )


def urls(conn: sa.Connection, issue_ids: Sequence[str]) -> dict[str, str]:
    """``{issue id: url}`` of those of ``issue_ids`` that have one."""
    if not issue_ids:
        return {}
    query = sa.select(issue_links.c.issue_id, issue_links.c.url).where(
        issue_links.c.issue_id.in_(list(issue_ids))
    )
    return {str(i): str(u) for i, u in conn.execute(query)}
