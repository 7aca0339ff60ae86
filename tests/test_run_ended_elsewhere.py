"""A run whose sub-task another daemon's orchestration ended is stopped where it runs.

With several daemons, a stop (or the issue's time limit) is handled by the daemon that
runs the issue's orchestration, which cannot reach a run followed by another daemon. The
follow step watches the sub-task's recorded state instead. Here the real daemon follows a
long local run; the sub-task's row is then ended in the shared database exactly as the
other daemon's orchestration writes it, and this daemon must stop the run at once, record
what it cost, and say nothing more in the session.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_worker.orchestration import texts
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NATURAL_END_SECONDS = 2000 * 0.2  # what the scripted run would take left alone


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] == "add-function"]
    with SandboxWorld(tmp_path / "world", plan={**plan, "subtasks": chosen}) as started:
        started.tasks["add-function"] = {
            "runs": [{"text": "Slowly.", "turns": 2000, "delay_seconds": 0.2, "cost_usd": 0.3}]
        }
        yield started


def test_a_run_ended_by_another_daemon_is_stopped_here_and_its_cost_recorded(
    world: SandboxWorld, tmp_path: Path
) -> None:
    issue_id = world.new_issue()
    env = {
        "EDGE_WORKER_STRATEGY": "local-only",
        "EDGE_WORKER_LINEAR__ACTIVITY_INTERVAL_SECONDS": "1",
    }
    with running(world, tmp_path / "state", **env) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = str(created.payload["agentSession"]["id"])
        e2e.send(created)
        identifier = world.linear.store.find_issue(issue_id).identifier
        wait_until(lambda: e2e.agent_calls(identifier, "add-function"), timeout=60)
        wait_until(
            lambda: (
                e2e.query(
                    "SELECT state FROM ew_subtasks WHERE issue_id = ? AND key = 'add-function'",
                    issue_id,
                )
                == [("running",)]
            ),
            timeout=60,
        )
        assert [r for r in e2e.ledger(issue_id) if r["subtask_key"] == "add-function"] == []

        # What the other daemon's orchestration writes when it stops the issue.
        with sqlite3.connect(e2e.daemon.sqlite_path, timeout=30) as conn:
            conn.execute(
                "UPDATE ew_subtasks SET state = 'cancelled' WHERE issue_id = ? AND key = ?",
                (issue_id, "add-function"),
            )
        ended_at = world.linear.store.clock()

        runs = wait_until(
            lambda: [r for r in e2e.ledger(issue_id) if r["subtask_key"] == "add-function"],
            timeout=NATURAL_END_SECONDS / 4,
        )
        # Recorded once the run stopped, long before its natural end; killed before the
        # CLI printed its total, it is unpriced (and says so), as a stop on one daemon is.
        assert [r["executor"] for r in runs] == ["claude-code"]
        assert "run stopped: its sub-task was ended by the orchestration" in e2e.log()
        said_after = [
            a
            for a in world.linear.store.activities_of(session_id)
            if a.created_at > ended_at + 1.0
            and a.content["type"] in ("thought", "action")
            and a.content.get("body") != texts.ACK_THOUGHT
            and "Slowly" in str(a.content)
        ]
        assert said_after == [], [a.content for a in said_after]
