"""The container image, built from ``deploy/Dockerfile`` and run for real on this machine.

The image is built with ``podman build --isolation=chroot`` on a stand-in for
``python:3.11-slim`` made from Debian's packages (``deploy/local-base.sh``, cached by its
inputs), and run with ``buildah run --isolation chroot``: the image's own command, its
environment, working directory and user, the host's network, and a host directory bound
at the state volume. Checked as an operator would: ``check`` masks secrets, ``serve``
answers ``/readyz`` and takes a signed webhook into the volume, SIGTERM drains within the
documented grace, the process is uid 10001, a second container on the same volume keeps
the state and does no work twice, the image's health check passes; and the compose
service runs exactly that. Bad input: no secrets, an unwritable volume.

Skipped (outside CI only) when podman, buildah or mmdebstrap are missing; in CI
(``CI=true``) their absence fails. Needs root, as ``podman build`` does here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from edge_worker.cli import STATE_DIR_UNWRITABLE
from edge_worker.sandbox import payloads
from edge_worker.sandbox.daemon import STATIC_PLAN
from edge_worker.webhooks.verify import sign
from tests.support.container import (
    ContainerError,
    ImageConfig,
    WorkingContainer,
    build_image,
    image_paths,
    inspect_image,
    kill_tree,
    local_base,
    missing_tools,
    process_of,
    process_uids,
    working_container,
)
from tests.support.deploy import DEPLOY_DIR, env_example_lines, timespan_seconds
from tests.support.pg import scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TAG = "localhost/edge-worker:test"
STATE_DIR = "/var/lib/edge-worker"
UID = 10001
PORT = 8787
URL = f"http://127.0.0.1:{PORT}"
COMPOSE = DEPLOY_DIR / "docker-compose.yml"
EXAMPLE_ENV = DEPLOY_DIR / "edge-worker.env.example"
GRACE_SECONDS = timespan_seconds(
    yaml.safe_load(COMPOSE.read_text())["services"]["edge-worker"]["stop_grace_period"]
)
SECRET = "whsec-container-secret-0d1e"
API_KEY = "lin_api_container_key_7c2f"
AGENT = "agent-user-container"
EXECUTOR_ID = "edge-worker-1"
DATABASE_URL_ENV = "EDGE_WORKER_DATABASE_URL"
START_TIMEOUT = 90.0
# What the operator sets (names documented in deploy/edge-worker.env.example). Every API
# points at port 9 on loopback, where nothing listens: the container never reaches a real
# service, and the work it starts waits for Linear as it would through an outage.
DAEMON_ENV = {
    "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": SECRET,
    "EDGE_WORKER_LINEAR__AGENT_USER_ID": AGENT,
    "EDGE_WORKER_LINEAR__API_KEY": API_KEY,
    "EDGE_WORKER_LINEAR__API_URL": "http://127.0.0.1:9/graphql",
    "EDGE_WORKER_LINEAR__OAUTH_URL": "http://127.0.0.1:9",
    "EDGE_WORKER_ANTHROPIC__BASE_URL": "http://127.0.0.1:9",
    "EDGE_WORKER_CODEGEN__BASE_URL": "http://127.0.0.1:9",
    "EDGE_WORKER_PLANNER": "static",
    "EDGE_WORKER_PLANNER_STATIC_PLAN": STATIC_PLAN,
    "EDGE_WORKER_EXECUTOR_ID": EXECUTOR_ID,
}


@pytest.fixture(scope="module")
def image() -> ImageConfig:
    """The image built from the working tree (layers cached by podman between runs)."""
    missing = missing_tools()
    reason = ""
    if missing:
        reason = f"{', '.join(missing)} not installed (bash .ci/setup-container.sh installs them)"
    elif os.geteuid() != 0:
        reason = "podman build --isolation=chroot and mmdebstrap need root here"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the container test cannot run in CI: {reason}")
        pytest.skip(reason)
    try:
        build_image(TAG, local_base())
    except ContainerError as exc:
        pytest.fail(str(exc))
    return inspect_image(TAG)


@pytest.fixture
def state_volume(tmp_path: Path) -> Path:
    """A host directory for the state volume, owned by the image's user as documented."""
    volume = tmp_path / "state"
    volume.mkdir()
    os.chown(volume, UID, UID)
    return volume


@pytest.fixture
def container(image: ImageConfig) -> Iterator[WorkingContainer]:
    with working_container(TAG) as made:
        yield made


def _port_in_use() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", PORT)) == 0


