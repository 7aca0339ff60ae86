"""Intake throughput and latency: durable intake vs. the signature-check-only ceiling.

Usage: ``.venv/bin/python bench/intake.py [--requests 2000] [--concurrency 16] [--trials 3]``

Starts two servers on loopback, each in its own process: the real daemon
(``edge-worker serve`` on a fresh SQLite file, so every accepted webhook is committed
before its 200 and then dispatched to a DBOS workflow) and the ceiling (``bench/ceiling.py``,
the same uvicorn + starlette stack doing only the HMAC check). It sends each the same burst
of signed, distinct assignment webhooks from one asyncio client with a fixed number of
connections, and prints accepted/s and latency percentiles for both, and the ratio; with
``--trials N`` it does so N times (fresh servers, ceiling and daemon alternating) and
prints the median.

The workflows the warm-up starts need Linear. ``--linear held`` (the default) gives them
a Linear that accepts connections and has not answered yet: work in flight, waiting on a
remote API, which is how a busy daemon spends its time. ``--linear closed`` points them at
a closed port instead: every call fails at once and is retried, so the measurement also
carries that retry storm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_worker.sandbox import payloads  # noqa: E402
from edge_worker.sandbox.daemon import STATIC_PLAN, free_port  # noqa: E402
from edge_worker.webhooks.verify import sign  # noqa: E402

SECRET = "bench-secret"
AGENT = "agent-bench"


def make_bodies(count: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for i in range(count):
        body = json.dumps(payloads.issue_assigned(f"iss-{i}", AGENT, identifier=f"ENG-{i}"))
        raw = body.encode()
        out.append(
            (
                raw,
                {
                    "Content-Type": "application/json",
                    "Linear-Delivery": str(uuid.uuid4()),
                    "Linear-Event": "Issue",
                    "Linear-Signature": sign(SECRET.encode(), raw),
                },
            )
        )
    return out


async def _post(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> int:
    """One HTTP/1.1 keep-alive POST on an open connection; returns the status code.

    A raw client, so the load generator costs far less CPU than the server it measures
    (httpx on the same two cores would be the bottleneck, not the daemon).
    """
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    start = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    writer.write(f"{start}{head}\r\n".encode() + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def burst(
    url: str, bodies: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.path
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pending = list(reversed(bodies))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while pending:
                body, headers = pending.pop()
                started = time.perf_counter()
                status = await _post(reader, writer, f"{host}:{port}", path, body, headers)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


class HeldLinear:
    """A loopback listener that accepts connections and never answers: Linear, mid-request."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/graphql"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()


def run_server(kind: str, state: Path, linear_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")}
    env.update(
        {
            "EDGE_WORKER_STATE_DIR": str(state),
            "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": SECRET,
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": AGENT,
            "EDGE_WORKER_LINEAR__API_KEY": "lin_api_bench",
            "EDGE_WORKER_LINEAR__API_URL": linear_url,
            "EDGE_WORKER_PLANNER": "static",
            "EDGE_WORKER_PLANNER_STATIC_PLAN": STATIC_PLAN,
            "EDGE_WORKER_LOG_LEVEL": "warning",
            "EDGE_WORKER_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
    )
    bin_dir = Path(sys.executable).parent
    if kind == "daemon":
        cmd = [str(bin_dir / "edge-worker"), "serve", "--port", str(port)]
    else:
        cmd = [
            str(bin_dir / "uvicorn"),
            "bench.ceiling:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(state / f"{kind}.log").open("wb")
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + ("/healthz" if kind == "daemon" else "/"), proc)
    return proc, base + "/webhooks/linear"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(kind: str, state: Path, args: argparse.Namespace, linear_url: str) -> dict[str, Any]:
    """One trial: a fresh server, the warm-up, the settle, then the measured burst."""
    state.mkdir()
    proc, url = run_server(kind, state, linear_url)
    try:
        asyncio.run(burst(url, make_bodies(100), args.concurrency))  # warm-up
        time.sleep(args.settle)  # let the warm-up's workflows start: a steady state
        elapsed, lat, statuses = asyncio.run(
            burst(url, make_bodies(args.requests), args.concurrency)
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = statuses.get(200, 0)
    result = {
        "accepted_per_s": ok / elapsed,
        "p50_ms": pct(lat, 0.50),
        "p99_ms": pct(lat, 0.99),
        "mean_ms": statistics.mean(lat) * 1000,
        "statuses": statuses,
    }
    print(
        f"{kind:8s} {ok / elapsed:8.0f} accepted/s  p50 {pct(lat, 0.5):6.1f} ms  "
        f"p99 {pct(lat, 0.99):6.1f} ms  statuses {statuses}",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds to wait after the warm-up before measuring",
    )
    parser.add_argument("--trials", type=int, default=3, help="repeat; the median is reported")
    parser.add_argument(
        "--linear",
        choices=("held", "closed"),
        default="held",
        help="what the workflows' Linear does: hold requests open, or refuse connections",
    )
    args = parser.parse_args()
    held = HeldLinear() if args.linear == "held" else None
    linear_url = held.url if held else "http://127.0.0.1:9/graphql"
    runs: dict[str, list[dict[str, Any]]] = {"ceiling": [], "daemon": []}
    ratios = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for trial in range(args.trials):
                for kind in ("ceiling", "daemon"):
                    state = Path(tmp) / f"{kind}-{trial}"
                    runs[kind].append(measure(kind, state, args, linear_url))
                ratios.append(
                    runs["daemon"][-1]["accepted_per_s"] / runs["ceiling"][-1]["accepted_per_s"]
                )
                print(f"trial {trial + 1}: durable intake = {ratios[-1]:.0%} of the ceiling")
    finally:
        if held:
            held.close()
    p99 = statistics.median(r["p99_ms"] for r in runs["daemon"])
    medians = {k: statistics.median(r["accepted_per_s"] for r in v) for k, v in runs.items()}
    print(
        f"medians: ceiling {medians['ceiling']:.0f}/s, daemon {medians['daemon']:.0f}/s, "
        f"ratio of the medians {medians['daemon'] / medians['ceiling']:.0%}"
    )
    print(
        f"durable intake = {statistics.median(ratios):.0%} of the ceiling's throughput "
        f"(median of {args.trials}; range {min(ratios):.0%}-{max(ratios):.0%}; target >= 50%); "
        f"daemon p99 {p99:.1f} ms (median; target < 50 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
