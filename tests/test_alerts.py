"""Human alerts (``edge_worker/alerts``) over real loopback stand-ins of Slack's incoming
webhook, Telegram's ``sendMessage`` and a signature-checking generic receiver, with the
outbox on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from structlog.testing import capture_logs

from edge_worker import services
from edge_worker.alerts import outbox
from edge_worker.alerts.channels import Channel
from edge_worker.alerts.config import AlertConfigError, channels_from_settings
from edge_worker.alerts.events import AlertEvent, AlertKind, budget_event, render
from edge_worker.alerts.notifier import DeliveryPolicy, Notifier
from edge_worker.alerts.steps import deliver_pending_forever
from edge_worker.sandbox.alert_receivers import AlertInbox, alert_receivers_app
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import AlertSettings, Settings
from tests.support.pg import engine_for_param

TOKEN = "123456:telegram-secret-token"
SECRET = "webhook-signing-secret"
SLACK_PATH = "/slack/services/T000/B000/slack-secret-path"
FAST = DeliveryPolicy(per_minute=100, retry_attempts=4, retry_initial_seconds=0.01)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with engine_for_param(request, tmp_path / "alerts.sqlite") as made:
        yield made


@pytest.fixture
def inbox() -> AlertInbox:
    return AlertInbox(telegram_token=TOKEN, webhook_secret=SECRET)


@pytest.fixture
def base_url(inbox: AlertInbox) -> Iterator[str]:
    with serve_in_thread(alert_receivers_app(inbox)) as url:
        yield url


def settings_for(base_url: str, secret: str = SECRET) -> AlertSettings:
    return AlertSettings(
        slack_webhook_url=SecretStr(base_url + SLACK_PATH),
        telegram_bot_token=SecretStr(TOKEN),
        telegram_chat_id="-1001",
        telegram_api_url=base_url + "/telegram",
        webhook_url=SecretStr(base_url + "/webhook"),
        webhook_secret=SecretStr(secret),
    )


def escalation(n: int = 1) -> AlertEvent:
    return AlertEvent(
        AlertKind.SUBTASK_ESCALATED,
        subject="ENG-7",
        occurrence=f"iterations-{n}",
        facts={"reason": "Verification still fails after 2 iterations."},
        link="https://linear.app/acme/issue/ENG-7",
    )


async def run_notifier(
    engine: sa.Engine, channels: list[Channel], *events: AlertEvent, policy: DeliveryPolicy = FAST
) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        notifier = Notifier(engine, channels, client, policy)
        sent = 0
        for event in events:
            sent += await notifier.alert(event)
        return sent


def test_same_occurrence_has_one_key_and_a_readable_message() -> None:
    detail = "Today's spend is $7.50 of the $10.00 daily budget (75%)."
    first = budget_event("2026-12-04", detail, exhausted=False)
    again = budget_event("2026-12-04", "Today's spend is $7.60.", exhausted=False)
    full = budget_event("2026-12-04", detail, exhausted=True)
    next_day = budget_event("2026-12-05", detail, exhausted=False)
    assert first.dedupe_key == again.dedupe_key
    assert len({first.dedupe_key, full.dedupe_key, next_day.dedupe_key}) == 3
    message = render(first)
    assert message.title == "Day budget warning for 2026-12-04"
    assert message.text == detail
    assert AlertEvent.from_json(escalation().as_json()) == escalation()


def test_an_alert_reaches_each_channel_once_in_its_format(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    channels = channels_from_settings(settings_for(base_url))
    sent = asyncio.run(run_notifier(engine, channels, escalation(), escalation()))
    assert sent == 3
    (slack,) = inbox.of("slack")
    assert slack["text"].startswith("Sub-task ENG-7 needs a human\nVerification still fails")
    (telegram,) = inbox.of("telegram")
    assert telegram["chat_id"] == "-1001"
    assert telegram["text"] == slack["text"]
    (hook,) = inbox.of("webhook")
    assert hook["kind"] == "subtask_escalated"
    assert hook["key"] == escalation().dedupe_key
    assert hook["link"] == "https://linear.app/acme/issue/ENG-7"
    assert outbox.pending(engine) == []


def test_a_wrong_signature_is_refused_and_given_up_without_retrying(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    channels = [
        c for c in channels_from_settings(settings_for(base_url, "wrong")) if c.kind == "webhook"
    ]
    with capture_logs() as logs:
        sent = asyncio.run(run_notifier(engine, channels, escalation()))
    assert sent == 0
    assert inbox.of("webhook") == []
    assert inbox.requests["webhook"] == 1
    assert outbox.pending(engine) == []
    assert [entry["event"] for entry in logs if entry["event"].startswith("alert_")] == [
        "alert_decided",
        "alert_refused",
    ]


def test_a_failing_channel_is_retried_with_backoff_until_it_accepts(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    inbox.fail_next["telegram"] = 2
    channels = [c for c in channels_from_settings(settings_for(base_url)) if c.kind == "telegram"]
    assert asyncio.run(run_notifier(engine, channels, escalation())) == 1
    assert inbox.requests["telegram"] == 3
    assert len(inbox.of("telegram")) == 1
    with engine.connect() as conn:
        assert conn.scalar(sa.select(outbox.alert_outbox.c.attempts)) == 3


def test_a_channel_down_longer_than_the_retries_keeps_the_alert_for_the_next_delivery(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    inbox.fail_next["slack"] = 10
    channels = [c for c in channels_from_settings(settings_for(base_url)) if c.kind == "slack"]
    policy = DeliveryPolicy(retry_attempts=2, retry_initial_seconds=0.01)
    assert asyncio.run(run_notifier(engine, channels, escalation(), policy=policy)) == 0
    assert len(outbox.pending(engine)) == 1
    inbox.fail_next["slack"] = 0
    assert asyncio.run(run_notifier(engine, channels, policy=policy)) == 0  # no new event
    assert len(outbox.pending(engine)) == 1

    async def deliver_again() -> int:
        async with httpx.AsyncClient(timeout=5) as client:
            return await Notifier(engine, channels, client, policy).deliver()

    assert asyncio.run(deliver_again()) == 1
    assert len(inbox.of("slack")) == 1


def test_each_channel_is_rate_limited(engine: sa.Engine, inbox: AlertInbox, base_url: str) -> None:
    channels = [c for c in channels_from_settings(settings_for(base_url)) if c.kind == "slack"]
    policy = DeliveryPolicy(per_minute=1, window_seconds=0.4, retry_initial_seconds=0.01)
    started = time.monotonic()
    events = [escalation(n) for n in range(3)]
    assert asyncio.run(run_notifier(engine, channels, *events, policy=policy)) == 3
    # Three sends through a window of one per 0.4 s cannot finish sooner than two windows.
    assert time.monotonic() - started >= 0.8
    assert len(inbox.of("slack")) == 3


CRASH_AFTER_DECIDING = """
import os, sys
import httpx, sqlalchemy
from edge_worker.alerts.channels import Channel
from edge_worker.alerts.events import AlertEvent, AlertKind
from edge_worker.alerts.notifier import Notifier
from edge_worker.storage.db import create_engine_for
engine = create_engine_for(sys.argv[1])
channel = Channel("webhook", "webhook", sys.argv[2], secret=sys.argv[3])
notifier = Notifier(engine, [channel], httpx.AsyncClient())
notifier.decide(AlertEvent(AlertKind.ISSUE_FAILED, "ENG-9", "run-1", {"reason": "Stopped."}))
os._exit(9)  # the process dies between the decision and the send
"""


def test_a_crash_after_deciding_and_before_sending_still_sends_exactly_once(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_DECIDING, url, base_url + "/webhook", SECRET],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert inbox.requests.get("webhook", 0) == 0
    channels = [c for c in channels_from_settings(settings_for(base_url)) if c.kind == "webhook"]

    async def restart_and_deliver() -> tuple[int, int]:
        async with httpx.AsyncClient(timeout=5) as client:
            notifier = Notifier(engine, channels, client, FAST)
            again = AlertEvent(AlertKind.ISSUE_FAILED, "ENG-9", "run-1", {"reason": "Stopped."})
            notifier.decide(again)  # the resumed step decides again: still one alert
            return await notifier.deliver(), await notifier.deliver()

    assert asyncio.run(restart_and_deliver()) == (1, 0)
    (hook,) = inbox.of("webhook")
    assert hook["title"] == "Issue ENG-9 failed"


def test_no_secret_reaches_logs_or_stored_messages(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    inbox.fail_next = {"slack": 1, "telegram": 1, "webhook": 1}
    channels = channels_from_settings(settings_for(base_url))
    with capture_logs() as logs:
        assert asyncio.run(run_notifier(engine, channels, escalation())) == 3
    with engine.connect() as conn:
        stored = [str(row) for row in conn.execute(sa.select(outbox.alert_outbox))]
    text = repr(logs) + repr(stored) + repr(channels)
    for secret in [TOKEN, SECRET, "slack-secret-path"]:
        assert secret not in text


def test_channels_come_from_credential_files(tmp_path: Path) -> None:
    token_file = tmp_path / "telegram-token"
    token_file.write_text(TOKEN + "\n")
    settings = AlertSettings(telegram_bot_token_file=token_file, telegram_chat_id="42")
    (channel,) = channels_from_settings(settings)
    assert channel.url == f"https://api.telegram.org/bot{TOKEN}"
    assert channels_from_settings(AlertSettings()) == []
    with pytest.raises(AlertConfigError, match="ALERTS__TELEGRAM_CHAT_ID") as caught:
        channels_from_settings(AlertSettings(telegram_bot_token=SecretStr(TOKEN)))
    assert TOKEN not in str(caught.value)
    with pytest.raises(AlertConfigError, match="ALERTS__WEBHOOK_URL_FILE"):
        channels_from_settings(AlertSettings(webhook_url_file=tmp_path / "missing"))


def test_the_daemons_background_sender_sends_what_the_outbox_still_holds(
    engine: sa.Engine, inbox: AlertInbox, base_url: str
) -> None:
    settings = settings_for(base_url)
    channels = [c for c in channels_from_settings(settings) if c.kind == "slack"]
    only_slack = AlertSettings(slack_webhook_url=settings.slack_webhook_url)

    async def decide_then_run_the_sender() -> None:
        async with httpx.AsyncClient() as client:
            Notifier(engine, channels, client, FAST).decide(escalation())
        task = asyncio.create_task(deliver_pending_forever(interval_seconds=0.05))
        try:
            for _ in range(200):
                if inbox.of("slack"):
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()

    previous = services._current
    services.install(services.Services(Settings(alerts=only_slack), engine))
    try:
        asyncio.run(decide_then_run_the_sender())
    finally:
        services._current = previous
    assert len(inbox.of("slack")) == 1
    assert outbox.pending(engine) == []


def test_serve_refuses_a_telegram_token_without_a_chat_id_and_never_prints_it(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("EDGE_WORKER_")}
    env |= {
        "EDGE_WORKER_STATE_DIR": str(tmp_path / "state"),
        "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": "whsec",
        "EDGE_WORKER_LINEAR__AGENT_USER_ID": "agent",
        "EDGE_WORKER_LINEAR__API_KEY": "lin_api_x",
        "EDGE_WORKER_PLANNER": "static",
        "EDGE_WORKER_PLANNER_STATIC_PLAN": '{"summary": "s", "subtasks": []}',
        "EDGE_WORKER_ALERTS__TELEGRAM_BOT_TOKEN": TOKEN,
    }
    refused = subprocess.run(
        [sys.executable, "-m", "edge_worker.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2, refused.stderr
    assert "EDGE_WORKER_ALERTS__TELEGRAM_CHAT_ID" in refused.stderr
    assert TOKEN not in refused.stdout + refused.stderr
