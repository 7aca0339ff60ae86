"""``edge-worker demo``: the whole flow on loopback stand-ins, start to finish.

It starts stand-ins of Linear (validating every request against Linear's schema when the
schema file is present), the Anthropic Messages API (the planner) and Codegen, makes a
small git repository, starts the real daemon (``edge-worker serve``) on a fresh SQLite
file, assigns an issue to the agent with a signed webhook, waits for the orchestration to
end, and prints the report comment the daemon left on the issue, its sub-issues, the cost
ledger and the number of Linear requests it took.
"""

from __future__ import annotations

import io
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from edge_worker.sandbox.daemon import Daemon
from edge_worker.sandbox.linear import send_webhook
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from edge_worker.storage.work import TERMINAL_STATES

DEMO_TIMEOUT_SECONDS = 180.0


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_for_end(daemon: Daemon, issue_id: str, timeout: float) -> str | None:
    """The issue's terminal work state once the daemon reaches one, else ``None``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.sqlite_path.exists():
            with sqlite3.connect(daemon.sqlite_path) as conn:
                try:
                    row = conn.execute(
                        "SELECT state FROM ew_work_items WHERE issue_id = ?", (issue_id,)
                    ).fetchone()
                except sqlite3.OperationalError:
                    row = None
            if row and row[0] in TERMINAL_STATES:
                return str(row[0])
        time.sleep(0.25)
    return None


def run_demo(*, keep: bool = False, root: Path | None = None) -> int:
    """Run the demo; returns 0 when the issue ended done and the report is on Linear."""
    temp = None if (keep or root) else tempfile.TemporaryDirectory(prefix="edge-worker-demo-")
    base = root or (Path(temp.name) if temp else Path(tempfile.mkdtemp(prefix="edge-worker-demo-")))
    try:
        with SandboxWorld(base) as world:
            _say("stand-ins up: Linear, Anthropic (planner), Codegen; demo repository created")
            print(
                f"   Linear stand-in {world.urls['linear']} (schema validation: "
                f"{'on' if world.linear.validates else 'off, schema file not found'})"
            )
            issue_id = world.new_issue()
            issue = world.linear.store.find_issue(issue_id)
            daemon = Daemon(base / "state", **world.daemon_env(EDGE_WORKER_LOG_LEVEL="warning"))
            daemon.start()
            try:
                _say(f"daemon up at {daemon.url} (SQLite: {daemon.sqlite_path})")
                _say(f"assigning {issue.identifier} '{issue.title}' to the agent (signed webhook)")
                response = send_webhook(
                    daemon.url + "/webhooks/linear",
                    WEBHOOK_SECRET,
                    world.linear.issue_assigned(issue_id, field="assigneeId"),
                )
                print(f"   {response.status_code} {response.json()}")
                _say("waiting for the orchestration to end ...")
                state = wait_for_end(daemon, issue_id, DEMO_TIMEOUT_SECONDS)
                print(f"   final state: {state or 'did not end in time'}")
                _print_linear(world, issue_id)
                _print_costs(daemon)
            finally:
                daemon.stop()
            if state != "done":
                print("\n-- daemon log (tail) --\n" + daemon.log_text()[-4000:], file=sys.stderr)
            return 0 if state == "done" else 1
    finally:
        if temp is not None:
            temp.cleanup()
        elif keep:
            print(f"\n(kept {base})")


def _print_linear(world: SandboxWorld, issue_id: str) -> None:
    store = world.linear.store
    _say("the report comment on the issue")
    for comment in store.comments_on(issue_id):
        if "edge-worker:report" in comment.body:
            print(comment.body)
    _say("sub-issues")
    for child in store.children_of(issue_id):
        state = store.states[child.state_id]
        print(f"   {child.identifier}  [{state.name}]  {child.title}")
    counts = world.linear.operation_counts()
    _say(f"Linear requests for this issue: {sum(counts.values())}  {dict(sorted(counts.items()))}")


def _print_costs(daemon: Daemon) -> None:
    from edge_worker.costs.cli import run_costs_command
    from edge_worker.settings import Settings

    _say("edge-worker costs")
    out = io.StringIO()
    settings = Settings(state_dir=daemon.state_dir)
    run_costs_command(settings, day=None, issue=None, as_json=False, out=out)
    print(out.getvalue())
