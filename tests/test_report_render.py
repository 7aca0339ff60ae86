"""Report and result comments: marker first, a row per sub-issue, costs with unpriced parts."""

from __future__ import annotations

from decimal import Decimal

from edge_worker.costs.money import Total
from edge_worker.executors.base import Evidence
from edge_worker.reporting.markers import find_marker, marker
from edge_worker.reporting.report import (
    NO_SUBTASKS_YET,
    ReportModel,
    SubtaskRow,
    fenced,
    format_duration,
    render_report,
    render_subtask_result,
    tail,
    verification_summary,
)

PARSER = SubtaskRow(
    key="parser",
    title="Add the parser",
    identifier="ENG-13",
    url="https://linear.app/acme/issue/ENG-13",
    executor="codegen",
    status="succeeded",
    verification="3/3 passed",
    iterations=1,
    cost=Total.sum(["1.20", "0.22"]),
    duration_seconds=252,
    pr_url="https://github.com/acme/app/pull/12",
)
DOCS = SubtaskRow(
    key="docs",
    title="Document | the flags",
    identifier="ENG-14",
    url=None,
    executor="claude-code",
    status="failed",
    verification="1/2 passed",
    iterations=3,
    cost=Total.sum([None, "2.00"]),
    duration_seconds=3725,
    branch="edge-worker/eng-14-docs",
    note="fell back to claude-code: Codegen unavailable: quota",
)


def model(**changes: object) -> ReportModel:
    values: dict[str, object] = {
        "issue_id": "issue-uuid-1",
        "issue_identifier": "ENG-12",
        "state": "done",
        "rows": [PARSER, DOCS],
        "total": Total.sum(["0.30", "1.20", "0.22", None, "2.00"]),
        "today_spend": Total.sum(["7.10", None]),
        "daily_limit": Decimal("20"),
    }
    values.update(changes)
    return ReportModel(**values)  # type: ignore[arg-type]


def test_the_report_starts_with_its_hidden_marker() -> None:
    body = render_report(model())
    assert body.startswith(marker("report", "issue-uuid-1") + "\n")
    assert find_marker(body, "report", "issue-uuid-1")
    assert not find_marker(body, "report", "ENG-12")


def test_heading_names_the_state_and_who_stopped_it() -> None:
    assert "## edge-worker: ENG-12 is done" in render_report(model())
    stopped = render_report(model(state="stopped", stopped_by="Ada Lovelace"))
    assert "## edge-worker: ENG-12 is stopped" in stopped
    assert "Stopped by Ada Lovelace." in stopped
    assert "is over budget" in render_report(model(state="over_budget"))
    assert "is timed out" in render_report(model(state="timed_out"))


def test_a_row_per_sub_issue_with_every_column() -> None:
    lines = render_report(model()).splitlines()
    header = next(line for line in lines if line.startswith("| Sub-issue"))
    assert header == (
        "| Sub-issue | Executor | Status | Verification | Iterations | Cost | Duration | Link |"
    )
    assert (
        "| [ENG-13 Add the parser](https://linear.app/acme/issue/ENG-13) | codegen | done "
        "| 3/3 passed | 1 | $1.42 | 4m 12s | [PR #12](https://github.com/acme/app/pull/12) |"
    ) in lines
    assert (
        "| ENG-14 Document \\| the flags | claude-code | failed | 1/2 passed | 3 "
        "| $2.00 + 1 unpriced run | 1h 02m | `edge-worker/eng-14-docs` |"
    ) in lines


def test_totals_name_unpriced_parts_and_today_shows_the_limit() -> None:
    body = render_report(model())
    assert (
        "**Total:** $3.72 + 1 unpriced run (at least $3.72: unpriced runs have no known cost)"
        in body
    )
    assert "**Today:** $7.10 + 1 unpriced run of the $20.00 daily budget (35 %)" in body
    unlimited = render_report(model(daily_limit=None, total=Total.sum(["1"])))
    assert "**Total:** $1.00  \n**Today:**" in unlimited
    assert "at least" not in unlimited
    assert "**Today:** $7.10 + 1 unpriced run (no daily limit)" in unlimited
    all_unpriced = render_report(model(total=Total.sum([None, None])))
    assert "**Total:** unpriced  \n" in all_unpriced


