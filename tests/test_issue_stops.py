"""The recorded stop per issue: the latest stop wins, and it stops only the triggers
received before it (on SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from edge_worker.storage import stops
from tests.support.costs import engine  # noqa: F401  (the two-database fixture)


def _record(conn: sa.Connection, seq: int, key: str, session: str | None = "s-1") -> None:
    stops.record(
        conn, issue_id="i-1", seq=seq, dedupe_key=key, session_id=session, actor_name="Ada"
    )


def test_a_stop_stops_only_what_was_received_before_it(engine: sa.Engine) -> None:  # noqa: F811
    stops.issue_stops.create(engine, checkfirst=True)
    with engine.begin() as conn:
        assert stops.stop_after(conn, "i-1", 5) is None
        _record(conn, 10, "stop-a")
    with engine.connect() as conn:
        found = stops.stop_after(conn, "i-1", 5)
        assert found == stops.Stop(10, "stop-a", "s-1", "Ada")
        assert stops.stop_after(conn, "i-1", 10) is None  # the stop itself
        assert stops.stop_after(conn, "i-1", 11) is None  # a delegation after the stop
        assert stops.stop_after(conn, "i-2", 1) is None  # another issue
        assert stops.stop_after(conn, "i-1", None) is None  # a trigger from before seq


def test_the_latest_stop_is_kept_whatever_order_they_are_recorded_in(
    engine: sa.Engine,  # noqa: F811
) -> None:
    stops.issue_stops.create(engine, checkfirst=True)
    with engine.begin() as conn:
        _record(conn, 20, "stop-late", session=None)
        _record(conn, 10, "stop-early")  # handled after the later one: kept out
        _record(conn, 20, "stop-late", session=None)  # a repeated step
    with engine.connect() as conn:
        assert stops.stop_after(conn, "i-1", 15) == stops.Stop(20, "stop-late", None, "Ada")
        rows = conn.execute(sa.select(sa.func.count()).select_from(stops.issue_stops)).scalar()
    assert rows == 1
