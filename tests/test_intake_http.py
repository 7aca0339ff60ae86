"""``POST /webhooks/linear`` on a real daemon process over loopback, real SQLite.

Each row of the intake contract: what is refused (and how), what is stored, and that the
answer comes only after the commit.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_worker.sandbox import payloads as p
from edge_worker.webhooks.verify import sign
from tests.support.daemon import AGENT, SECRET, Daemon, wait_for


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("intake"), EDGE_WORKER_ALLOWED_TEAMS="ENG").start()
    yield d
    d.stop()


def rows(db: Path, where: str = "1=1") -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM ew_webhook_events WHERE {where}").fetchall()
    finally:
        conn.close()


def test_valid_delivery_is_accepted_and_stored_before_the_answer(daemon: Daemon) -> None:
    response = daemon.send(p.issue_assigned("iss-valid", AGENT), delivery="d-valid")
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    stored = rows(daemon.sqlite_path, "delivery_id = 'd-valid'")
    assert len(stored) == 1
    assert stored[0]["decision"] == "start"
    assert stored[0]["issue_identifier"] == "ENG-1"


def test_accepted_start_becomes_a_workflow(daemon: Daemon) -> None:
    daemon.send(p.issue_assigned("iss-wf", AGENT), delivery="d-wf")
    row = wait_for(
        lambda: rows(daemon.sqlite_path, "delivery_id='d-wf' AND workflow_id IS NOT NULL")
    )
    assert row[0]["workflow_id"].startswith("trigger-")


def test_tampered_body_is_refused(daemon: Daemon) -> None:
    body = json.dumps(p.issue_assigned("iss-t", AGENT)).encode()
    signature = sign(SECRET.encode(), body)
    response = daemon.post(body.replace(b"iss-t", b"iss-x"), signature=signature, delivery="d-t")
    assert response.status_code == 401
    assert rows(daemon.sqlite_path, "delivery_id = 'd-t'") == []


def test_wrong_secret_is_refused(daemon: Daemon) -> None:
    body = json.dumps(p.issue_assigned("iss-w", AGENT)).encode()
    response = daemon.post(body, signature=sign(b"not-the-secret", body))
    assert response.status_code == 401


def test_missing_signature_is_refused(daemon: Daemon) -> None:
    body = json.dumps(p.issue_assigned("iss-m", AGENT)).encode()
    assert daemon.post(body).status_code == 401


def test_stale_and_future_timestamps_are_refused(daemon: Daemon) -> None:
    stale = p.issue_assigned("iss-s", AGENT, timestamp_ms=p.now_ms() - 61_000)
    future = p.issue_assigned("iss-f", AGENT, timestamp_ms=p.now_ms() + 61_000)
    assert daemon.send(stale).status_code == 401
    assert daemon.send(future).status_code == 401
    assert "stale" in daemon.send(stale).json()["error"]


def test_body_without_webhook_timestamp_is_refused_even_with_a_fresh_header(
    daemon: Daemon,
) -> None:
    # The Linear-Timestamp header is not signed: a replayed body could carry any header.
    unstamped = p.issue_assigned("iss-h", AGENT)
    del unstamped["webhookTimestamp"]
    now = str(int(time.time() * 1000))
    with_header = daemon.send(unstamped, delivery="d-h1", headers={"Linear-Timestamp": now})
    assert with_header.status_code == 401
    assert with_header.json()["error"] == "missing webhookTimestamp in the signed body"
    assert daemon.send(unstamped, delivery="d-h2").status_code == 401
    assert rows(daemon.sqlite_path, "delivery_id IN ('d-h1', 'd-h2')") == []


def test_non_numeric_webhook_timestamp_is_refused(daemon: Daemon) -> None:
    stamped_text = p.issue_assigned("iss-n", AGENT)
    stamped_text["webhookTimestamp"] = str(p.now_ms())
    response = daemon.send(stamped_text, delivery="d-n")
    assert response.status_code == 401
    assert "not a number" in response.json()["error"]


def test_oversized_body_is_refused_without_reading_it(daemon: Daemon) -> None:
    body = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    response = daemon.post(body, signature=sign(SECRET.encode(), body))
    assert response.status_code == 413


def test_oversized_chunked_body_is_refused(daemon: Daemon) -> None:
    import httpx

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = httpx.post(daemon.url + "/webhooks/linear", content=chunks(), timeout=10)
    assert response.status_code == 413


def test_malformed_json_and_json_array_are_refused(daemon: Daemon) -> None:
    bad = b'{"type": "Issue", '
    assert daemon.post(bad, signature=sign(SECRET.encode(), bad)).status_code == 400
    array = b"[1, 2, 3]"
    response = daemon.post(array, signature=sign(SECRET.encode(), array))
    assert response.status_code == 400
    assert "object" in response.json()["error"]


def test_unknown_event_type_is_ignored_and_recorded(daemon: Daemon) -> None:
    payload = {"type": "Cycle", "action": "create", "webhookTimestamp": p.now_ms(), "data": {}}
    response = daemon.send(payload, delivery="d-unknown")
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert rows(daemon.sqlite_path, "delivery_id = 'd-unknown'")[0]["decision"] == "ignore"


def test_duplicate_delivery_id_is_a_duplicate(daemon: Daemon) -> None:
    payload = p.issue_assigned("iss-dup", AGENT)
    assert daemon.send(payload, delivery="d-dup").json()["status"] == "accepted"
    assert daemon.send(payload, delivery="d-dup").json()["status"] == "duplicate"
    assert len(rows(daemon.sqlite_path, "issue_id = 'iss-dup'")) == 1


def test_same_assignment_with_two_delivery_ids_starts_once(daemon: Daemon) -> None:
    payload = p.issue_assigned("iss-twice", AGENT, updated_at="2026-05-01T10:00:00.000Z")
    assert daemon.send(payload, delivery="d-a").json()["status"] == "accepted"
    assert daemon.send(payload, delivery="d-b").json()["status"] == "duplicate"
    assert len(rows(daemon.sqlite_path, "issue_id = 'iss-twice'")) == 1


def test_self_authored_event_is_ignored(daemon: Daemon) -> None:
    response = daemon.send(p.comment_created("c-self", "iss-valid", "done", user_id=AGENT))
    assert response.json() == {
        "status": "ignored",
        "decision": "ignore",
        "reason": "written by our own user",
    }


def test_team_not_allowed_is_ignored(daemon: Daemon) -> None:
    ops = p.team("team-ops", "OPS", "Operations")
    response = daemon.send(p.issue_assigned("iss-ops", AGENT, team_payload=ops))
    assert response.json()["status"] == "ignored"
    assert "ALLOWED_TEAMS" in response.json()["reason"]


def test_each_trigger_kind_over_http(daemon: Daemon) -> None:
    issue = "iss-kinds"
    start = daemon.send(p.agent_session_created("sess-k", issue, AGENT)).json()
    assert (start["status"], start["decision"]) == ("accepted", "start")
    prompted = daemon.send(p.agent_session_prompted("sess-k", issue, AGENT, "more")).json()
    assert prompted["decision"] == "follow_up"
    stop = daemon.send(p.agent_session_prompted("sess-k", issue, AGENT, "", signal="stop"))
    assert stop.json()["decision"] == "stop"
    unassigned = daemon.send(p.issue_unassigned(issue, AGENT)).json()
    assert unassigned["decision"] == "stop"
    note = daemon.send(p.notification("issueAssignedToYou", "iss-note", AGENT)).json()
    assert note["decision"] == "start"


def test_comment_on_an_issue_we_do_not_work_on_is_ignored(daemon: Daemon) -> None:
    other = daemon.send(p.comment_created("c-other", "iss-never", "hi")).json()
    assert other["reason"] == "not an issue we work on"


def test_refusals_are_logged_with_delivery_id_but_never_secret_or_body(daemon: Daemon) -> None:
    body = json.dumps(p.issue_assigned("iss-log", AGENT, title="TOP-SECRET-TITLE")).encode()
    daemon.post(body, signature="00" * 32, delivery="d-logged")
    log = wait_for(lambda: "d-logged" in daemon.log_text() and daemon.log_text())
    line = next(line for line in log.splitlines() if "d-logged" in line)
    assert json.loads(line)["reason"] == "bad or missing Linear-Signature"
    assert SECRET not in log
    assert "TOP-SECRET-TITLE" not in log


def test_health_and_readiness(daemon: Daemon) -> None:
    assert httpx.get(daemon.url + "/healthz").json() == {"status": "alive"}
    assert httpx.get(daemon.url + "/readyz").json() == {"status": "ready"}


def test_a_concurrent_burst_gets_its_own_answer_each_and_no_row_twice(daemon: Daemon) -> None:
    """Deliveries answered from one group commit each get their own outcome."""
    sends: list[tuple[str, bytes, str]] = []  # (expectation group, body, delivery id)
    for i in range(30):  # the same delivery twice, at once
        body = json.dumps(p.issue_assigned(f"iss-b{i}", AGENT, identifier=f"ENG-{500 + i}"))
        sends += [(f"same-delivery-{i}", body.encode(), f"d-burst-{i}")] * 2
    for i in range(10):  # the same assignment under two delivery ids, at once
        body = json.dumps(p.issue_assigned(f"iss-c{i}", AGENT, identifier=f"ENG-{600 + i}"))
        sends += [(f"same-change-{i}", body.encode(), f"d-change-{i}-{n}") for n in (1, 2)]
    for i in range(10):
        body = json.dumps({"type": "Cycle", "action": "create", "webhookTimestamp": p.now_ms()})
        sends.append(("ignored", body.encode(), f"d-cycle-{i}"))

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(sends))
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        daemon.url + "/webhooks/linear",
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            "Linear-Delivery": delivery,
                            "Linear-Signature": sign(SECRET.encode(), body),
                        },
                    )
                    for _group, body, delivery in sends
                )
            )

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {200}
    outcomes: dict[str, list[str]] = {}
    for (group, _body, _delivery), response in zip(sends, responses, strict=True):
        outcomes.setdefault(group, []).append(response.json()["status"])
    for group, seen in outcomes.items():
        if group == "ignored":
            assert seen == ["ignored"] * 10
        else:
            assert sorted(seen) == ["accepted", "duplicate"], group
    stored = rows(daemon.sqlite_path, "issue_id LIKE 'iss-b%' OR issue_id LIKE 'iss-c%'")
    assert len(stored) == 40  # one row per issue, whatever the delivery ids
    assert len(rows(daemon.sqlite_path, "delivery_id LIKE 'd-cycle-%'")) == 10
    # Each answer's log line names its own delivery and issue.
    logged = wait_for(
        lambda: (
            (
                lines := [
                    json.loads(line)
                    for line in daemon.log_text().splitlines()
                    if '"webhook stored"' in line and "d-burst-" in line
                ]
            )
            and len(lines) == 60
            and lines
        )
    )
    for line in logged:
        number = int(line["delivery_id"].removeprefix("d-burst-"))
        assert line["issue"] == f"ENG-{500 + number}"
