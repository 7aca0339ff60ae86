"""Supervision at scale: the daemon following 500 concurrent Codegen runs on the stand-in.

Usage: ``.venv/bin/python bench/supervise.py [--runs 500] [--scale 60] [--run-minutes 60]``

The Codegen stand-in (``edge_worker/sandbox/codegen.py``) runs in its own process and
enforces Codegen's limits (10 creations per 60 s, 60 other calls per 30 s: beyond them it
answers 429). This process is the daemon's Codegen side: one :class:`CodegenExecutor`
starting and following ``--runs`` sub-tasks at once, each run lasting ``--run-minutes``.
Creating 500 runs at 10 a minute takes 50 minutes, so with 60-minute runs all 500 are
followed at once before the first ends. Both processes share a clock that runs ``--scale``
times faster than real time (60: one simulated minute per real second), so the API's
limits and the poll interval are honoured in simulated time while the benchmark takes
about two minutes.

It prints and writes (``--out``, JSON) the API calls per simulated minute as the stand-in
recorded them, the most calls in any 60 s (creations) and 30 s (other calls) window, the
number of 429s, the peak number of runs followed at once, and this process's CPU time and
peak resident memory. CPU time is spent in ``runs-minutes / scale`` real seconds, so it is
a pessimistic figure for the daemon's real (unaccelerated) CPU share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_worker.executors.base import RunStatus, Task, VerificationCommand  # noqa: E402
from edge_worker.executors.codegen import CodegenExecutor  # noqa: E402
from edge_worker.executors.rate_limit import OrgRateLimiter  # noqa: E402
from edge_worker.settings import Settings  # noqa: E402

ORG_ID = 1
TOKEN = "bench-codegen-token"


class ScaledClock:
    """Simulated seconds since ``epoch`` (a wall-clock time), ``scale`` times real time."""

    def __init__(self, epoch: float, scale: float) -> None:
        self.epoch = epoch
        self.scale = scale

    def __call__(self) -> float:
        return (time.time() - self.epoch) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)


# -- the stand-in process ------------------------------------------------------------------


def serve(port: int, epoch: float, scale: float, run_seconds: float) -> None:
    """Serve the Codegen stand-in on ``port`` with the shared scaled clock."""
    import uvicorn

    from edge_worker.sandbox.codegen import CodegenStandIn, RunScript

    stand_in = CodegenStandIn(
        org_id=ORG_ID,
        api_token=TOKEN,
        clock=ScaledClock(epoch, scale),
        default_script=RunScript(
            statuses=["ACTIVE", "running", "RUNNING", "Running", "COMPLETE"],
            seconds_to_finish=run_seconds,
        ),
    )
    uvicorn.run(stand_in.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_stand_in(
    epoch: float, scale: float, run_seconds: float
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        str(port),
        "--epoch",
        repr(epoch),
        "--scale",
        str(scale),
        "--run-seconds",
        str(run_seconds),
    ]
    proc = subprocess.Popen(command, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"stand-in exited with {proc.returncode}")
        try:
            httpx.get(base + "/_sandbox/calls", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("stand-in did not start")


# -- the daemon side -----------------------------------------------------------------------


def task(n: int) -> Task:
    return Task(
        issue_id=f"issue-{n // 5}",
        issue_identifier=f"ENG-{n // 5}",
        key=f"t{n % 5}",
        title=f"Sub-task {n}",
        description="Make the change and open a pull request.",
        verification=[VerificationCommand(command="pytest -q")],
    )


async def supervise(
    base_url: str, clock: ScaledClock, runs: int, run_seconds: float
) -> dict[str, Any]:
    settings = Settings(
        codegen={
            "base_url": base_url,
            "org_id": ORG_ID,
            "api_token": TOKEN,
            "repo_id": 1,
            "poll_interval_seconds": 15.0,
            "run_timeout_seconds": 3 * run_seconds,
        }
    )
    limiter = OrgRateLimiter(
        settings.codegen.creates_per_minute,
        settings.codegen.calls_per_30_seconds,
        clock=clock,
        sleep=clock.sleep,
    )
    executor = CodegenExecutor(settings, limiter=limiter, clock=clock, sleep=clock.sleep)
    following = peak = 0

    async def one(n: int) -> RunStatus:
        nonlocal following, peak
        handle = await executor.start(task(n))
        following += 1
        peak = max(peak, following)
        try:
            return (await executor.follow(handle)).status
        finally:
            following -= 1

    try:
        statuses = await asyncio.gather(*(one(n) for n in range(runs)))
    finally:
        await executor.aclose()
    return {"statuses": dict(Counter(s.value for s in statuses)), "peak_followed": peak}


# -- figures -------------------------------------------------------------------------------


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def figures(calls: list[dict[str, Any]]) -> dict[str, Any]:
    creates = [c["at"] for c in calls if c["endpoint"] == "create"]
    others = [c["at"] for c in calls if c["endpoint"] != "create"]
    per_minute: dict[int, dict[str, int]] = {}
    for call in calls:
        minute = int(call["at"] // 60)
        row = per_minute.setdefault(minute, {"create": 0, "other": 0})
        row["create" if call["endpoint"] == "create" else "other"] += 1
    return {
        "calls_total": len(calls),
        "by_endpoint": dict(Counter(c["endpoint"] for c in calls)),
        "status_429": sum(1 for c in calls if c["status"] == 429),
        "max_creates_any_60s": max_in_window(creates, 60.0),
        "max_other_calls_any_30s": max_in_window(others, 30.0),
        "max_calls_any_minute": max(
            (r["create"] + r["other"] for r in per_minute.values()), default=0
        ),
        "mean_calls_per_minute": round(len(calls) / max(1, len(per_minute)), 1),
        "per_minute": {str(m): per_minute[m] for m in sorted(per_minute)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--scale", type=float, default=60.0)
    parser.add_argument("--run-minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--epoch", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-seconds", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.epoch, args.scale, args.run_seconds)
        return 0

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    run_seconds = args.run_minutes * 60.0
    epoch = time.time()
    clock = ScaledClock(epoch, args.scale)
    proc, base_url = start_stand_in(epoch, args.scale, run_seconds)
    try:
        started = time.monotonic()
        outcome = asyncio.run(supervise(base_url, clock, args.runs, run_seconds))
        elapsed = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        calls = httpx.get(base_url + "/_sandbox/calls", timeout=60).json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "runs": args.runs,
        "scale": args.scale,
        "run_minutes": args.run_minutes,
        "simulated_minutes": round(elapsed * args.scale / 60, 1),
        "real_seconds": round(elapsed, 1),
        **outcome,
        "daemon_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "daemon_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        **figures(calls),
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k != "per_minute"}
    print(json.dumps(summary, indent=2))
    within = report["max_creates_any_60s"] <= 10 and report["max_other_calls_any_30s"] <= 60
    print(
        f"{'within' if within and not report['status_429'] else 'OVER'} Codegen's limits; "
        f"peak RSS {report['daemon_peak_rss_mb']} MB (target < 100 MB)",
        file=sys.stderr,
    )
    return 0 if within and not report["status_429"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
