"""Editing one row of a rendered report in place (sans-I/O)."""

from __future__ import annotations

from edge_worker.costs.money import Total
from edge_worker.reporting.report import ReportModel, SubtaskRow, render_report
from edge_worker.reporting.report_edit import with_row_status


def report() -> str:
    rows = [
        SubtaskRow("api", "Orders | API", "claude-code", "done", "ENG-13", "https://l/13"),
        SubtaskRow("ui", "Show orders", "codex", "done", "ENG-14", "https://l/14"),
    ]
    model = ReportModel(
        issue_id="i-1",
        issue_identifier="ENG-12",
        state="done",
        rows=rows,
        total=Total(),
        today_spend=Total(),
        daily_limit=None,
    )
    return render_report(model)


def status_cell(body: str, identifier: str) -> str:
    [line] = [ln for ln in body.splitlines() if f"[{identifier} " in ln]
    return line.split(" | ")[2]


def test_only_the_named_row_changes_and_everything_else_is_kept() -> None:
    body = report()

    edited = with_row_status(body, "ENG-13", "abandoned")

    assert edited is not None
    assert status_cell(edited, "ENG-13").startswith("abandoned")
    assert status_cell(edited, "ENG-14") == "done"
    changed = [
        pair
        for pair in zip(body.splitlines(), edited.splitlines(), strict=True)
        if pair[0] != pair[1]
    ]
    assert len(changed) == 1


def test_a_repeat_or_an_unknown_row_changes_nothing() -> None:
    edited = with_row_status(report(), "ENG-13", "abandoned")
    assert edited is not None
    assert with_row_status(edited, "ENG-13", "abandoned") is None
    assert with_row_status(report(), "ENG-99", "abandoned") is None
