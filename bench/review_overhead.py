"""What peer review adds per sub-task: Linear requests, and wall time outside the reviewer.

Usage: ``.venv/bin/python bench/review_overhead.py [--rounds 3]``

Runs the real daemon against the stand-ins on a one-sub-task issue (user mode), first
with review off, then with review on (the stand-in reviewer CLI approves), ``--rounds``
times each. Linear requests are counted by the Linear stand-in. The review's own wall
time is the ``review_step`` checkpoint's duration (DBOS's record) minus the reviewer
process's own run (recorded by the stand-in reviewer): the copy, the diff, parsing and
the ledger. Targets: at most 2 Linear requests and under 1 s per sub-task.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_worker.sandbox import fake_reviewer  # noqa: E402
from edge_worker.sandbox.demo_plan import demo_plan  # noqa: E402
from edge_worker.sandbox.world import SandboxWorld  # noqa: E402
from tests.support.e2e import running  # noqa: E402

APPROVE = '{"verdict": "approve", "summary": "fine"}'


def one_subtask() -> dict[str, object]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] == "add-function"]
    return {"summary": plan["summary"], "subtasks": chosen}


def run_once(review: bool) -> tuple[int, float | None]:
    """Linear requests for the issue, and the review's time outside the reviewer's run."""
    tmp = Path(tempfile.mkdtemp(prefix="edge-worker-bench-review-"))
    tmp.chmod(0o755)
    try:
        env = {"EDGE_WORKER_STRATEGY": "local-only", "EDGE_WORKER_LOG_LEVEL": "warning"}
        if review:
            binary = fake_reviewer.install(tmp / "bin", tmp / "reviews", [APPROVE])
            env |= {
                "EDGE_WORKER_REVIEW__MODE": "all",
                "EDGE_WORKER_REVIEW__REVIEWERS": "claude-code",
                "EDGE_WORKER_REVIEW__CLAUDE_MODEL": "reviewer-model",
                "EDGE_WORKER_REVIEW__CLAUDE_BINARY": str(binary),
            }
        with SandboxWorld(tmp / "world", plan=one_subtask()) as world:
            issue_id = world.new_issue()
            with running(world, tmp / "state", **env) as e2e:
                world.linear.clear_requests()
                e2e.assign(issue_id)
                state = e2e.wait_end(issue_id, 120)
                assert state == "done", state
                requests = world.linear.count()
                outside = None
                if review:
                    rows = e2e.query(
                        "SELECT completed_at_epoch_ms - started_at_epoch_ms "
                        "FROM operation_outputs WHERE function_name LIKE '%review_step'",
                        dbos=True,
                    )
                    step = sum(int(r[0]) for r in rows) / 1000
                    own = sum(
                        float(c["ended"]) - float(c["started"])  # type: ignore[arg-type]
                        for c in fake_reviewer.calls(tmp / "reviews")
                    )
                    outside = step - own
        return requests, outside
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    off = [run_once(False)[0] for _ in range(args.rounds)]
    on = [run_once(True) for _ in range(args.rounds)]
    extra = max(r for r, _ in on) - min(off)
    times = [t for _, t in on if t is not None]
    print(f"Linear requests per issue: review off {off}, review on {[r for r, _ in on]}")
    print(f"extra Linear requests per reviewed sub-task (worst): {extra}")
    print(
        f"review time outside the reviewer's run: median {statistics.median(times):.3f} s, "
        f"max {max(times):.3f} s"
    )
    return 0 if extra <= 2 and max(times) < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
