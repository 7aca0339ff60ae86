"""Linear requests spent on one issue split into five sub-issues, trigger to final report.

Usage: ``.venv/bin/python bench/linear_calls.py [--mode user|app]``

Runs the real daemon against the stand-ins (as ``make demo`` does): the demo issue is
planned into five sub-tasks with a dependency graph, each run by the fake Claude CLI and
verified, and the stand-in counts every GraphQL request by operation. ``--mode app``
starts from an agent session (thoughts, session plan and a final response activity);
``--mode user`` from an assignment (comments only). Target: at most 40 per issue.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_worker.demo import wait_for_end  # noqa: E402
from edge_worker.sandbox.daemon import Daemon  # noqa: E402
from edge_worker.sandbox.linear import send_webhook  # noqa: E402
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld  # noqa: E402

TARGET = 40


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["user", "app"], default="user")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SandboxWorld(Path(tmp)) as world:
        issue_id = world.new_issue()
        daemon = Daemon(Path(tmp) / "state", **world.daemon_env(EDGE_WORKER_LOG_LEVEL="warning"))
        daemon.start()
        try:
            world.linear.clear_requests()
            if args.mode == "app":
                delivery = world.linear.agent_session_created(issue_id)
            else:
                delivery = world.linear.issue_assigned(issue_id, field="assigneeId")
            send_webhook(daemon.url + "/webhooks/linear", WEBHOOK_SECRET, delivery)
            state = wait_for_end(daemon, issue_id, 300)
        finally:
            daemon.stop()
        counts = world.linear.operation_counts()
        total = sum(counts.values())
        subissues = len(world.linear.store.children_of(issue_id))
    print(f"mode={args.mode} final state={state} sub-issues={subissues}")
    for operation, count in sorted(counts.items()):
        print(f"  {operation:22s} {count}")
    verdict = "within" if total <= TARGET else "OVER"
    print(f"Linear requests for the issue: {total} ({verdict} the target of {TARGET})")
    return 0 if state == "done" and total <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
