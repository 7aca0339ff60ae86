"""Intake under failure: a crash right after a 200, a store that is down, and Postgres."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from edge_worker.sandbox import payloads as p
from tests.support.daemon import AGENT, Daemon, wait_for
from tests.support.pg import scratch_database, set_connections_allowed


def test_event_survives_a_crash_right_after_the_200(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    daemon.start()
    response = daemon.send(p.issue_assigned("iss-crash", AGENT), delivery="d-crash")
    assert response.json()["status"] == "accepted"
    daemon.kill()
    with sqlite3.connect(daemon.sqlite_path) as conn:
        stored = conn.execute(
            "SELECT decision FROM ew_webhook_events WHERE delivery_id = 'd-crash'"
        ).fetchall()
    assert stored == [("start",)]

    daemon.start()
    try:

        def started() -> list[tuple[str, str]]:
            with sqlite3.connect(daemon.dbos_sqlite_path) as conn:
                return conn.execute(
                    "SELECT name, status FROM workflow_status WHERE name = 'handle_trigger' "
                    "AND status = 'SUCCESS'"
                ).fetchall()

        assert wait_for(started) == [("handle_trigger", "SUCCESS")]
        with sqlite3.connect(daemon.dbos_sqlite_path) as conn:
            orchestrations = conn.execute(
                "SELECT COUNT(*) FROM workflow_status WHERE name = 'orchestrate_issue'"
            ).fetchone()
        assert orchestrations == (1,)  # the event started its work once, not zero or twice
        # A redelivery after the restart is still recognised.
        again = daemon.send(p.issue_assigned("iss-crash", AGENT), delivery="d-crash")
        assert again.json()["status"] == "duplicate"
    finally:
        daemon.stop()


@pytest.mark.postgres
def test_postgres_intake_dedupes_and_dispatches(tmp_path: Path, postgres_url: str) -> None:
    with scratch_database(postgres_url) as url:
        daemon = Daemon(tmp_path, EDGE_WORKER_DATABASE_URL=url).start()
        try:
            payload = p.issue_assigned("iss-pg", AGENT)
            assert daemon.send(payload, delivery="pg-1").json()["status"] == "accepted"
            assert daemon.send(payload, delivery="pg-2").json()["status"] == "duplicate"

            def dispatched() -> list[tuple[str]]:
                with psycopg.connect(url) as conn:
                    return conn.execute(
                        "SELECT workflow_id FROM ew_webhook_events WHERE workflow_id IS NOT NULL"
                    ).fetchall()

            assert len(wait_for(dispatched)) == 1
        finally:
            daemon.stop()


@pytest.mark.postgres
def test_store_down_answers_503_and_recovers(tmp_path: Path, postgres_url: str) -> None:
    with scratch_database(postgres_url) as url:
        database = url.rsplit("/", 1)[1]
        daemon = Daemon(tmp_path, EDGE_WORKER_DATABASE_URL=url).start()
        try:
            set_connections_allowed(postgres_url, database, False)
            down = daemon.send(p.issue_assigned("iss-down", AGENT), delivery="down-1")
            assert down.status_code == 503
            assert "store unavailable" in down.json()["error"]
            refused = wait_for(
                lambda: next(
                    (
                        json.loads(line)
                        for line in daemon.log_text().splitlines()
                        if '"down-1"' in line and "store unavailable" in line
                    ),
                    None,
                )
            )
            assert refused["issue"] == p.issue_assigned("iss-down", AGENT)["data"]["identifier"]
            set_connections_allowed(postgres_url, database, True)
            up = wait_for(
                lambda: (
                    (
                        r := daemon.send(p.issue_assigned("iss-down", AGENT), delivery="down-1")
                    ).status_code
                    == 200
                    and r
                )
            )
            assert up.json()["status"] == "accepted"  # the 503 stored nothing
        finally:
            set_connections_allowed(postgres_url, database, True)
            daemon.stop()
