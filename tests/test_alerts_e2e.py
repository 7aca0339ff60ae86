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
