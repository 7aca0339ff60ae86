"""Run the real daemon (``edge-worker serve``) as a subprocess, for the demo and the tests.

A :class:`Daemon` owns a state directory and an environment; ``start()`` spawns the
console script on a free loopback port and waits for ``/readyz``; ``kill()`` sends
SIGKILL (a crash), ``stop()`` SIGTERM (a clean shutdown). ``send()`` signs a payload the
way Linear does and posts it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from edge_worker.webhooks.verify import sign

SECRET = "whsec-test-secret"
STATIC_PLAN = json.dumps(
    {
        "summary": "One scoping task.",
        "subtasks": [
            {
                "key": "scope",
                "title": "Scope it",
                "description": "Say what to do.",
                "role": "scoper",
                "executor": "any",
                "depends_on": [],
                "verification": [],
            }
        ],
    }
)
AGENT = "agent-user-1"
BIN = Path(sys.executable).parent / "edge-worker"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """One daemon process under test."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = state_dir / "daemon.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")},
            "EDGE_WORKER_STATE_DIR": str(state_dir),
            "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": SECRET,
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": AGENT,
            "EDGE_WORKER_LINEAR__API_KEY": "lin_api_test",
            # Nothing listens on port 9: a daemon that is not wired to stand-ins fails
            # locally instead of ever reaching a real API.
            "EDGE_WORKER_LINEAR__API_URL": "http://127.0.0.1:9/graphql",
            "EDGE_WORKER_LINEAR__OAUTH_URL": "http://127.0.0.1:9",
            "EDGE_WORKER_ANTHROPIC__BASE_URL": "http://127.0.0.1:9",
            "EDGE_WORKER_CODEGEN__BASE_URL": "http://127.0.0.1:9",
            "EDGE_WORKER_PLANNER": "static",
            "EDGE_WORKER_PLANNER_STATIC_PLAN": STATIC_PLAN,
            "EDGE_WORKER_LOG_FORMAT": "json",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def sqlite_path(self) -> Path:
        """The daemon's own tables (intake, work items, ledger)."""
        return self.state_dir / "edge-worker.sqlite"

    @property
    def dbos_sqlite_path(self) -> Path:
        """DBOS's checkpoints (workflow_status, operation_outputs, ...)."""
        return self.state_dir / "edge-worker-dbos.sqlite"

    def start(self, timeout: float = 120.0) -> Daemon:
        """Spawn the daemon and wait until it is ready. When its port was taken meanwhile
        (``free_port`` only finds a port free at one moment), it moves to another one."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        logged = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.log_path.read_bytes()[logged:].decode(errors="replace")
                if "address already in use" in said.lower():
                    self.port = free_port()
                    self.url = f"http://127.0.0.1:{self.port}"
                    return self.start(max(1.0, deadline - time.monotonic()))
                raise RuntimeError(f"daemon exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon not ready:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: a crash, no clean-up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(
        self,
        body: bytes,
        *,
        signature: str | None = None,
        delivery: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {
            "Content-Type": "application/json",
            "Linear-Delivery": delivery or str(uuid.uuid4()),
            "Linear-Event": "Issue",
        }
        if signature is not None:
            sent["Linear-Signature"] = signature
        sent.update(headers or {})
        return httpx.post(self.url + "/webhooks/linear", content=body, headers=sent, timeout=10)

    def send(self, payload: Any, *, delivery: str | None = None, **kw: Any) -> httpx.Response:
        body = json.dumps(payload).encode()
        return self.post(body, signature=sign(SECRET.encode(), body), delivery=delivery, **kw)


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
