"""End to end: what takes work away from the agent stops it, and a revoked app loses nothing.

The real daemon against the stand-ins over loopback, the fake agent CLIs running slowly so
that each change arrives while sub-tasks run: undelegation, deletion of the issue, the
agent losing access to the issue's team, and Linear revoking the app (client credentials:
its tokens and grants refused until it is installed again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_worker.orchestration.dispatch import APP_REVOKED_LOG, TRIGGER_REFUSED_LOG
from edge_worker.sandbox.linear import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from edge_worker.sandbox.world import SandboxWorld
from edge_worker.storage.access import REFUSED_WORKFLOW_ID
from edge_worker.storage.work import ACTIVE_STATES
from tests.support.e2e import E2E, alive, running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent / "edge-worker"
SLOW_RUN = {"runs": [{"text": "Slowly done.", "turns": 150, "delay_seconds": 0.2, "cost_usd": 0.1}]}
RUNNING_KEYS = ("add-function", "multiply-function")
LOCAL = {"EDGE_WORKER_STRATEGY": "local-only"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world") as started:
        for key in RUNNING_KEYS:
            started.tasks[key] = SLOW_RUN
        yield started


def wait_running(e2e: E2E, issue_id: str) -> list[int]:
    """The pids of the fake agents of the first two sub-tasks, once both run."""
    identifier = e2e.world.linear.store.find_issue(issue_id).identifier

    def pids() -> list[int] | None:
        found = []
        for key in RUNNING_KEYS:
            calls = e2e.agent_calls(identifier, key)
            if not calls or not alive(calls[-1]["pid"]):
                return None
            found.append(int(calls[-1]["pid"]))
        return found

    return list(wait_until(pids, timeout=60))


def assert_work_stopped(e2e: E2E, issue_id: str, pids: list[int]) -> None:
    assert e2e.wait_end(issue_id) == "stopped", e2e.log()[-3000:]
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=15)
    rows = e2e.subtask_rows(issue_id)
    assert {rows[key][0] for key in RUNNING_KEYS} == {"cancelled"}


def test_undelegation_stops_the_work(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        e2e.assign(issue_id, field="delegateId")
        pids = wait_running(e2e, issue_id)
        e2e.send(world.linear.issue_undelegated(issue_id))
        assert_work_stopped(e2e, issue_id, pids)


def test_deleting_the_issue_stops_the_work(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        e2e.assign(issue_id)
        pids = wait_running(e2e, issue_id)
        e2e.send(world.linear.issue_deleted(issue_id))
        # The issue is gone, so its report cannot be written: the work still ends stopped.
        assert e2e.wait_end(issue_id) == "stopped", e2e.log()[-3000:]
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=15)


def test_losing_access_to_a_team_stops_its_work_and_no_other(
    world: SandboxWorld, tmp_path: Path
) -> None:
    store = world.linear.store
    eng_issue = world.new_issue()
    ops = store.add_team("OPS", "Operations")
    ops_issue = store.add_issue("Rotate the logs", "Keep a week of logs.", team_id=ops.id).id
    with running(world, tmp_path / "state", **LOCAL) as e2e:
        e2e.assign(eng_issue)
        e2e.assign(ops_issue)
        eng_pids = wait_running(e2e, eng_issue)
        ops_pids = wait_running(e2e, ops_issue)

        e2e.send(world.linear.team_access_removed(store.team.id))

        assert_work_stopped(e2e, eng_issue, eng_pids)
        assert "Stopped by a change of the agent's team access." in e2e.report(eng_issue)
        # OPS was not touched: still at work, nothing of it cancelled.
        assert e2e.work_state(ops_issue) in ACTIVE_STATES
        assert "cancelled" not in {state for state, _ in e2e.subtask_rows(ops_issue).values()}
        assert any(alive(pid) for pid in ops_pids)


def status(e2e: E2E, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **e2e.daemon.env}
    return subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_revoked_app_stops_everything_refuses_new_work_and_loses_nothing(
    world: SandboxWorld, tmp_path: Path
) -> None:
    env = {
        **LOCAL,
        "EDGE_WORKER_LINEAR__OAUTH_URL": world.urls["linear"],
        "EDGE_WORKER_LINEAR__CLIENT_ID": DEFAULT_CLIENT_ID,
        "EDGE_WORKER_LINEAR__CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    }
    e2e = E2E(world, tmp_path / "state", **env)
    del e2e.env["EDGE_WORKER_LINEAR__API_KEY"]
    del e2e.daemon.env["EDGE_WORKER_LINEAR__API_KEY"]
    first, second = world.new_issue(), world.new_issue()
    e2e.start()
    try:
        e2e.assign(first)
        pids = wait_running(e2e, first)

        e2e.send(world.linear.app_revoked())
        assert_work_stopped(e2e, first, pids)
        ready = httpx.get(e2e.daemon.url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["status"] == "not ready"
        assert "Linear revoked the app" in ready.json()["reason"]
        assert "edge-worker reinstate" in ready.json()["reason"]
        assert APP_REVOKED_LOG in e2e.log()

        # New work is taken in (Linear must not retry forever) but refused, and kept.
        response = e2e.assign(second)
        assert response.json()["status"] == "accepted"
        refused = wait_until(
            lambda: e2e.query(
                "SELECT workflow_id FROM ew_webhook_events WHERE issue_id = ? "
                "AND workflow_id IS NOT NULL",
                second,
            ),
            timeout=30,
        )
        assert refused == [(REFUSED_WORKFLOW_ID,)]
        assert TRIGGER_REFUSED_LOG in e2e.log()
        assert e2e.work_state(second) is None
        said = status(e2e, "status")
        assert said.returncode == 0, said.stderr
        assert "Linear revoked the app" in said.stdout
        assert "1 stored trigger(s) kept" in said.stdout
        as_json = status(e2e, "status", "--json")
        assert isinstance(json.loads(as_json.stdout), list)  # the rows, as before
        assert "Linear revoked the app" in as_json.stderr

        # Installed again: the operator lifts the refusal and the kept trigger runs.
        world.linear.app_reinstalled()
        reinstated = status(e2e, "reinstate")
        assert reinstated.returncode == 0, reinstated.stderr
        assert "1 refused trigger(s) back in the outbox" in reinstated.stdout
        assert httpx.get(e2e.daemon.url + "/readyz", timeout=10).status_code == 200
        wait_until(lambda: e2e.work_state(second) is not None, timeout=30)
        wait_running(e2e, second)
    finally:
        proc = e2e.daemon.proc
        if proc is not None and proc.poll() is None:
            e2e.stop()
