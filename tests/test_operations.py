"""Operating the daemon: drain on SIGTERM, readiness, metrics, status, recover."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from edge_worker.app import build_app
from edge_worker.costs.ledger import CostEntry, Ledger
from edge_worker.executors.process import group_alive
from edge_worker.sandbox import payloads as p
from edge_worker.sandbox.linear import send_webhook
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from edge_worker.settings import Settings
from edge_worker.storage import work
from edge_worker.storage.db import create_engine_for, create_tables
from tests.support.daemon import AGENT, SECRET, Daemon, wait_for

BIN = Path(sys.executable).parent / "edge-worker"


def test_draining_daemon_refuses_webhooks_with_503_and_is_not_ready(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        linear={
            "webhook_secret": SECRET,
            "agent_user_id": AGENT,
            "api_key": "k",
            "api_url": "http://127.0.0.1:9/graphql",
        },
        planner="static",
        planner_static_plan='{"summary": "s", "subtasks": [{"key": "a", "title": "t", '
        '"description": "d", "role": "scoper"}]}',
    )
    app = build_app(settings)
    with TestClient(app) as client:
        body = json.dumps(p.issue_assigned("iss-d", AGENT)).encode()
        from edge_worker.webhooks.verify import sign

        headers = {"Linear-Signature": sign(SECRET.encode(), body), "Linear-Delivery": "dd"}
        app.state.daemon.draining = True
        refused = client.post("/webhooks/linear", content=body, headers=headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        app.state.daemon.draining = False
        assert (
            client.post("/webhooks/linear", content=body, headers=headers).json()["status"]
            == "accepted"
        )


def test_sigterm_exits_cleanly_and_a_second_signal_at_once(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "a").start()
    started = time.monotonic()
    assert daemon.stop(timeout=30) == 0
    assert time.monotonic() - started < 30

    daemon = Daemon(tmp_path / "b").start()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) in (0, 130)


@pytest.mark.timeout(900)
def test_drain_stops_local_agents_within_the_limit_and_work_resumes(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path) as world:
        for key in ("add-function", "multiply-function"):  # the two roots run at the drain:
            # their first run hangs (ignoring SIGTERM); the resumed session finishes
            world.tasks[key]["runs"].insert(0, {"behaviour": "hang_ignore_term"})
        issue_id = world.new_issue()
        env = world.daemon_env(
            EDGE_WORKER_DRAIN_SECONDS="8", EDGE_WORKER_CLAUDE__KILL_GRACE_SECONDS="1"
        )
        daemon = Daemon(tmp_path / "state", **env).start()
        send_webhook(
            daemon.url + "/webhooks/linear",
            WEBHOOK_SECRET,
            world.linear.issue_assigned(issue_id, field="assigneeId"),
        )

        # Both roots' agents must be running before the drain: a root that starts only
        # after the restart would run its hanging first script with no drain to end it.
        def both_running() -> list[int] | None:
            found = _agent_pgids(tmp_path / "state")
            return found if len(found) == 2 else None

        pgids = wait_for(both_running, timeout=240)
        started = time.monotonic()
        assert daemon.stop(timeout=120) == 0
        # The agents ignore SIGTERM: only the drain's kill at its 8 s limit ends them, so
        # ending well before "never" (the hang) shows the limit; the margin is for a
        # loaded machine (the drain's exact timing is not a test's business).
        assert time.monotonic() - started < 8 + 60
        assert not any(group_alive(pgid) for pgid in pgids), "agent processes survived the drain"

        daemon.start()
        try:
            state = wait_for(lambda: _terminal_state(daemon, issue_id), timeout=480)
            assert state == "done"
        finally:
            daemon.stop()


def _agent_pgids(state_dir: Path) -> list[int]:
    """The process groups of fake agents working in this daemon's worktrees (only theirs:
    other tests' agents on the same machine are none of this test's business)."""
    out = subprocess.run(["pgrep", "-f", "fake_claude.py"], capture_output=True, text=True)
    pgids = []
    for pid in out.stdout.split():
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
            if not cwd.is_relative_to(state_dir.resolve()):
                continue
            pgids.append(os.getpgid(int(pid)))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return sorted(set(pgids))


def _terminal_state(daemon: Daemon, issue_id: str) -> str | None:
    import sqlite3

    with sqlite3.connect(daemon.sqlite_path) as conn:
        row = conn.execute(
            "SELECT state FROM ew_work_items WHERE issue_id = ?", (issue_id,)
        ).fetchone()
    return row[0] if row and row[0] in work.TERMINAL_STATES else None


def test_status_lists_issues_with_progress_and_spend(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    engine = create_engine_for(settings.resolved_database_url)
    create_tables(engine)
    with engine.begin() as conn:
        work.claim(conn, issue_id="i-1", identifier="ENG-7", workflow_id="wf-1", session_id=None)
        work.set_state(conn, "i-1", "wf-1", "working", subtasks_total=3)
        work.track_subtask(conn, "i-1", "a", "wf-1-a", "passed", "claude-code")
        work.track_subtask(conn, "i-1", "b", "wf-1-b", "running", "codegen")
    ledger = Ledger(engine, "UTC")
    ledger.record(
        CostEntry(
            entry_id="e1",
            issue_id="i-1",
            issue_identifier="ENG-7",
            kind="run",
            executor="claude-code",
            usd=1.25,
        )
    )
    ledger.record(
        CostEntry(
            entry_id="e2",
            issue_id="i-1",
            issue_identifier="ENG-7",
            kind="run",
            executor="codegen",
            usd=None,
        )
    )
    engine.dispose()
    env = {**os.environ, "EDGE_WORKER_STATE_DIR": str(tmp_path)}
    table = subprocess.run([str(BIN), "status"], env=env, capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    assert "ENG-7" in table.stdout and "working" in table.stdout and "1/3" in table.stdout
    assert "$1.25 + 1 unpriced run" in table.stdout
    raw = subprocess.run([str(BIN), "status", "--json"], env=env, capture_output=True, text=True)
    row = json.loads(raw.stdout)[0]
    assert (row["identifier"], row["done"], row["total"], row["spend_usd"], row["unpriced"]) == (
        "ENG-7",
        1,
        3,
        1.25,
        1,
    )


def test_metrics_expose_intake_and_state(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path).start()
    try:
        daemon.send(p.issue_assigned("iss-m", AGENT))
        daemon.post(b"{}", signature="bad")
        text = wait_for(
            lambda: (
                (t := httpx.get(daemon.url + "/metrics").text)
                and "edge_worker_orchestrations{" in t
                and t
            )
        )
        assert 'edge_worker_webhooks_total{result="accepted"} 1.0' in text
        assert 'edge_worker_webhooks_total{result="401"} 1.0' in text
        assert "edge_worker_intake_seconds_count 2.0" in text
    finally:
        daemon.stop()


def test_recover_is_refused_for_bad_input(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, EDGE_WORKER_EXECUTOR_ID="alpha").start()
    try:
        own = httpx.post(daemon.url + "/admin/recover", json={"executor_id": "alpha"})
        assert own.status_code == 400
        bad = httpx.post(daemon.url + "/admin/recover", content=b"nope")
        assert bad.status_code == 400
        result = subprocess.run(
            [str(BIN), "recover", "--executor-id", "ghost", "--url", daemon.url],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert "recovered 0 workflow(s) of ghost onto alpha" in result.stdout
    finally:
        daemon.stop()


def test_recover_without_a_daemon_says_so() -> None:
    result = subprocess.run(
        [str(BIN), "recover", "--executor-id", "x", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "cannot reach the daemon" in result.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"EDGE_WORKER_LINEAR__WEBHOOK_SECRET": ""}, "EDGE_WORKER_LINEAR__WEBHOOK_SECRET"),
        ({"EDGE_WORKER_MAX_PARALLEL": "zero"}, "EDGE_WORKER_MAX_PARALLEL"),
        ({"EDGE_WORKER_CONFIG": "/nonexistent.toml"}, "EDGE_WORKER_CONFIG"),
    ],
)
def test_broken_configuration_stops_start_up_naming_the_setting(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")}
    base.update(
        {
            "EDGE_WORKER_STATE_DIR": str(tmp_path),
            "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": "s",
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": "a",
            "EDGE_WORKER_LINEAR__API_KEY": "k",
            "EDGE_WORKER_ANTHROPIC__API_KEY": "k",
        }
    )
    base.update(env)
    if env.get("EDGE_WORKER_LINEAR__WEBHOOK_SECRET") == "":
        del base["EDGE_WORKER_LINEAR__WEBHOOK_SECRET"]
    result = subprocess.run(
        [str(BIN), "serve", "--port", "9"], env=base, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_masks_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")}
    env.update(
        {
            "EDGE_WORKER_STATE_DIR": str(tmp_path),
            "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": "very-secret-value",
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": "a",
            "EDGE_WORKER_LINEAR__API_KEY": "lin_api_secret_key",
            "EDGE_WORKER_ANTHROPIC__API_KEY": "sk-ant-secret",
        }
    )
    result = subprocess.run([str(BIN), "check"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for secret in ("very-secret-value", "lin_api_secret_key", "sk-ant-secret"):
        assert secret not in result.stdout + result.stderr
    assert json.loads(result.stdout)["linear"]["webhook_secret"] == "**********"
