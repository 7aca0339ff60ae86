"""``serve`` refuses a state directory it cannot write with one clear line (no traceback).

The container test (``tests/test_container.py``) shows it for a volume the image's user
may not write; this one runs the daemon on the host, where the tests run as root, so the
directory is made impossible to create rather than read-only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge_worker.cli import EXIT_CONFIG, STATE_DIR_UNWRITABLE
from edge_worker.sandbox.daemon import AGENT, SECRET, STATIC_PLAN

BIN = Path(sys.executable).parent / "edge-worker"


def test_serve_names_the_state_directory_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    state_dir = blocker / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_WORKER_")}
    env |= {
        "EDGE_WORKER_STATE_DIR": str(state_dir),
        "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": SECRET,
        "EDGE_WORKER_LINEAR__AGENT_USER_ID": AGENT,
        "EDGE_WORKER_LINEAR__API_KEY": "lin_api_test",
        "EDGE_WORKER_PLANNER": "static",
        "EDGE_WORKER_PLANNER_STATIC_PLAN": STATIC_PLAN,
    }
    done = subprocess.run(
        [str(BIN), "serve", "--port", "9"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_CONFIG
    expected = STATE_DIR_UNWRITABLE.format(
        path=state_dir, uid=os.getuid(), reason="Not a directory"
    )
    assert done.stderr.strip().splitlines() == ["edge-worker: " + expected]
    assert blocker.read_text() == "not a directory\n"
