"""The orchestration's scheduling state (sans-I/O): what is ready, what can never run, when
the work is finished, and what the report shows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from edge_worker.costs.money import Total
from edge_worker.orchestration.plan import Plan, Subtask
from edge_worker.orchestration.progress import (
    Progress,
    blocked,
    overall_state,
    ready,
    report_model,
)


def subtask(key: str, *depends_on: str) -> dict[str, Any]:
    return {
        "key": key,
        "title": f"Do {key}",
        "description": f"Objective: {key}.",
        "role": "builder",
        "executor": "any",
        "depends_on": list(depends_on),
        "verification": [{"command": "true", "expect_exit": 0}],
    }


def demo_progress() -> Progress:
    """a, b roots; c on both; d on a; e on c and d."""
    plan = Plan.model_validate(
        {
            "summary": "five",
            "subtasks": [
                subtask("a"),
                subtask("b"),
                subtask("c", "a", "b"),
                subtask("d", "a"),
                subtask("e", "c", "d"),
            ],
        }
    )
    return Progress.start(plan)


def keys(subtasks: list[Subtask]) -> list[str]:
    return [s.key for s in subtasks]


def test_ready_follows_the_dependency_order() -> None:
    progress = demo_progress()
    assert keys(ready(progress)) == ["a", "b"]
    progress.tasks["a"].status = "running"
    assert keys(ready(progress)) == ["b"]
    progress.tasks["a"].status = "passed"
    assert keys(ready(progress)) == ["b", "d"]
    progress.tasks["b"].status = "passed"
    assert keys(ready(progress)) == ["c", "d"]
    assert not progress.finished()


@pytest.mark.parametrize(
    ("status", "verb"),
    [
        ("failed", "failed"),
        ("cancelled", "was stopped"),
        ("over_budget", "ran over budget"),
        ("timed_out", "timed out"),
    ],
)
def test_a_dependency_that_did_not_pass_blocks_its_dependents_transitively(
    status: str, verb: str
) -> None:
    progress = demo_progress()
    progress.tasks["a"].status = status  # type: ignore[assignment]
    progress.tasks["b"].status = "passed"
    found = blocked(progress)
    # c and d wait on a; e waits on c and d, blocked in the same call (no second round)
    assert [(s.key, why) for s, why in found] == [
        ("c", f"skipped: depends on `a`, which {verb}"),
        ("d", f"skipped: depends on `a`, which {verb}"),
        ("e", "skipped: depends on `c`, which was skipped"),
    ]
    assert ready(progress) == []


def test_blocked_leaves_the_progress_unchanged_and_ignores_running_work() -> None:
    progress = demo_progress()
    progress.tasks["a"].status = "failed"
    progress.tasks["b"].status = "running"
    assert keys([s for s, _ in blocked(progress)]) == ["c", "d", "e"]
    assert progress.tasks["c"].status == "pending"  # the caller applies the decision
    assert blocked(demo_progress()) == []


def test_finished_and_the_overall_state() -> None:
    progress = demo_progress()
    for record in progress.tasks.values():
        record.status = "passed"
    assert progress.finished() and overall_state(progress) == "done"
    progress.tasks["e"].status = "failed"
    assert overall_state(progress) == "failed"
    progress.tasks["d"].status = "timed_out"
    assert overall_state(progress) == "timed_out"
    progress.tasks["c"].status = "over_budget"
    assert overall_state(progress) == "over_budget"
    progress.tasks["c"].status = "running"
    assert not progress.finished()


def test_added_subtasks_join_the_plan_once() -> None:
    progress = demo_progress()
    extra = Subtask.model_validate(subtask("docs", "a"))
    again = Subtask.model_validate(subtask("a"))
    assert keys(progress.add([extra, again])) == ["docs"]
    assert keys(progress.add([extra])) == []
    assert keys(progress.plan.subtasks)[-1] == "docs"
    progress.tasks["a"].status = "passed"
    assert "docs" in keys(ready(progress))


def test_report_model_has_a_row_per_subtask_in_plan_order() -> None:
    progress = demo_progress()
    record = progress.tasks["c"]
    record.status, record.executor, record.identifier = "passed", "codegen", "ENG-4"
    record.cost_micros, record.priced_parts, record.unpriced_parts = 250_000, 1, 1
    record.iterations, record.note = 2, "fell back"
    model = report_model(
        progress,
        issue_id="issue-1",
        issue_identifier="ENG-1",
        state="working",
        total=Total(micros=1_000_000, priced=3),
        today=Total(micros=2_000_000, priced=5),
        daily_limit=Decimal("10"),
        planning_cost=Total(micros=20_000, priced=1),
        notes=["a note"],
    )
    assert [row.key for row in model.rows] == ["a", "b", "c", "d", "e"]
    row = model.rows[2]
    assert (row.executor, row.status, row.identifier, row.iterations, row.note) == (
        "codegen",
        "✅ passed",
        "ENG-4",
        2,
        "fell back",
    )
    assert row.cost == Total(micros=250_000, priced=1, unpriced=1)
    assert model.rows[0].executor == "-" and "pending" in model.rows[0].status
    assert list(model.notes) == ["a note"] and model.daily_limit == Decimal("10")
    assert (
        report_model(
            None,
            issue_id="i",
            issue_identifier="ENG-9",
            state="failed",
            total=Total(),
            today=Total(),
            daily_limit=None,
            planning_cost=None,
        ).rows
        == []
    )


def test_progress_survives_a_checkpoint_round_trip() -> None:
    progress = demo_progress()
    progress.tasks["a"].status = "passed"
    progress.tasks["a"].branch = "edge-worker/ENG-1-a"
    again = Progress.model_validate_json(progress.model_dump_json())
    assert again == progress
