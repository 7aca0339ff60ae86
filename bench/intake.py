"""Intake throughput and latency: durable intake vs. the signature-check-only ceiling.

Usage: ``.venv/bin/python bench/intake.py [--requests 2000] [--concurrency 32]``

Starts two servers on loopback, each in its own process: the real daemon
(``edge-worker serve`` on a fresh SQLite file, so every accepted webhook is committed
before its 200 and then dispatched to a DBOS workflow) and the ceiling (``bench/ceiling.py``,
the same uvicorn + starlette stack doing only the HMAC check). It sends each the same burst
of signed, distinct assignment webhooks from one asyncio client with a fixed number of
connections, and prints accepted/s and latency percentiles for both, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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


def run_server(kind: str, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")}
    env.update(
        {
            "EDGE_WORKER_STATE_DIR": str(state),
            "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": SECRET,
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": AGENT,
            "EDGE_WORKER_LINEAR__API_KEY": "lin_api_bench",
            # Only intake is measured: the workflows the burst starts meet a dead loopback port.
            "EDGE_WORKER_LINEAR__API_URL": "http://127.0.0.1:9/graphql",
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
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("ceiling", "daemon"):
            state = Path(tmp) / kind
            state.mkdir()
            proc, url = run_server(kind, state)
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
            results[kind] = {
                "accepted_per_s": ok / elapsed,
                "p50_ms": pct(lat, 0.50),
                "p99_ms": pct(lat, 0.99),
                "mean_ms": statistics.mean(lat) * 1000,
                "statuses": statuses,
            }
            print(
                f"{kind:8s} {ok / elapsed:8.0f} accepted/s  p50 {pct(lat, 0.5):6.1f} ms  "
                f"p99 {pct(lat, 0.99):6.1f} ms  statuses {statuses}"
            )
    ratio = results["daemon"]["accepted_per_s"] / results["ceiling"]["accepted_per_s"]
    print(
        f"durable intake = {ratio:.0%} of the ceiling's throughput "
        f"(target >= 50%); daemon p99 {results['daemon']['p99_ms']:.1f} ms (target < 50 ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
