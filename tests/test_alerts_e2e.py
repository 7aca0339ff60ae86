"""Alerts from the real daemon: Linear revoking the app reaches the signed-webhook
stand-in (the dispatcher decides it before recording the revocation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_worker.sandbox.alert_receivers import AlertInbox, alert_receivers_app
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SECRET = "revocation-alert-secret"


def test_a_revoked_app_alerts_a_human_once(tmp_path: Path) -> None:
    inbox = AlertInbox(telegram_token="1:unused", webhook_secret=SECRET)
    with (
        serve_in_thread(alert_receivers_app(inbox)) as alerts_url,
        SandboxWorld(tmp_path / "world") as world,
    ):
        env = {
            "EDGE_WORKER_ALERTS__WEBHOOK_URL": alerts_url + "/webhook",
            "EDGE_WORKER_ALERTS__WEBHOOK_SECRET": SECRET,
        }
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.send(world.linear.app_revoked())
            wait_until(lambda: inbox.of("webhook"), 30)
            log = e2e.log()
    (hook,) = inbox.of("webhook")
    assert hook["kind"] == "app_revoked"
    assert "Linear workspace removed the app" in hook["text"]
    assert SECRET not in log


def test_the_day_budget_alerts_at_the_warning_and_at_the_limit_once_each(tmp_path: Path) -> None:
    """$0.80 a day, runs held to $0.15 (as ``test_budget_e2e``): the first issue crosses
    75 %, the second reaches the limit, the third is refused the same day."""
    inbox = AlertInbox(telegram_token="1:unused", webhook_secret=SECRET)
    with (
        serve_in_thread(alert_receivers_app(inbox)) as alerts_url,
        SandboxWorld(tmp_path / "world") as world,
    ):
        env = {
            "EDGE_WORKER_STRATEGY": "local-only",
            "EDGE_WORKER_BUDGET__PER_TASK_USD": "0.15",
            "EDGE_WORKER_BUDGET__PER_DAY_USD": "0.80",
            "EDGE_WORKER_ALERTS__SLACK_WEBHOOK_URL": alerts_url + "/slack/services/T/B/x",
        }
        issues = [world.new_issue() for _ in range(3)]
        with running(world, tmp_path / "state", **env) as e2e:
            for issue_id in issues:
                e2e.assign(issue_id)
                e2e.wait_end(issue_id)
    titles = [message["text"].splitlines()[0] for message in inbox.of("slack")]
    assert sum(title.startswith("Day budget warning for ") for title in titles) == 1
    assert sum(title.startswith("Day budget used up for ") for title in titles) == 1