def test_planning_cost_is_shown_apart_from_the_rows() -> None:
    body = render_report(model(planning_cost=Total.sum(["0.30"])))
    assert "**Planning:** $0.30  \n**Total:** $3.72" in body
    assert "**Planning:**" not in render_report(model())


def test_notes_carry_fallbacks_and_budget_messages() -> None:
    body = render_report(model(notes=["issue budget reached"]))
    assert "- ENG-14: fell back to claude-code: Codegen unavailable: quota" in body
    assert "- issue budget reached" in body
    assert "**Notes**" not in render_report(model(rows=[PARSER]))


def test_a_report_before_any_sub_issue() -> None:
    body = render_report(model(state="planning", rows=[], total=Total()))
    assert "## edge-worker: ENG-12 is planning" in body
    assert NO_SUBTASKS_YET in body
    assert "| Sub-issue" not in body
    assert "**Total:** $0.00" in body


def test_table_cells_survive_hostile_text() -> None:
    row = SubtaskRow(
        key="x",
        title="a | b\nc [link](evil)",
        executor="codex",
        status="weird_status",
        url="https://linear.app/x",
    )
    line = next(ln for ln in render_report(model(rows=[row])).splitlines() if "codex" in ln)
    assert line.count(" | ") == 7  # eight cells, none split by the title
    assert "a \\| b c \\[link\\](evil)" in line
    assert "weird status" in line


CHECKS = [
    Evidence(command="pytest -q", exit_code=0, output_tail="12 passed", duration_seconds=4.2),
    Evidence(
        command="ruff check .",
        exit_code=1,
        output_tail="x.py:1: E501 ```fence``` inside\n" + "line\n" * 60,
        duration_seconds=61,
    ),
    Evidence(command="make build", exit_code=None, reason="timed out after 600 s"),
]


def test_verification_summary() -> None:
    assert verification_summary(CHECKS) == "1/3 passed"
    assert verification_summary(CHECKS[:1]) == "1/1 passed"
    assert verification_summary([]) == "not verified"


def test_result_comment_shows_summary_link_evidence_cost_and_iterations() -> None:
    body = render_subtask_result(
        issue_id="sub-uuid-13",
        status="failed",
        summary="Added the parser; lint still fails.",
        cost=Total.sum(["1.234", None]),
        iterations=2,
        checks=CHECKS,
        pr_urls=["https://github.com/acme/app/pull/12"],
        executor="codex",
        duration_seconds=95,
        note="fell back to codex: Codegen unavailable: quota",
    )
    assert body.startswith(marker("result", "sub-uuid-13") + "\n")
    assert "### Result: failed" in body
    assert "Added the parser; lint still fails." in body
    assert "**Pull request:** [PR #12](https://github.com/acme/app/pull/12)" in body
    assert "**Verification:** 1/3 passed" in body
    assert "- ✅ `pytest -q`: exit 0 (expected 0), 4.2s" in body
    assert "- ❌ `ruff check .`: exit 1 (expected 0), 1m 01s" in body
    assert "- ❌ `make build`: exit - (expected 0), 0.0s: timed out after 600 s" in body
    assert "<details><summary>Output (last 40 lines)</summary>" in body
    assert "</details>" in body
    assert "**Cost:** $1.23 + 1 unpriced run · **Iterations:** 2 · **Duration:** 1m 35s" in body
    assert "_fell back to codex: Codegen unavailable: quota_" in body


def test_result_comment_with_a_branch_and_no_checks() -> None:
    body = render_subtask_result(
        issue_id="s",
        status="succeeded",
        summary="",
        cost=Total.of(None),
        iterations=1,
        branch="edge-worker/eng-1",
    )
    assert "**Branch:** `edge-worker/eng-1`" in body
    assert "**Verification:** not verified" in body
    assert "**Cost:** unpriced · **Iterations:** 1" in body
    assert "**Duration:**" not in body


def test_output_is_tailed_and_fenced_safely() -> None:
    text = "\n".join(f"line {n}" for n in range(100))
    assert tail(text).splitlines()[0] == "line 60"
    assert len(tail("x" * 10_000)) == 4000
    block = fenced("before ```` after")
    assert block.startswith("`````\n") and block.endswith("\n`````")
    assert fenced("plain").startswith("```\n")


def test_durations() -> None:
    assert format_duration(None) == "-"
    assert format_duration(2.46) == "2.5s"
    assert format_duration(45) == "45s"
    assert format_duration(252) == "4m 12s"
    assert format_duration(3725) == "1h 02m"
