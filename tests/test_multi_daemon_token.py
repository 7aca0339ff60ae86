"""Two real daemons on one PostgreSQL, as one OAuth app (client credentials).

Linear keeps one active client-credentials token per app (the stand-in too: a new grant
revokes the one before). The daemons start together: one token is fetched and both use
it. Then Linear refuses that token (401): each daemon meets the 401 on its next request,
and only one new token is fetched between them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge_worker.sandbox.daemon import STATIC_PLAN
from edge_worker.sandbox.linear import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, send_webhook
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from tests.support.daemon import Daemon, wait_for
from tests.support.pg import scratch_database

MAX_ISSUES = 12


def start_together(daemons: list[Daemon]) -> None:
    errors: list[BaseException] = []

    def start(daemon: Daemon) -> None:
        try:
            daemon.start(timeout=60)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in daemons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_share_one_token_and_a_401_causes_one_refresh(
    tmp_path: Path, postgres_url: str
) -> None:
    with scratch_database(postgres_url) as url, SandboxWorld(tmp_path) as world:
        env = world.daemon_env(
            EDGE_WORKER_DATABASE_URL=url,
            EDGE_WORKER_LINEAR__OAUTH_URL=world.urls["linear"],
            EDGE_WORKER_LINEAR__CLIENT_ID=DEFAULT_CLIENT_ID,
            EDGE_WORKER_LINEAR__CLIENT_SECRET=DEFAULT_CLIENT_SECRET,
            EDGE_WORKER_PLANNER="static",
            EDGE_WORKER_PLANNER_STATIC_PLAN=STATIC_PLAN,
        )
        daemons = [
            Daemon(tmp_path / name, **env, EDGE_WORKER_EXECUTOR_ID=name)
            for name in ("alpha", "beta")
        ]
        for daemon in daemons:  # client credentials only: no API key to fall back on
            del daemon.env["EDGE_WORKER_LINEAR__API_KEY"]
        standin = world.linear
        try:
            start_together(daemons)
            wait_for(
                lambda: all("linear.auth.token_in_use" in d.log_text() for d in daemons),
                timeout=30,
            )
            assert standin.token_requests == 1

            standin.revoke_tokens()
            # Work reaches Linear from whichever daemon takes it from the shared queue:
            # hand out issues until each daemon has met the 401 and gone on.
            sent = 0

            def both_refreshed() -> bool:
                nonlocal sent
                if all("linear.auth.refreshed_after_401" in d.log_text() for d in daemons):
                    return True
                if sent < MAX_ISSUES:
                    delivery = standin.issue_assigned(world.new_issue(), field="assigneeId")
                    target = daemons[sent % 2]
                    response = send_webhook(
                        target.url + "/webhooks/linear", WEBHOOK_SECRET, delivery
                    )
                    assert response.status_code == 200, response.text
                    sent += 1
                return False

            wait_for(both_refreshed, timeout=180, interval=1.0)
            assert standin.token_requests == 2, "each daemon fetched its own token"
            refused = [r for r in standin.requests if r.status == 401]
            assert refused, "no request met the revoked token"
            assert len({r.authorization for r in refused}) == 1  # only the revoked one
        finally:
            for daemon in daemons:
                if daemon.proc is not None and daemon.proc.poll() is None:
                    daemon.stop()