def _ready() -> bool:
    try:
        return httpx.get(URL + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Served:
    """The image's command running in a container, as the runtime would run it."""

    def __init__(
        self,
        container: WorkingContainer,
        image: ImageConfig,
        volume: Path,
        env: dict[str, str] = DAEMON_ENV,
    ) -> None:
        if _port_in_use():
            pytest.fail(f"port {PORT} is already in use on this machine; the image listens there")
        self.log = volume.parent / f"{container.name}.log"
        self.runner = container.start(
            image.cmd, log=self.log, env=env, volume=volume, target=STATE_DIR
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready():
            if self.runner.poll() is not None or time.monotonic() > deadline:
                kill_tree(self.runner.pid)
                self.runner.wait(timeout=30)
                pytest.fail(f"serve did not become ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        try:
            self.pid = process_of(self.runner.pid, image.cmd)
        except AssertionError:
            self.close()
            raise

    def stop(self) -> tuple[int, float]:
        """SIGTERM to the daemon (what ``docker stop`` sends); its exit code and seconds.

        Waits a little past the grace, so that a drain that overruns it is measured (and
        fails the check) rather than cut short here.
        """
        started = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        code = self.runner.wait(timeout=GRACE_SECONDS + 15)
        return code, time.monotonic() - started

    def close(self) -> None:
        """Kill whatever is left after a failed check."""
        if self.runner.poll() is None:
            kill_tree(self.runner.pid)
            self.runner.wait(timeout=30)


def _send(payload: dict[str, Any], delivery: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "Linear-Delivery": delivery,
        "Linear-Event": "Issue",
        "Linear-Signature": sign(SECRET.encode(), body),
    }
    return httpx.post(URL + "/webhooks/linear", content=body, headers=headers, timeout=10)


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql).fetchall()


def _wait(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout}s")


ORCHESTRATIONS = "SELECT executor_id FROM workflow_status WHERE name = 'orchestrate_issue'"


def test_the_image_declares_how_it_runs(image: ImageConfig) -> None:
    assert image.cmd[:2] == ["edge-worker", "serve"]
    assert image.user.split(":")[0] == str(UID)
    assert image.volumes == [STATE_DIR]
    assert image.env["EDGE_WORKER_STATE_DIR"] == STATE_DIR
    assert image.stop_signal == "SIGTERM"
    assert image.healthcheck and "/healthz" in " ".join(image.healthcheck)


def test_check_in_the_image_masks_the_secrets(container: WorkingContainer) -> None:
    done = container.run(["edge-worker", "check"], env=DAEMON_ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "configuration OK" in done.stderr
    shown = json.loads(done.stdout)
    assert shown["linear"]["webhook_secret"] == "**********"
    assert shown["linear"]["api_key"] == "**********"
    assert shown["state_dir"] == STATE_DIR
    for secret in (SECRET, API_KEY):
        assert secret not in done.stdout + done.stderr


def test_serve_takes_webhooks_into_the_volume_and_a_second_container_resumes(
    image: ImageConfig, state_volume: Path
) -> None:
    daemon_db = state_volume / "edge-worker.sqlite"
    dbos_db = state_volume / "edge-worker-dbos.sqlite"
    payload = payloads.issue_assigned("iss-container", AGENT)
    delivery = f"container-{uuid.uuid4()}"

    with working_container(TAG) as first:
        served = Served(first, image, state_volume)
        try:
            assert process_uids(served.pid) == (UID, UID)
            probe = first.run(image.healthcheck)
            assert probe.returncode == 0, probe.stderr[-2000:]

            answer = _send(payload, delivery)
            assert answer.status_code == 200 and answer.json()["status"] == "accepted"
            stored = _rows(
                daemon_db,
                f"SELECT decision FROM ew_webhook_events WHERE delivery_id = '{delivery}'",
            )
            assert stored == [("start",)]
            assert _wait(lambda: _rows(dbos_db, ORCHESTRATIONS)) == [(EXECUTOR_ID,)]
            code, seconds = served.stop()
        finally:
            served.close()
        assert code == 0, served.log.read_text()[-3000:]
        assert seconds < GRACE_SECONDS
        assert "edge-worker stopped" in served.log.read_text()
        # Nothing answers any more: the probe the runtime would run now fails.
        assert first.run(image.healthcheck).returncode != 0

    with working_container(TAG) as second:
        served = Served(second, image, state_volume)
        try:
            again = _send(payload, delivery)
            assert again.status_code == 200 and again.json()["status"] == "duplicate"
            assert _rows(daemon_db, "SELECT COUNT(*) FROM ew_webhook_events") == [(1,)]
            assert _rows(dbos_db, ORCHESTRATIONS) == [(EXECUTOR_ID,)]  # resumed, not redone
            code, _ = served.stop()
        finally:
            served.close()
        assert code == 0


@pytest.mark.postgres
def test_the_image_serves_on_postgres_as_compose_runs_it(
    image: ImageConfig, state_volume: Path, postgres_url: str
) -> None:
    payload = payloads.issue_assigned("iss-container-pg", AGENT)
    delivery = f"container-pg-{uuid.uuid4()}"
    with scratch_database(postgres_url) as url, working_container(TAG) as made:
        served = Served(made, image, state_volume, env={**DAEMON_ENV, DATABASE_URL_ENV: url})
        try:
            answer = _send(payload, delivery)
            assert answer.status_code == 200 and answer.json()["status"] == "accepted"
            with psycopg.connect(url) as conn:
                stored = conn.execute(
                    "SELECT decision FROM ew_webhook_events WHERE delivery_id = %s", (delivery,)
                ).fetchall()
            assert stored == [("start",)]
            assert not (state_volume / "edge-worker.sqlite").exists()
            code, seconds = served.stop()
        finally:
            served.close()
    assert code == 0 and seconds < GRACE_SECONDS


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("edge-worker: ")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_without_secrets_the_container_exits_with_the_same_line_as_outside(
    image: ImageConfig, container: WorkingContainer, tmp_path: Path
) -> None:
    inside = container.run(image.cmd)
    outside_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")}
    outside = subprocess.run(
        [str(Path(sys.executable).parent / "edge-worker"), *image.cmd[1:]],
        env={**outside_env, "EDGE_WORKER_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert outside.returncode == 2
    assert inside.returncode == outside.returncode
    assert "missing required setting" in _error_line(outside.stderr)
    assert _error_line(inside.stderr) == _error_line(outside.stderr)
    assert "Traceback" not in inside.stderr


def test_an_unwritable_state_volume_is_a_clear_error(
    image: ImageConfig, container: WorkingContainer, tmp_path: Path
) -> None:
    volume = tmp_path / "root-owned"
    volume.mkdir(mode=0o755)
    done = container.run(image.cmd, env=DAEMON_ENV, volume=volume, target=STATE_DIR)
    assert done.returncode == 2
    line = _error_line(done.stderr)
    expected = STATE_DIR_UNWRITABLE.format(path=STATE_DIR, uid=UID, reason="Permission denied")
    assert line == "edge-worker: " + expected
    assert "Traceback" not in done.stderr
    assert list(volume.iterdir()) == []


def test_compose_runs_the_service_the_test_ran(image: ImageConfig) -> None:
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["edge-worker"]
    # Same command and user: compose overrides neither, so the image's apply.
    assert "command" not in worker and "entrypoint" not in worker
    assert worker.get("user", image.user) == image.user
    assert worker["stop_signal"] == image.stop_signal
    assert "healthcheck" not in worker  # the image's own probe, run above
    targets = [volume.rsplit(":", 1)[-1] for volume in worker["volumes"]]
    assert targets == [STATE_DIR] == image.volumes
    # Same environment names: what compose sets is what the tests set (the database URL
    # in the Postgres run); every name either sets is documented in the env example.
    compose_names = set(worker["environment"])
    assert compose_names <= set(DAEMON_ENV) | {DATABASE_URL_ENV}
    documented = {line.name for line in env_example_lines(EXAMPLE_ENV.read_text())}
    assert set(DAEMON_ENV) | compose_names <= documented
    published = [port.rsplit(":", 1)[-1] for port in worker["ports"]]
    assert published == [str(PORT)] and image.cmd[-1] == str(PORT)


FORBIDDEN_PARTS = {".git", "tests", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"}


def test_the_image_holds_no_tests_repository_caches_or_secrets(image: ImageConfig) -> None:
    paths = image_paths(TAG)
    project = [p for p in paths if p.startswith("/opt/edge-worker/")]
    assert "/opt/edge-worker/prompts/orchestrator.md" in project
    leaked = [p for p in project if FORBIDDEN_PARTS & set(p.split("/"))]
    leaked += [p for p in project if "__pycache__" in p or p.endswith((".pyc", ".env"))]
    leaked += [p for p in project if p.split("/")[3] in ("build", "edge_worker.egg-info")]
    leaked += [p for p in paths if p.startswith(("/root/.cache", "/tmp/", "/var/lib/apt/lists/"))]
    leaked += [p for p in paths if p.startswith("/var/cache/apt/") and p.endswith((".bin", ".deb"))]
    leaked += [p for p in paths if p.startswith(STATE_DIR + "/")]
    assert leaked == []
    secret_names = [
        name
        for name in image.env
        if any(word in name for word in ("SECRET", "TOKEN", "API_KEY", "PASSWORD"))
    ]
    assert secret_names == []
