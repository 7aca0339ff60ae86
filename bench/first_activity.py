"""Time to the first activity: from a ``created`` webhook's 200 to the session's first
activity at Linear, for 1, 10 and 100 sessions created at once.

Usage: ``.venv/bin/python bench/first_activity.py [--db sqlite|postgres|both]
[--sizes 1,10,100] [--latency 0.05] [--trials 3]``

Starts the Linear stand-in in this process (every GraphQL answer delayed by ``--latency``
seconds, as a distant Linear would answer) and the real daemon (``edge-worker serve``) on
a fresh SQLite file or a scratch PostgreSQL database (``EDGE_WORKER_TEST_POSTGRES_URL``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``). For each size it creates that
many issues, opens one agent session on each (the stand-in's ``agent_session_created``),
sends every ``created`` webhook at once on its own connection, and records when each 200
came back. The stand-in stamps each activity when it handles the request (after the
latency), so the figure includes Linear's answer time. Prints p50 / p99 / max per size;
the work each session starts (planning, a sub-task run) keeps going meanwhile, as it
would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_worker.sandbox.daemon import SECRET, Daemon  # noqa: E402
from edge_worker.sandbox.linear import DEFAULT_API_KEY, LinearStandIn, asend_webhook  # noqa: E402
from edge_worker.sandbox.server import serve_in_thread  # noqa: E402
from edge_worker.sandbox.world import shared_schema  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
WAIT_SECONDS = 60.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def one_round(linear: LinearStandIn, daemon_url: str, size: int) -> list[float]:
    """Send ``size`` created webhooks at once; seconds from each 200 to its first activity."""
    deliveries = [
        linear.agent_session_created(linear.store.add_issue(f"Bench issue {i}").id)
        for i in range(size)
    ]
    answered: dict[str, float] = {}
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def send(delivery: object) -> None:
            response = await asend_webhook(
                daemon_url + "/webhooks/linear",
                SECRET,
                delivery,
                client=client,  # type: ignore[arg-type]
            )
            answered_at = time.time()
            assert response.status_code == 200, response.text
            session = delivery.payload["agentSession"]["id"]  # type: ignore[attr-defined]
            answered[session] = answered_at

        await asyncio.gather(*(send(d) for d in deliveries))
    deadline = time.monotonic() + WAIT_SECONDS
    firsts: dict[str, float] = {}
    while time.monotonic() < deadline and len(firsts) < size:
        for session in answered:
            if session not in firsts:
                said = [
                    a
                    for a in linear.store.activities_of(session)
                    if a.content.get("type") != "prompt"
                ]
                if said:
                    firsts[session] = said[0].created_at
        await asyncio.sleep(0.01)
    missing = size - len(firsts)
    if missing:
        raise SystemExit(f"{missing} of {size} sessions got no activity within {WAIT_SECONDS}s")
    return [firsts[s] - answered[s] for s in answered]


def scratch_postgres(stack: ExitStack, admin_url: str) -> str:
    name = f"ew_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    stack.callback(drop)
    return admin_url.rpartition("/")[0] + "/" + name


def run(db: str, sizes: list[int], latency: float, trials: int) -> dict[int, list[float]]:
    results: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(trials):
        with ExitStack() as stack:
            linear = LinearStandIn(schema_path=shared_schema(), latency_seconds=latency)
            linear_url = stack.enter_context(serve_in_thread(linear.app))
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ew-first-")))
            env = {
                "EDGE_WORKER_LINEAR__API_URL": linear_url + "/graphql",
                "EDGE_WORKER_LINEAR__API_KEY": DEFAULT_API_KEY,
                "EDGE_WORKER_LINEAR__AGENT_USER_ID": linear.store.agent.id,
                "EDGE_WORKER_LOG_LEVEL": "warning",
            }
            if db == "postgres":
                admin = os.environ.get("EDGE_WORKER_TEST_POSTGRES_URL", DEFAULT_PG)
                env["EDGE_WORKER_DATABASE_URL"] = scratch_postgres(stack, admin)
            daemon = Daemon(state, **env).start()
            stack.callback(daemon.stop)
            asyncio.run(one_round(linear, daemon.url, 1))  # warm-up
            for size in sizes:
                results[size] += asyncio.run(one_round(linear, daemon.url, size))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(f"Linear answers in {args.latency * 1000:.0f} ms; {args.trials} trial(s) per size")
    print(f"{'database':<10} {'sessions':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for db in databases:
        for size, values in run(db, sizes, args.latency, args.trials).items():
            print(
                f"{db:<10} {size:>8} {percentile(values, 0.5) * 1000:>8.0f} "
                f"{percentile(values, 0.99) * 1000:>8.0f} {max(values) * 1000:>8.0f}"
                f"   (n={len(values)}, mean {statistics.mean(values) * 1000:.0f} ms)"
            )


if __name__ == "__main__":
    main()
