"""Fault-injection soak: many issues, a daemon killed at random moments, misbehaving APIs.

Usage: ``.venv/bin/python -m bench.soak [--issues 200] [--kills 50] [--seed 1] [--out F]``

A seeded workload of ``--issues`` issues runs against the loopback stand-ins
(:class:`~edge_worker.sandbox.world.SandboxWorld`: Linear, Anthropic, Codegen, the fake
agent CLIs) and the real daemon, in app mode: each delegation sends Linear's three start
webhooks (session created, inbox notification, ``delegateId`` update), shuffled and some
delivered twice. Some issues get a follow-up reply in their session, some a stop. The
strategy is ``hybrid-smart``: each issue's two sub-tasks run one on a local agent CLI, one
on Codegen.

Meanwhile a seeded fault injector SIGKILLs the daemon (``--kills`` times) and SIGTERMs it
now and then, restarting it each time on the same state; makes Linear answer
``RATELIMITED`` (429), 5xx and slowly in bursts; Codegen 429, 402 and 5xx; the model API
529 and 500; and the local agent CLI exit non-zero or hang (a hang ends at the agent
timeout). A webhook is re-sent until the daemon answers 200, as Linear retries.

Then the faults are lifted and every issue must reach a terminal state, and the invariants
are checked from the stand-ins' own records (:func:`check`): at most one sub-issue per
plan key, one Codegen run per sub-task attempt, at most one report comment per issue and
exactly one for an issue that was neither stopped, no activity after a stopped session's
final one, and no delegation answered 200 and then lost (every one reaches a terminal
state). It prints the counts and writes them as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edge_worker.reporting.markers import marker
from edge_worker.sandbox.anthropic import ErrorAnswer
from edge_worker.sandbox.codegen import Endpoint
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.linear import WebhookDelivery, send_webhook
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from edge_worker.storage.work import TERMINAL_STATES
from tests.support.e2e import E2E

KEYS = ("add-function", "multiply-function")  # local, cloud under hybrid-smart
FINAL_ACTIVITIES = ("response", "error")
SOAK_ENV = {
    "EDGE_WORKER_STRATEGY": "hybrid-smart",
    "EDGE_WORKER_DRAIN_SECONDS": "5",
    "EDGE_WORKER_CLAUDE__TIMEOUT_SECONDS": "20",
    "EDGE_WORKER_CLAUDE__KILL_GRACE_SECONDS": "1",
    "EDGE_WORKER_CODEX__TIMEOUT_SECONDS": "20",
    "EDGE_WORKER_LINEAR__OUTAGE_PATIENCE_SECONDS": "600",
    # Codegen's real limit (10 creations a minute) would make 200 cloud runs take 20
    # minutes by itself; the soak is about faults, so both sides allow more.
    "EDGE_WORKER_CODEGEN__CREATES_PER_MINUTE": "60",
}
CODEGEN_CREATES_PER_MINUTE = 60
# Linear's 5,000 requests an hour are spent by about 150 issues with their restarts; past
# them the daemon rightly defers low-priority updates by up to an hour. The soak is about
# faults, so the stand-in allows more (the pacing is measured in bench/linear_calls.py).
LINEAR_REQUESTS_PER_HOUR = 50_000


@dataclass
class SoakIssue:
    """One issue of the workload and what was done to it."""

    issue_id: str
    kind: str  # "plain", "follow-up" or "stop"
    session_id: str = ""
    accepted: int = 0  # deliveries answered 200
    stopped_at: float | None = None


@dataclass
class SoakResult:
    """The figures a run prints and records."""

    seed: int
    issues: int
    kills: int = 0
    terms: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    duplicate_deliveries: int = 0
    end_states: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    lost: int = 0
    non_terminal: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["faults"] = dict(self.faults)
        record["end_states"] = dict(self.end_states)
        return record


def soak_plan() -> dict[str, Any]:
    """Two independent sub-tasks of the demo plan: ``add-function`` (small, local under
    hybrid-smart) and ``multiply-function`` (cloud)."""
    plan = demo_plan(sys.executable)
    plan["subtasks"] = [s for s in plan["subtasks"] if s["key"] in KEYS]
    plan["subtasks"][0]["description"] = (
        "Objective: `calc/add.py` with `add(a, b)` returning a + b.\n\n"
        "Acceptance criteria: `add(2, 3) == 5`."
    )
    return plan


class Soak:
    """The workload, the fault injector and the final checks of one run."""

    def __init__(self, root: Path, *, issues: int, kills: int, seed: int) -> None:
        self.root = root
        self.count = issues
        self.rng = random.Random(seed)
        self.fault_rng = random.Random(seed + 1)
        self.result = SoakResult(seed=seed, issues=issues)
        self.wanted_kills = kills
        self.issues: list[SoakIssue] = []
        self.restarting = threading.Lock()
        self.workload_done = threading.Event()
        self.faults_done = threading.Event()

    # -- delivering, as Linear does --------------------------------------------------------

    def deliver(self, e2e: E2E, delivery: WebhookDelivery, deadline: float = 300.0) -> None:
        """POST until the daemon answers 200 (Linear retries a refused or lost delivery)."""
        give_up = time.monotonic() + deadline
        while time.monotonic() < give_up:
            with self.restarting:
                url = e2e.daemon.url + "/webhooks/linear"
            try:
                if send_webhook(url, WEBHOOK_SECRET, delivery).status_code == 200:
                    self.result.deliveries += 1
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"delivery never accepted within {deadline}s")

    def workload(self, e2e: E2E, world: SandboxWorld, gap: float) -> None:
        later: list[tuple[float, SoakIssue]] = []
        for _ in range(self.count):
            kind = self.rng.choices(["plain", "follow-up", "stop"], [6, 2, 2])[0]
            issue = SoakIssue(world.new_issue(), kind)
            self.issues.append(issue)
            created, notified, updated = world.linear.delegation(issue.issue_id)
            issue.session_id = created.payload["agentSession"]["id"]
            batch = [created, notified, updated]
            if self.rng.random() < 0.5:
                self.rng.shuffle(batch)  # out of order
            if self.rng.random() < 0.3:
                batch.append(self.rng.choice(batch))  # delivered twice
                self.result.duplicate_deliveries += 1
            for delivery in batch:
                self.deliver(e2e, delivery)
                issue.accepted += 1
            if kind != "plain":
                later.append((time.monotonic() + self.rng.uniform(0.5, 4.0), issue))
            later = self._due(e2e, world, later)
            time.sleep(gap)
        while later:
            later = self._due(e2e, world, later)
            time.sleep(0.2)
        self.workload_done.set()

    def _due(
        self, e2e: E2E, world: SandboxWorld, later: list[tuple[float, SoakIssue]]
    ) -> list[tuple[float, SoakIssue]]:
        now, pending = time.monotonic(), []
        for at, issue in later:
            if at > now:
                pending.append((at, issue))
            elif issue.kind == "stop":
                issue.stopped_at = time.time()
                self.deliver(
                    e2e,
                    world.linear.agent_session_prompted(issue.session_id, "stop", signal="stop"),
                )
            else:
                for delivery in world.linear.session_reply(
                    issue.session_id, "Please keep the functions small."
                ):
                    self.deliver(e2e, delivery)
        return pending

    # -- faults ----------------------------------------------------------------------------

    def injector(self, e2e: E2E, world: SandboxWorld) -> None:
        rng = self.fault_rng
        while self.result.kills < self.wanted_kills:
            time.sleep(rng.uniform(1.0, 5.0))
            self._burst(world, rng)
            with self.restarting:
                if rng.random() < 0.85:
                    e2e.crash()
                    self.result.kills += 1
                else:
                    e2e.daemon.stop(timeout=60)
                    self.result.terms += 1
                e2e.restart()
        self.faults_done.set()

    def _burst(self, world: SandboxWorld, rng: random.Random) -> None:
        """One or two misbehaviours of the outside world, chosen by ``rng``."""
        for _ in range(rng.randint(1, 2)):
            kind = rng.choice(
                [
                    "linear-429",
                    "linear-5xx",
                    "linear-slow",
                    "codegen-429",
                    "codegen-402",
                    "codegen-5xx",
                    "model-529",
                    "model-500",
                    "agent-exit",
                    "agent-hang",
                ]
            )
            self.result.faults[kind] += 1
            if kind == "linear-429":
                world.linear.fail_next(rng.randint(1, 5), "ratelimited", status=429, reset_in=1.0)
            elif kind == "linear-5xx":
                world.linear.fail_next(rng.randint(1, 5), "server_error", status=502)
            elif kind == "linear-slow":
                world.linear.latency_seconds = rng.uniform(0.2, 1.0)
                threading.Timer(rng.uniform(1, 4), self._fast, (world,)).start()
            elif kind.startswith("codegen-"):
                status = {"codegen-429": 429, "codegen-402": 402, "codegen-5xx": 500}[kind]
                endpoint: Endpoint = "create" if status == 402 else rng.choice(["create", "get"])
                world.codegen.fail_next(endpoint, status, retry_after=1.0, times=rng.randint(1, 3))
            elif kind.startswith("model-"):
                status = 529 if kind == "model-529" else 500
                world.anthropic.script(*[ErrorAnswer(status)] * rng.randint(1, 2))
            else:
                behaviour = {"behaviour": "crash", "exit_code": 3}
                if kind == "agent-hang":
                    behaviour = {"behaviour": "hang"}
                self._agent_fault(world, behaviour, rng.uniform(1, 4))

    @staticmethod
    def _fast(world: SandboxWorld) -> None:
        world.linear.latency_seconds = 0.0

    @staticmethod
    def _agent_fault(world: SandboxWorld, run: dict[str, Any], seconds: float) -> None:
        """For ``seconds``, the first run of every new local sub-task misbehaves."""
        runs = world.tasks["add-function"]["runs"]
        runs.insert(0, run)
        world.scenario_path()

        def lift() -> None:
            if run in runs:
                runs.remove(run)
                world.scenario_path()

        threading.Timer(seconds, lift).start()

    # -- the end ---------------------------------------------------------------------------

    def wait_terminal(self, e2e: E2E, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.ended(e2e, issue) for issue in self.issues):
                return
            time.sleep(1.0)

    def ended(self, e2e: E2E, issue: SoakIssue) -> bool:
        session = e2e.world.linear.store.sessions[issue.session_id]
        return e2e.work_state(issue.issue_id) in TERMINAL_STATES and session.status in (
            "complete",
            "error",
        )

    def check(self, e2e: E2E) -> None:
        """Count the invariants' violations into :attr:`result` (see the module doc)."""
        world, result = e2e.world, self.result
        store = world.linear.store
        for issue in self.issues:
            state = e2e.work_state(issue.issue_id)
            result.end_states[str(state)] += 1
            if not self.ended(e2e, issue):
                result.non_terminal += 1
                if state is None and issue.accepted:
                    result.lost += 1
                    result.problems.append(f"{issue.issue_id}: accepted, never started")
                else:
                    session = store.sessions[issue.session_id]
                    result.problems.append(
                        f"{issue.issue_id}: work {state}, session {session.status}"
                    )
            titles = Counter(c.title for c in store.children_of(issue.issue_id))
            for title, n in titles.items():
                if n > 1:
                    result.duplicates += n - 1
                    result.problems.append(f"{issue.issue_id}: {n} sub-issues {title!r}")
            wanted = marker("report", issue.issue_id)
            reports = [c for c in store.comments_on(issue.issue_id) if wanted in c.body]
            if len(reports) > 1 or (not reports and state in ("done", "failed")):
                result.duplicates += max(0, len(reports) - 1)
                result.problems.append(f"{issue.issue_id}: {len(reports)} report comments")
            if issue.kind == "stop":
                self._check_stop(e2e, issue)
        runs = Counter(
            tuple(sorted((run.metadata or {}).items())) for run in world.codegen.runs.values()
        )
        for run_key, n in runs.items():
            if n > 1:
                result.duplicates += n - 1
                result.problems.append(f"{n} Codegen runs for {dict(run_key)}")

    def _check_stop(self, e2e: E2E, issue: SoakIssue) -> None:
        """Nothing is said in a stopped session after its final activity."""
        said = [
            a
            for a in e2e.world.linear.store.activities_of(issue.session_id)
            if a.content.get("type") in ("thought", "action", "elicitation", *FINAL_ACTIVITIES)
            and issue.stopped_at is not None
            and a.created_at >= issue.stopped_at
        ]
        finals = [i for i, a in enumerate(said) if a.content["type"] in FINAL_ACTIVITIES]
        if finals and finals[0] != len(said) - 1:
            later = [(a.content["type"], str(a.content.get("body", ""))[:120]) for a in said]
            after = len(said) - 1 - finals[0]
            self.result.duplicates += after
            self.result.problems.append(
                f"{issue.issue_id}: {after} activities after the stop's final one: {later}"
            )

    # -- the run ---------------------------------------------------------------------------

    def run(self, *, gap: float = 0.2, end_timeout: float = 600.0) -> SoakResult:
        started = time.monotonic()
        plan = soak_plan()
        with SandboxWorld(self.root / "world", plan=plan) as world:
            world.codegen.creates_per_minute = CODEGEN_CREATES_PER_MINUTE
            world.linear.requests_per_hour = LINEAR_REQUESTS_PER_HOUR
            e2e = E2E(world, self.root / "state", **SOAK_ENV).start()
            try:
                threads = [
                    threading.Thread(target=self.workload, args=(e2e, world, gap), daemon=True),
                    threading.Thread(target=self.injector, args=(e2e, world), daemon=True),
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                self._fast(world)  # faults lifted (scripted failures already queued drain)
                self.wait_terminal(e2e, end_timeout)
                self.check(e2e)
            finally:
                proc = e2e.daemon.proc
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(timeout=10)
        self.result.seconds = round(time.monotonic() - started, 1)
        return self.result


def run_soak(root: Path, *, issues: int, kills: int, seed: int, **kw: Any) -> SoakResult:
    """Run one soak in ``root`` (stand-ins, daemon state) and return its figures."""
    return Soak(root, issues=issues, kills=kills, seed=seed).run(**kw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between issues")
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    parser.add_argument("--keep", type=Path, help="work here and keep the state and logs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = args.keep or Path(tmp)
        result = run_soak(root, issues=args.issues, kills=args.kills, seed=args.seed, gap=args.gap)
    record = result.as_json()
    args.out.write_text(json.dumps(record, indent=2))
    for name in ("issues", "kills", "terms", "deliveries", "duplicate_deliveries"):
        print(f"{name}: {record[name]}")
    print(f"faults: {dict(sorted(result.faults.items()))}")
    print(f"end states: {dict(result.end_states)}")
    for name in ("duplicates", "lost", "non_terminal", "seconds"):
        print(f"{name}: {record[name]}")
    for problem in result.problems[:40]:
        print("  problem:", problem)
    sys.exit(1 if result.duplicates or result.lost or result.non_terminal else 0)


if __name__ == "__main__":
    main()
