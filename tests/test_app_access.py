"""The app's revocation record and the triggers it keeps (``storage/access.py``), on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from edge_worker.storage import access
from edge_worker.storage.events import webhook_events
from edge_worker.storage.work import claim
from tests.support.pg import engine_for_param


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with engine_for_param(request, tmp_path / "access.sqlite") as made:
        yield made


def add_event(
    conn: sa.Connection, n: int, issue_id: str, team_id: str | None, workflow: str | None
) -> None:
    conn.execute(
        sa.insert(webhook_events).values(
            delivery_id=f"d-{n}",
            dedupe_key=f"k-{n}",
            decision="start",
            reason="assigned to us",
            issue_id=issue_id,
            detail=json.dumps({"team_id": team_id}),
            received_at=datetime.now(UTC),
            dispatched_at=datetime.now(UTC) if workflow else None,
            workflow_id=workflow,
        )
    )


def test_revocation_is_recorded_once_and_counts_the_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert access.revocation(conn) is None
        access.mark_revoked(conn, reason="first", oauth_client_id="c-1")
        access.mark_revoked(conn, reason="second", oauth_client_id="c-1")
        add_event(conn, 1, "iss-1", "team-a", access.REFUSED_WORKFLOW_ID)
        add_event(conn, 2, "iss-2", "team-a", "trigger-abc")
    with engine.connect() as conn:
        revoked = access.revocation(conn)
    assert revoked is not None
    assert (revoked.reason, revoked.oauth_client_id, revoked.refused_triggers) == (
        "first",
        "c-1",
        1,
    )
    assert "(1 stored trigger(s) kept)" in revoked.describe()
    assert "edge-worker reinstate" in revoked.describe()


def test_reinstate_requeues_only_the_refused_triggers(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        access.mark_revoked(conn, reason="revoked", oauth_client_id=None)
        add_event(conn, 1, "iss-1", "team-a", access.REFUSED_WORKFLOW_ID)
        add_event(conn, 2, "iss-2", "team-a", "trigger-abc")
    with engine.begin() as conn:
        assert access.reinstate(conn) == 1
    with engine.connect() as conn:
        assert access.revocation(conn) is None
        query = sa.select(webhook_events.c.delivery_id, webhook_events.c.workflow_id)
        rows = {delivery: workflow for delivery, workflow in conn.execute(query)}
    assert rows == {"d-1": None, "d-2": "trigger-abc"}


def test_active_work_and_the_teams_of_its_issues(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for issue in ("iss-1", "iss-2", "iss-3"):
            claim(conn, issue_id=issue, identifier=None, workflow_id=f"wf-{issue}", session_id=None)
        add_event(conn, 1, "iss-1", None, "t-1")  # a follow-up without the team...
        add_event(conn, 2, "iss-1", "team-a", "t-2")  # ...and the start that had it
        add_event(conn, 3, "iss-2", "team-b", "t-3")
    with engine.connect() as conn:
        active = access.active_work(conn)
        teams = access.issue_teams(conn, [issue for issue, _ in active])
    assert sorted(active) == [("iss-1", "wf-iss-1"), ("iss-2", "wf-iss-2"), ("iss-3", "wf-iss-3")]
    assert teams == {"iss-1": "team-a", "iss-2": "team-b"}  # iss-3: unknown


def test_a_probe_reads_the_revocation_without_counting(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert not access.is_revoked(conn)
        access.mark_revoked(conn, reason="revoked", oauth_client_id=None)
        assert access.is_revoked(conn)
        probe = access.revocation(conn, count_refused=False)
    assert probe is not None and probe.refused_triggers is None
    assert "(stored triggers are kept)" in probe.describe()
