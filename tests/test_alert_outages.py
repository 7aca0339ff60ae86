"""Linear unavailable for longer than the configured minutes: one alert per outage, from
the real Linear client against the Linear stand-in, to the signed-webhook stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import stamina
from pydantic import SecretStr

from edge_worker import services
from edge_worker.alerts.events import AlertKind
from edge_worker.alerts.outages import OutageTracker, outage_reporter
from edge_worker.executors.codegen_api import CodegenClient
from edge_worker.executors.rate_limit import OrgRateLimiter
from edge_worker.linear.client import LinearClient
from edge_worker.sandbox.alert_receivers import AlertInbox, alert_receivers_app
from edge_worker.sandbox.codegen import CodegenStandIn
from edge_worker.sandbox.linear import LinearStandIn
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.settings import AlertSettings, Settings
from edge_worker.storage.db import create_engine_for, create_tables

pytest_plugins = ("tests.support.linear_fixtures",)

SECRET = "outage-signing-secret"


@pytest.fixture(autouse=True)
def no_backoff_delays() -> Iterator[None]:
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_alert_per_outage_once_it_lasted_the_threshold() -> None:
    clock = FakeClock()
    tracker = OutageTracker("Linear", 600, clock)
    assert tracker.failure() is None
    clock.now += 599
    assert tracker.failure() is None
    clock.now += 1
    first = tracker.failure()
    assert first is not None and first.kind is AlertKind.SERVICE_UNAVAILABLE
    assert first.facts["minutes"] == "10"
    clock.now += 300
    assert tracker.failure() is None  # the same outage: said once
    tracker.success()
    clock.now += 10
    assert tracker.failure() is None  # a new outage starts counting again
    clock.now += 600
    second = tracker.failure()
    assert second is not None and second.dedupe_key != first.dedupe_key


async def test_the_linear_client_reports_failures_and_recovery(
    standin: LinearStandIn, make_client: Callable[..., LinearClient]
) -> None:
    seen: list[bool] = []
    standin.fail_next(3, "server_error", status=502)
    await make_client(on_health=seen.append).viewer()
    assert seen == [False, False, False, True]


async def test_a_linear_outage_reaches_the_alert_receiver_once(
    standin: LinearStandIn, make_client: Callable[..., LinearClient], tmp_path: Path
) -> None:
    inbox = AlertInbox(telegram_token="1:unused", webhook_secret=SECRET)
    engine = create_engine_for(f"sqlite:///{tmp_path / 'outage.sqlite'}")
    create_tables(engine)
    with serve_in_thread(alert_receivers_app(inbox)) as url:
        alerts = AlertSettings(
            webhook_url=SecretStr(url + "/webhook"), webhook_secret=SecretStr(SECRET)
        )
        previous = services._current
        services.install(services.Services(Settings(alerts=alerts), engine))
        try:
            standin.fail_next(3, "server_error")
            on_health = outage_reporter(OutageTracker("Linear", 0.0))
            await make_client(on_health=on_health).viewer()
            for _ in range(200):  # the alert goes out in the background
                if inbox.of("webhook"):
                    break
                await asyncio.sleep(0.05)
        finally:
            services._current = previous
    (hook,) = inbox.of("webhook")
    assert hook["kind"] == "service_unavailable"
    assert hook["title"] == "Linear unavailable"
    engine.dispose()


async def test_the_codegen_client_reports_failures_and_recovery() -> None:
    stand_in = CodegenStandIn(org_id=7, api_token="codegen-token")
    seen: list[bool] = []
    with serve_in_thread(stand_in.app) as url:
        async with httpx.AsyncClient(timeout=10) as http:
            client = CodegenClient(
                http,
                base_url=url,
                org_id=7,
                api_token=SecretStr("codegen-token"),
                limiter=OrgRateLimiter(10, 60),
                wait_initial=0.01,
                wait_jitter=0.0,
                on_health=seen.append,
            )
            run = await client.create_run("do it", repo_id=None, metadata={})
            stand_in.fail_next("get", 503, times=2)
            await client.get_run(run.id)
    assert seen == [True, False, False, True]
