"""The console's sans-I/O parts: the plan graph, the spend chart, what an issue waits on,
budget bars, and the daily report's sections and recommendations."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from edge_worker.console.dbos_reader import evidence_from_steps, linear_url_from_steps
from edge_worker.console.records import IssueRecord, PlannedTask, RunRecord
from edge_worker.console.svg import Bar, GraphNode, layers, plan_graph, spend_chart
from edge_worker.console.views import (
    PROGRESS_SHOWN,
    WAIT_DAY_BUDGET,
    WAIT_HUMAN,
    WAIT_ISSUE_BUDGET,
    WAIT_PLANNER,
    budget,
    issue_view,
    linear_limit,
    run_line,
    waiting_on,
)
from edge_worker.costs.ledger import LedgerRow
from edge_worker.costs.money import Total
from edge_worker.executors.base import Usage
from edge_worker.linear.limits import RateLimitSnapshot
from edge_worker.reporting.daily_report import (
    NOTHING,
    DayFacts,
    EndedIssue,
    EndedSubtask,
    build_daily_report,
    render_markdown,
)
from edge_worker.storage.activity_log import ActivityLine

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def node(key: str, *deps: str, status: str = "pending") -> GraphNode:
    return GraphNode(key, f"title of {key}", status, "codex", deps)


def test_layers_follow_the_longest_dependency_chain() -> None:
    nodes = [node("a"), node("b", "a"), node("c", "a", "b"), node("d"), node("e", "zzz")]
    assert layers(nodes) == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 0}


def test_a_cycle_does_not_loop_forever() -> None:
    assert set(layers([node("a", "b"), node("b", "a")])) == {"a", "b"}


def test_plan_graph_is_valid_svg_with_one_edge_per_dependency_and_escaped_text() -> None:
    nodes = [
        node("a", status="passed"),
        node("b<x>", "a", status="running"),
        node("c", "a", "b<x>"),
    ]
    svg = plan_graph(nodes)
    root = ET.fromstring(svg)  # well-formed, titles escaped
    assert len(root.findall(f".//{SVG}path[@class='edge']")) == 3
    links = root.findall(f".//{SVG}a")
    assert [a.get("data-key") for a in links] == ["a", "b<x>", "c"]
    assert [a.get("data-status") for a in links] == ["passed", "running", "pending"]
    xs = {a.get("data-key"): int(a.find(f"{SVG}rect").get("x")) for a in links}  # type: ignore[union-attr]
    assert xs["a"] < xs["b<x>"] < xs["c"]


def test_spend_chart_scales_bars_and_marks_unpriced_days() -> None:
    bars = [
        Bar("2026-03-01", 2_000_000, 0, "$2.00", "?day=2026-03-01"),
        Bar("2026-03-02", 1_000_000, 2, "$1.00 + 2 unpriced runs", "?day=2026-03-02"),
        Bar("2026-03-03", 0, 0, "$0.00", "?day=2026-03-03"),
    ]
    root = ET.fromstring(spend_chart(bars))
    heights = [int(r.get("height")) for r in root.findall(f".//{SVG}rect")]  # type: ignore[arg-type]
    assert abs(heights[0] - 2 * heights[1]) <= 1  # proportional to the spend
    assert heights[0] > heights[1] > heights[2] >= 1
    marks = [t for t in root.iter(f"{SVG}text") if t.text == "?"]
    assert len(marks) == 1


def record(state: str, **kw: object) -> IssueRecord:
    base: dict[str, object] = {
        "issue_id": "i1",
        "identifier": "ENG-1",
        "state": state,
        "workflow_id": "wf",
        "subtasks_total": 2,
        "started_at": NOW - timedelta(minutes=5),
        "updated_at": NOW,
    }
    base.update(kw)
    return IssueRecord(**base)  # type: ignore[arg-type]


def test_waiting_on_names_what_blocks_the_issue() -> None:
    def wait(rec: IssueRecord, **kw: object) -> str:
        args: dict[str, object] = {"queued": 0, "issue_limit": None, "day_over": False} | kw
        return waiting_on(rec, **args)  # type: ignore[arg-type]

    assert wait(record("planning")) == WAIT_PLANNER
    assert wait(record("waiting")) == WAIT_HUMAN
    assert wait(record("working", running_on=("codegen", "codex"))) == "executor: codegen, codex"
    both = record("working", running_on=("codex", "codegen", "codex"))
    assert wait(both) == "executor: codegen, codex (2 runs)"
    assert "2 run(s) queued" in wait(record("working"), queued=2)
    assert wait(record("working"), day_over=True) == WAIT_DAY_BUDGET
    spent = record("working", spend=Total(micros=5_000_000, priced=1))
    assert wait(spent, issue_limit=Decimal(5)) == WAIT_ISSUE_BUDGET


def test_budget_bar_never_shows_unpriced_as_zero() -> None:
    unpriced = budget(Total(unpriced=2), Decimal(10))
    assert unpriced.spent == "unpriced" and unpriced.percent == 0 and unpriced.unpriced == 2
    half = budget(Total(micros=5_000_000, priced=1, unpriced=1), Decimal(10))
    assert (half.spent, half.limit, half.percent, half.over) == (
        "$5.00 + 1 unpriced run",
        "$10.00",
        50,
        False,
    )
    assert budget(Total(micros=12_000_000, priced=1), Decimal(10)).percent == 100
    assert budget(Total(micros=1, priced=1), None).percent is None


def test_run_line_of_a_finished_and_a_running_run() -> None:
    outcome = {
        "status": "passed",
        "iterations": 2,
        "cost": {"micros": 1_234_567, "priced": 2, "unpriced": 0},
        "duration_seconds": 95.0,
        "pr_url": "https://github.com/o/r/pull/7",
        "branch": None,
        "verification": "2/2 checks passed",
        "summary": "done",
        "note": None,
    }
    done = run_line(RunRecord("wf-a-1", "a", 1, "codegen", "passed", NOW, NOW, outcome), NOW)
    assert (done.status, done.iterations, done.cost, done.duration) == (
        "passed",
        "2",
        "$1.23",
        "1m",
    )
    running = run_line(
        RunRecord("wf-a-2", "a", 2, "codex", "PENDING", NOW - timedelta(seconds=75), None), NOW
    )
    assert (running.status, running.cost, running.duration) == ("running", "-", "1m so far")
    cancelled = run_line(
        RunRecord("wf-a-3", "a", 3, "codex", "CANCELLED", NOW - timedelta(seconds=75), NOW), NOW
    )
    assert (cancelled.status, cancelled.duration) == ("cancelled", "-")


def ledger_row(issue: str, executor: str, model: str | None, micros: int | None) -> LedgerRow:
    return LedgerRow(
        entry_id=f"{issue}-{executor}-{micros}",
        created_at=NOW,
        day=NOW.date(),
        issue_id=issue,
        issue_identifier=issue,
        subtask_key="k",
        kind="run",
        executor=executor,
        model=model,
        attempt=1,
        usage=Usage(),
        usd_micros=micros,
    )


def ended(identifier: str, state: str, minutes: int, micros: int) -> EndedIssue:
    return EndedIssue(
        identifier, state, NOW - timedelta(minutes=minutes), NOW, Total(micros=micros, priced=1)
    )


def test_daily_report_sections_and_recommendations_come_from_the_data() -> None:
    tasks = [
        EndedSubtask("ENG-1", f"k{n}", "codegen", "failed" if n < 4 else "passed") for n in range(9)
    ]
    facts = DayFacts(
        day=NOW.date(),
        timezone="UTC",
        issues=[
            ended("ENG-1", "done", 90, 3_000_000),
            ended("ENG-2", "failed", 10, 9_000_000),
            ended("ENG-3", "over_budget", 30, 1_000_000),
        ],
        subtasks=tasks,
        ledger=[
            ledger_row("ENG-1", "codegen", None, 3_000_000),
            ledger_row("ENG-2", "claude-code", "sonnet", None),
            ledger_row("ENG-2", "claude-code", "sonnet", 9_000_000),
        ],
        daily_limit=Decimal(14),
    )
    report = build_daily_report(facts)
    sections = {s.title: s.lines for s in report.sections}
    assert report.summary == (
        "3 issues ended (1 done, 1 failed, 1 over budget); spend $12.00 + 1 unpriced run."
    )
    assert sections["Longest work"][0].startswith("ENG-1: 1h")
    assert sections["Most expensive work"][0] == "ENG-2: $9.00 (failed)"
    assert "sub-tasks failed: 4" in sections["Failure classes"]
    recs = sections["Recommendations"]
    assert recs[0].startswith("codegen sub-tasks failed 4 of 9 times")
    assert any("claude-code/sonnet have no price" in r for r in recs)
    assert any("85 % of the daily budget of $14.00" in r for r in recs)
    assert any("ENG-3" in r and "over budget" in r for r in recs)
    markdown = render_markdown(report)
    assert markdown.startswith(f"# Daily report for {NOW.date().isoformat()} (UTC)\n")
    for section in report.sections:
        assert f"## {section.title}" in markdown
        assert all(f"- {line}" in markdown for line in section.lines)


def test_an_empty_day_says_so() -> None:
    report = build_daily_report(DayFacts(date(2026, 1, 1), "UTC", [], [], []))
    assert report.summary == NOTHING and report.sections == ()


def test_evidence_is_the_latest_verification_of_a_run() -> None:
    def verify(*codes: int | None) -> dict[str, object]:
        checks = [{"command": f"check {n}", "exit_code": c} for n, c in enumerate(codes)]
        return {"function_name": "steps.verify_step", "output": {"checks": checks}}

    steps = [
        {"function_name": "steps.follow_run_step", "output": {"status": "succeeded"}},
        verify(1, 0),
        {"function_name": "steps.resume_run_step", "output": {}},
        verify(0, None),
    ]
    checks, count = evidence_from_steps(steps)
    assert count == 2
    assert [(c.command, c.exit_code, c.passed) for c in checks] == [
        ("check 0", 0, True),
        ("check 1", None, False),
    ]
    assert evidence_from_steps(steps[:1]) == ((), 0)


def test_linear_rate_limit_is_shown_and_blocks_only_when_used_up() -> None:
    reset = NOW.timestamp() + 600
    assert linear_limit(None, NOW).limited_until is None
    fine = linear_limit(RateLimitSnapshot(5000, 4321, reset), NOW)
    assert fine.limited_until is None
    assert fine.text == "4,321 of 5,000 Linear requests left, renewed at 12:10 UTC"
    spent = linear_limit(
        RateLimitSnapshot(5000, 10, reset, complexity_remaining=0, complexity_reset_at=reset),
        NOW,
    )
    assert spent.limited_until == "12:10"
    past = linear_limit(RateLimitSnapshot(5000, 0, NOW.timestamp() - 1), NOW)
    assert past.limited_until is None  # the window has renewed since
    waiting = waiting_on(
        record("working"), queued=1, issue_limit=None, day_over=False, linear_until="12:10"
    )
    assert waiting == "Linear's rate limit (until 12:10 UTC)"


def test_issue_view_puts_progress_under_its_run_and_the_rest_in_the_activity_log() -> None:
    record = IssueRecord("i-1", "ENG-1", "working", "wf", 1, NOW, NOW)
    plan = [PlannedTask("a", "title of a", "coder", "any", ())]
    runs = [
        RunRecord("wf-a-1", "a", 1, "codex", "SUCCESS", NOW, NOW, {"status": "failed"}),
        RunRecord("wf-a-2", "a", 2, "codex", "PENDING", NOW, None),
    ]
    yesterday = NOW - timedelta(days=1)
    said = [ActivityLine(yesterday, "thought", "Planning ENG-1.", None)]
    said += [ActivityLine(NOW, "action", f"Edit file{n}.py", "wf-a-1") for n in range(3)]
    said += [
        ActivityLine(NOW + timedelta(seconds=n), "thought", f"line {n}", "wf-a-2")
        for n in range(PROGRESS_SHOWN + 5)
    ]
    said.append(ActivityLine(NOW, "response", "All done.", None))
    view = issue_view(
        record,
        plan,
        runs,
        {"a": ("running", "codex")},
        {},
        issue_limit=None,
        now=NOW,
        activity=said,
    )
    assert [(e.kind, e.body) for e in view.activity] == [
        ("thought", "Planning ENG-1."),
        ("response", "All done."),
    ]
    assert view.activity[0].at == "2026-03-01 12:00:00"  # another day: with its date
    assert view.activity[1].at == "12:00:00"
    first, second = view.tasks[0].runs
    assert [p.body for p in first.progress] == ["Edit file0.py", "Edit file1.py", "Edit file2.py"]
    assert first.progress_total == 3
    assert second.progress_total == PROGRESS_SHOWN + 5
    assert len(second.progress) == PROGRESS_SHOWN
    assert second.progress[-1].body == f"line {PROGRESS_SHOWN + 4}"  # the latest kept


def test_the_linear_url_of_work_started_before_links_comes_from_the_issue_it_read() -> None:
    issue = {"id": "i-1", "identifier": "ENG-1", "url": "https://linear.app/a/issue/ENG-1"}
    steps = [
        {"function_name": "x.now_step", "output": 1.0},
        {"function_name": "edge_worker.orchestration.steps.acknowledge_step", "output": None},
        {
            "function_name": "edge_worker.orchestration.steps.acknowledge_step",
            "output": {"issue": issue, "states": []},
        },
    ]
    assert linear_url_from_steps(steps) == "https://linear.app/a/issue/ENG-1"
    assert linear_url_from_steps(steps[:2]) is None
