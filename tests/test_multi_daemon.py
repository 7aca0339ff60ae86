"""Several daemons on one PostgreSQL: shared intake, shared queues, a machine lost mid-run.

Two real daemon processes share the database and the stand-ins. A burst of assignments
is sent to both (each delivery to both daemons, as a retried delivery might land), one
daemon is killed with SIGKILL while sub-tasks run, and its unfinished workflows are handed
to the survivor with ``edge-worker recover``. Every issue must end exactly once: done,
with one set of sub-issues and one report comment.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from edge_worker.sandbox.linear import signed_webhook
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from tests.support.daemon import Daemon, wait_for
from tests.support.pg import scratch_database

BIN = Path(sys.executable).parent / "edge-worker"
ISSUES = 3


def _states(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT issue_id, state FROM ew_work_items").fetchall())


def _running_on(url: str, executor: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM dbos.workflow_status WHERE executor_id = %s "
            "AND status = 'PENDING' AND name = 'run_subtask'",
            (executor,),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_daemons_share_work_and_survive_losing_one(tmp_path: Path, postgres_url: str) -> None:
    import httpx

    with scratch_database(postgres_url) as url, SandboxWorld(tmp_path) as world:
        for script in world.tasks.values():
            for run in script["runs"]:
                # long enough that alpha is seen running a sub-task before it finishes
                run["delay_seconds"] = 3.0
        env = world.daemon_env(EDGE_WORKER_DATABASE_URL=url)
        alpha = Daemon(tmp_path / "alpha", **env, EDGE_WORKER_EXECUTOR_ID="alpha").start()
        beta = Daemon(tmp_path / "beta", **env, EDGE_WORKER_EXECUTOR_ID="beta").start()
        try:
            issues = [world.new_issue() for _ in range(ISSUES)]
            outcomes = []
            for issue_id in issues:
                body, headers = signed_webhook(
                    WEBHOOK_SECRET, world.linear.issue_assigned(issue_id, field="assigneeId")
                )
                for daemon in (alpha, beta):  # the same delivery reaches both machines
                    response = httpx.post(
                        daemon.url + "/webhooks/linear", content=body, headers=headers, timeout=60
                    )
                    outcomes.append(response.json()["status"])
            assert outcomes.count("accepted") == ISSUES
            assert outcomes.count("duplicate") == ISSUES

            wait_for(lambda: _running_on(url, "alpha") > 0, timeout=240, interval=0.05)
            alpha.kill()
            recovered = subprocess.run(
                [str(BIN), "recover", "--executor-id", "alpha", "--url", beta.url],
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert recovered.returncode == 0, recovered.stderr
            assert "onto beta" in recovered.stdout

            def all_done() -> dict[str, str] | None:
                states = _states(url)
                finished = {i: s for i, s in states.items() if s in ("done", "failed", "stopped")}
                return finished if len(finished) == ISSUES else None

            final = wait_for(all_done, timeout=480, interval=0.5)
            assert set(final) == set(issues)
            store = world.linear.store
            reports_of_failures = [
                c.body
                for issue_id, state in final.items()
                if state != "done"
                for c in store.comments_on(issue_id)
                if "edge-worker:report" in c.body
            ]
            assert set(final.values()) == {"done"}, (final, reports_of_failures)
            for issue_id in issues:
                children = store.children_of(issue_id)
                assert len(children) == 5, "a sub-issue was duplicated or lost"
                reports = [c for c in store.comments_on(issue_id) if "edge-worker:report" in c.body]
                assert len(reports) == 1
            with psycopg.connect(url) as conn:
                orchestrations = conn.execute(
                    "SELECT COUNT(*) FROM dbos.workflow_status WHERE name = 'orchestrate_issue'"
                ).fetchone()
            assert orchestrations == (ISSUES,)
        finally:
            for daemon in (alpha, beta):
                if daemon.proc is not None and daemon.proc.poll() is None:
                    daemon.stop()
