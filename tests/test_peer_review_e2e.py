"""Peer review end to end: after verification passed, the stand-in reviewer CLI (Claude
Code's stream, another model than the author's) reviews a read-only copy of the work.
Approve accepts; concerns go back to the author once and are reviewed again; a blocker
stops the sub-task and asks a human on its sub-issue. The review's cost is in the ledger
under the reviewer; its verdict is in the sub-issue's comment and the report row.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_worker.sandbox import fake_reviewer
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import DEMO_SOLUTIONS, SandboxWorld
from tests.support.e2e import row_of, running
from tests.support.local_agents import traversable_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

APPROVE = json.dumps({"verdict": "approve", "summary": "meets the criteria"})
CONCERNS = json.dumps(
    {
        "verdict": "concerns",
        "summary": "one gap",
        "findings": [
            {"file": "calc/add.py", "line": 2, "severity": "medium", "text": "floats untested"}
        ],
    }
)
BLOCKER = json.dumps(
    {
        "verdict": "blocker",
        "summary": "deletes user data",
        "findings": [{"file": "calc/add.py", "line": 1, "severity": "high", "text": "rm -rf"}],
    }
)
REVIEWER_MODEL = "reviewer-model"


def plan_of(key: str) -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    chosen = [dict(s, depends_on=[]) for s in plan["subtasks"] if s["key"] == key]
    return {"summary": plan["summary"], "subtasks": chosen}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SandboxWorld]:
    with SandboxWorld(tmp_path / "world", plan=plan_of("add-function")) as started:
        yield started


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may traverse (the reviewer may run unprivileged)."""
    with traversable_dir("edge-worker-review-e2e-") as root:
        yield root


def env_for(shared: Path, answers: list[str]) -> dict[str, str]:
    binary = fake_reviewer.install(shared / "bin", shared / "state", answers, cost_usd=0.07)
    return {
        "EDGE_WORKER_STRATEGY": "local-only",
        "EDGE_WORKER_REVIEW__MODE": "all",
        "EDGE_WORKER_REVIEW__REVIEWERS": "claude-code",
        "EDGE_WORKER_REVIEW__CLAUDE_MODEL": REVIEWER_MODEL,
        "EDGE_WORKER_REVIEW__CLAUDE_BINARY": str(binary),
    }


def review_entries(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in ledger if e["kind"] == "review"]


def test_an_approving_review_accepts_and_is_shown_with_its_cost(
    world: SandboxWorld, tmp_path: Path, shared: Path
) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **env_for(shared, [APPROVE])) as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done"
        calls = fake_reviewer.calls(shared / "state")
        assert len(calls) == 1
        assert calls[0]["model"] == REVIEWER_MODEL
        author = e2e.agent_calls(world.linear.store.find_issue(issue_id).identifier, "add-function")
        assert len(author) == 1 and author[0].get("model") != REVIEWER_MODEL
        writes = calls[0]["writes"]
        assert isinstance(writes, list) and all(str(w).startswith("refused") for w in writes)
        entries = review_entries(e2e.ledger(issue_id))
        assert [(e["executor"], e["usd_micros"]) for e in entries] == [("claude-code", 70_000)]
        child = world.linear.store.children_of(issue_id)[0]
        comment = e2e.result_comment(child.id)
        assert "**Peer review**: approve by claude-code (reviewer-model), cost $0.07" in comment
        assert "$0.19" in row_of(e2e.report(issue_id), child.identifier)  # $0.12 + the review
        # the row's note (the report lists each row's note under it)
        assert f"- {child.identifier}: review: approve by claude-code, $0.07" in e2e.report(
            issue_id
        )


def test_concerns_go_back_to_the_author_once_then_are_reviewed_again(
    world: SandboxWorld, tmp_path: Path, shared: Path
) -> None:
    edits = [{"path": p, "content": c} for p, c in DEMO_SOLUTIONS["add-function"].items()]
    world.tasks["add-function"] = {
        "runs": [
            {"text": "Done: add-function.", "edits": edits, "cost_usd": 0.12},
            {"text": "Added a float test as the review asked.", "cost_usd": 0.03},
        ]
    }
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **env_for(shared, [CONCERNS, APPROVE])) as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done"
        identifier = world.linear.store.find_issue(issue_id).identifier
        author = e2e.agent_calls(identifier, "add-function")
        assert len(author) == 2
        assert author[1]["resume"] == author[0]["session_id"]  # the same session, fed back
        assert "floats untested" in author[1]["prompt"]
        assert len(fake_reviewer.calls(shared / "state")) == 2
        assert len(review_entries(e2e.ledger(issue_id))) == 2
        child = world.linear.store.children_of(issue_id)[0]
        comment = e2e.result_comment(child.id)
        assert "approve by claude-code (reviewer-model), cost $0.07, 2 rounds" in comment


def test_a_blocker_stops_the_sub_task_and_asks_a_human_on_the_sub_issue(
    world: SandboxWorld, tmp_path: Path, shared: Path
) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", **env_for(shared, [BLOCKER])) as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "failed"
        identifier = world.linear.store.find_issue(issue_id).identifier
        assert len(e2e.agent_calls(identifier, "add-function")) == 1  # no feedback round
        child = world.linear.store.children_of(issue_id)[0]
        bodies = [c.body for c in world.linear.store.comments_on(child.id)]
        asked = [b for b in bodies if "peer review found a blocker" in b]
        assert len(asked) == 1 and "deletes user data" in asked[0] and "rm -rf" in asked[0]
        comment = e2e.result_comment(child.id)
        assert "**Peer review**: blocker" in comment
        assert e2e.subtask_rows(issue_id)["add-function"][0] == "failed"
