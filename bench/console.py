"""Console render times and the cost of live updates, on a database of 10,000 finished
issues and 50 in flight.

Usage: ``.venv/bin/python bench/console.py [--finished 10000] [--in-flight 50]
[--requests 200] [--pages 50] [--seconds 20] [--out FILE]``

1. Fills a fresh SQLite database through the project's storage API (``work.claim``,
   ``set_state``, ``track_subtask``; ledger rows in bulk into ``cost_entries``), and lets
   DBOS create its system tables (so the Now page's queue reads hit real, empty tables).
2. Renders *Now*, *History* and *Costs* ``--requests`` times each through the console's
   ASGI app in this process (routing, queries, view models, templates) and prints p50/p99.
3. Starts the console alone under uvicorn in a child process, opens ``--pages`` event
   streams (``/console/events``) from this process, and measures the child's CPU time
   (user + sys, from /proc) for ``--seconds`` with nothing changing, then for ``--seconds``
   with one change a second (a work item moved), each change fanned out to every page.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_worker.console.access import Tokens  # noqa: E402
from edge_worker.console.routes import build_console  # noqa: E402
from edge_worker.costs.ledger import COST_ENTRIES  # noqa: E402
from edge_worker.sandbox.daemon import free_port  # noqa: E402
from edge_worker.settings import Settings, load_settings  # noqa: E402
from edge_worker.storage import work  # noqa: E402
from edge_worker.storage.db import create_engine_for, create_tables  # noqa: E402

TOKEN = "bench-console-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXECUTORS = ("claude-code", "codex", "codegen")
FINAL = ("done", "done", "done", "failed", "stopped", "over_budget")


def settings_for(state_dir: Path) -> Settings:
    return load_settings(state_dir=state_dir, budget={"timezone": "UTC", "per_day_usd": 50.0})


def fill(settings: Settings, finished: int, in_flight: int) -> None:
    engine = create_engine_for(settings.resolved_database_url)
    create_tables(engine)
    now = datetime.now(UTC)
    ledger_rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for n in range(finished + in_flight):
            issue_id, team = f"issue-{n}", ("ENG", "OPS", "WEB")[n % 3]
            identifier, workflow = f"{team}-{n}", f"issue-issue-{n}-wf"
            work.claim(
                conn,
                issue_id=issue_id,
                identifier=identifier,
                workflow_id=workflow,
                session_id=None,
            )
            work.set_state(conn, issue_id, workflow, "working", subtasks_total=3)
            for k in range(3):
                executor = EXECUTORS[(n + k) % 3]
                state = "running" if n >= finished and k == 2 else "passed"
                work.track_subtask(
                    conn, issue_id, f"task-{k}", f"{workflow}-task-{k}-1", state, executor
                )
                day_of = now - timedelta(days=n % 30)
                ledger_rows.append(
                    {
                        "entry_id": f"{workflow}-{k}",
                        "created_at": day_of,
                        "day": day_of.date(),
                        "issue_id": issue_id,
                        "issue_identifier": identifier,
                        "subtask_key": f"task-{k}",
                        "kind": "run",
                        "executor": executor,
                        "model": None if executor == "codegen" and n % 7 == 0 else "model-x",
                        "attempt": 1,
                        "input_tokens": 1000,
                        "cached_input_tokens": 0,
                        "output_tokens": 100,
                        "usd_micros": None if executor == "codegen" and n % 7 == 0 else 123_456,
                    }
                )
            if n < finished:
                work.set_state(conn, issue_id, workflow, FINAL[n % len(FINAL)])
        conn.execute(COST_ENTRIES.insert(), ledger_rows)
    engine.dispose()
    # DBOS's system tables, created by DBOS itself (the Now page reads its queues).
    from dbos import DBOS

    from edge_worker import runtime, workflow_registry

    workflow_registry.register_all()
    runtime.configure_dbos(settings)
    DBOS.launch()
    DBOS.destroy()


async def render_times(settings: Settings, requests: int) -> dict[str, dict[str, float]]:
    engine = create_engine_for(settings.resolved_database_url)
    app = build_console(settings, lambda: engine, Tokens(TOKEN))
    results: dict[str, dict[str, float]] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for path in ("/", "/history", "/history?team=ENG&state=done", "/costs"):
            for _ in range(5):  # warm-up
                (await client.get(path, headers=AUTH)).raise_for_status()
            samples = []
            for _ in range(requests):
                started = time.perf_counter()
                response = await client.get(path, headers=AUTH)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            samples.sort()
            results[path] = {
                "p50_ms": round(statistics.median(samples), 1),
                "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 1),
                "bytes": len(response.content),
            }
            shown = results[path]
            print(f"{path:32} p50 {shown['p50_ms']:6.1f} ms   p99 {shown['p99_ms']:6.1f} ms")
    engine.dispose()
    return results


def serve(state_dir: str, port: int) -> None:
    """The child process: the console alone under uvicorn on the bench database."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    settings = settings_for(Path(state_dir))
    engine = create_engine_for(settings.resolved_database_url)
    app = Starlette(
        routes=[Mount("/console", app=build_console(settings, lambda: engine, Tokens(TOKEN)))]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def fan_out(settings: Settings, pages: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(settings.resolved_state_dir), str(port)]
    )
    base = f"http://127.0.0.1:{port}/console"
    events = 0
    try:
        async with httpx.AsyncClient(
            timeout=None, limits=httpx.Limits(max_connections=pages + 5)
        ) as client:
            for _ in range(100):
                try:
                    if (await client.get(base + "/", headers=AUTH)).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)

            async def listen() -> None:
                nonlocal events
                async with client.stream("GET", base + "/events", headers=AUTH) as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("event: change"):
                            events += 1

            tasks = [asyncio.create_task(listen()) for _ in range(pages)]
            await asyncio.sleep(2)  # every page connected and told the current state
            connected = events
            idle_start = cpu_seconds(child.pid)
            await asyncio.sleep(seconds)
            idle = cpu_seconds(child.pid) - idle_start
            engine = create_engine_for(settings.resolved_database_url)
            busy_start, before = cpu_seconds(child.pid), events
            for n in range(int(seconds)):
                with engine.begin() as conn:
                    work.set_state(conn, "issue-0", "issue-issue-0-wf", FINAL[n % 2])
                await asyncio.sleep(1)
            busy = cpu_seconds(child.pid) - busy_start
            delivered = events - before
            engine.dispose()
            for task in tasks:
                task.cancel()
    finally:
        child.terminate()
        child.wait(timeout=10)
    result = {
        "pages": pages,
        "connected_events": connected,
        "idle_cpu_percent": round(idle / seconds * 100, 2),
        "changing_cpu_percent": round(busy / seconds * 100, 2),
        "changes": int(seconds),
        "events_delivered": delivered,
    }
    print(
        f"SSE, {pages} pages: idle {result['idle_cpu_percent']} % of a core, "
        f"1 change/s {result['changing_cpu_percent']} % ({delivered} events delivered "
        f"for {int(seconds)} changes)"
    )
    return result


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--finished", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        settings = settings_for(Path(tmp))
        started = time.perf_counter()
        fill(settings, args.finished, args.in_flight)
        took = time.perf_counter() - started
        print(f"filled {args.finished} finished + {args.in_flight} in flight in {took:.1f} s")
        renders = asyncio.run(render_times(settings, args.requests))
        sse = asyncio.run(fan_out(settings, args.pages, args.seconds))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"render": renders, "sse": sse}, indent=2))


if __name__ == "__main__":
    main()
