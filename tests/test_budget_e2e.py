"""Budgets in the flow, end to end (real daemon, stand-ins, fake agents): per task, per issue
and per day, and the money shown in the report, by ``edge-worker costs`` and on
``/metrics`` agreeing to the cent."""

from __future__ import annotations

import io
import json
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge_worker.costs.cli import run_costs_command
from edge_worker.orchestration import texts
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.world import SandboxWorld, solved_runs
from edge_worker.settings import Settings
from tests.support.e2e import E2E, row_of, running, wait_until

# Whole-daemon runs on two cores shared with other work: every wait is on a condition with
# a generous deadline (a slow machine makes a test slower, never red), within this limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
pytest_plugins = ("tests.support.world_fixtures",)

KEYS = ["add-function", "multiply-function", "cli", "unit-tests", "review"]


def sub_plan(*keys: str) -> dict[str, Any]:
    plan = demo_plan(sys.executable)
    chosen = [s for s in plan["subtasks"] if s["key"] in keys]
    for subtask in chosen:
        subtask["depends_on"] = [d for d in subtask["depends_on"] if d in keys]
    return {"summary": plan["summary"], "subtasks": chosen}


def child_by_key(e2e: E2E, issue_id: str, key: str) -> Any:
    title = next(s["title"] for s in e2e.world.plan["subtasks"] if s["key"] == key)
    return next(c for c in e2e.world.linear.store.children_of(issue_id) if c.title == title)


def budget_flag(argv: list[str]) -> str | None:
    return argv[argv.index("--max-budget-usd") + 1] if "--max-budget-usd" in argv else None


def test_per_task_limit_reaches_claude_and_stops_it(tmp_path: Path) -> None:
    plan = sub_plan("add-function", "multiply-function")
    with SandboxWorld(tmp_path / "world", plan=plan) as world:
        world.tasks["add-function"] = solved_runs("add-function", failures_first=1)  # $0.05
        world.tasks["multiply-function"] = {"runs": [{"turns": 10, "cost_per_turn": 0.2}]}
        issue_id = world.new_issue()
        env = {"EDGE_WORKER_STRATEGY": "local-only", "EDGE_WORKER_BUDGET__PER_TASK_USD": "0.50"}
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "over_budget"
            identifier = world.linear.store.find_issue(issue_id).identifier

            # The limit is passed to Claude Code; an iteration gets what is left of it.
            first, second = e2e.agent_calls(identifier, "add-function")
            assert budget_flag(first["argv"]) == "0.5"
            assert budget_flag(second["argv"]) == "0.45"
            assert (
                "passed"
                in row_of(
                    e2e.report(issue_id), child_by_key(e2e, issue_id, "add-function").identifier
                )[2]
            )

            # A run that reaches it is stopped by the CLI, marked over budget, not resumed.
            [only] = e2e.agent_calls(identifier, "multiply-function")
            assert budget_flag(only["argv"]) == "0.5"
            multiply = child_by_key(e2e, issue_id, "multiply-function")
            assert "over budget" in row_of(e2e.report(issue_id), multiply.identifier)[2]
            assert "### Result: over budget" in e2e.result_comment(multiply.id)
            assert e2e.subtask_rows(issue_id)["multiply-function"][0] == "over_budget"


def test_codex_and_codegen_over_the_task_limit_are_not_resumed(tmp_path: Path) -> None:
    plan = sub_plan("add-function", "multiply-function")
    plan["subtasks"][1]["executor"] = "cloud"
    with SandboxWorld(tmp_path / "world", plan=plan) as world:
        # Codex reports tokens only: 1M input and 50k output of gpt-5-codex price at $1.75.
        world.tasks["add-function"] = {
            "runs": [
                {
                    "text": "Spent a lot.",
                    "usage": {
                        "input_tokens": 1_000_000,
                        "cached_input_tokens": 0,
                        "output_tokens": 50_000,
                    },
                }
            ]
        }
        issue_id = world.new_issue()
        env = {
            "EDGE_WORKER_STRATEGY": "cost-optimized",  # Codex is the cheapest local executor
            "EDGE_WORKER_CODEX__MODEL": "gpt-5-codex",
            "EDGE_WORKER_CODEGEN__COST_PER_RUN_USD": "1.00",
            "EDGE_WORKER_BUDGET__PER_TASK_USD": "0.50",
        }
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "over_budget"
            identifier = world.linear.store.find_issue(issue_id).identifier
            rows = e2e.subtask_rows(issue_id)
            assert rows == {
                "add-function": ("over_budget", "codex"),
                "multiply-function": ("over_budget", "codegen"),
            }
            assert len(e2e.agent_calls(identifier, "add-function")) == 1  # not resumed
            assert world.codegen.records("resume") == []  # neither fed back nor re-verified
            report = e2e.report(issue_id)
            assert "over its per-task budget of $0.50" in report
            assert "spent $1.75" in report and "spent $1.00" in report


def test_issue_budget_stops_an_iteration(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world", plan=sub_plan("add-function")) as world:
        world.tasks["add-function"] = solved_runs("add-function", failures_first=1)
        issue_id = world.new_issue()
        env = {"EDGE_WORKER_STRATEGY": "local-only", "EDGE_WORKER_BUDGET__PER_ISSUE_USD": "0.06"}
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.assign(issue_id)
            # planner $0.02 + a first run of $0.05 reach $0.06: no second iteration
            assert e2e.wait_end(issue_id) == "over_budget"
            identifier = world.linear.store.find_issue(issue_id).identifier
            assert len(e2e.agent_calls(identifier, "add-function")) == 1
            report = e2e.report(issue_id)
            assert "no further iteration: issue budget reached" in report
            assert "is over budget" in report


def test_issue_budget_asks_to_continue_and_a_reply_raises_it_once(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """$0.30 for the issue with runs held to $0.15: the roots and `cli` fit, then nothing
    new starts and the session asks. "continue" raises the limit by $0.12 to $0.42: the
    unit tests run, the review does not fit; a second "continue" does not raise it again."""
    issue_id = world.new_issue()
    env = {
        "EDGE_WORKER_STRATEGY": "local-only",
        "EDGE_WORKER_BUDGET__PER_TASK_USD": "0.15",
        "EDGE_WORKER_BUDGET__PER_ISSUE_USD": "0.30",
        "EDGE_WORKER_BUDGET__CONTINUE_STEP_USD": "0.12",
    }
    with running(world, tmp_path / "state", **env) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = created.payload["agentSession"]["id"]
        e2e.send(created)
        identifier = world.linear.store.find_issue(issue_id).identifier

        def elicitations() -> list[Any]:
            return [
                a
                for a in world.linear.store.activities_of(session_id)
                if a.content["type"] == "elicitation"
            ]

        asked = wait_until(elicitations, timeout=180)[0]
        assert "Continue" in asked.content["body"]
        assert asked.signal == "select"  # a real choice in Linear; a typed reply works too
        assert asked.signal_metadata is not None
        assert [o["value"] for o in asked.signal_metadata["options"]] == ["continue", "stop"]
        assert world.linear.store.sessions[session_id].status == "awaitingInput"
        ran = {k for k in KEYS if e2e.agent_calls(identifier, k)}
        assert ran == {"add-function", "multiply-function", "cli"}
        report = e2e.report(issue_id)
        assert "is over budget" in report
        assert "Spending limit reached: issue budget reached" in report
        assert e2e.work_state(issue_id) == "working"

        e2e.send(world.linear.agent_session_prompted(session_id, "continue"))
        wait_until(lambda: len(elicitations()) == 2, timeout=180)
        assert {k for k in KEYS if e2e.agent_calls(identifier, k)} == {*ran, "unit-tests"}
        assert "approved continuing; issue limit now $0.42" in e2e.report(issue_id)

        e2e.send(world.linear.agent_session_prompted(session_id, "yes, please continue"))
        assert e2e.wait_end(issue_id) == "over_budget"
        assert e2e.agent_calls(identifier, "review") == []
        report = e2e.report(issue_id)
        assert "limit was already raised once" in report
        review = child_by_key(e2e, issue_id, "review")
        assert "over budget" in row_of(report, review.identifier)[2]
        assert world.linear.store.activities_of(session_id)[-1].content["type"] == "error"


def warnings_on(world: SandboxWorld) -> list[str]:
    return [c.body for c in world.linear.store.comments.values() if "Today's spend is" in c.body]


def test_daily_budget_warns_once_then_halts_and_refuses_new_issues(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """$0.80 a day (warning at 75 %: $0.60), runs held to $0.15. The first issue ($0.62)
    crosses the warning; the second goes over the limit with runs in flight (by less than
    one task's limit) and stops dispatching; the third is refused, with a comment."""
    env = {
        "EDGE_WORKER_STRATEGY": "local-only",
        "EDGE_WORKER_BUDGET__PER_TASK_USD": "0.15",
        "EDGE_WORKER_BUDGET__PER_DAY_USD": "0.80",
    }
    first, second, third = (world.new_issue() for _ in range(3))
    with running(world, tmp_path / "state", **env) as e2e:
        e2e.assign(first)
        assert e2e.wait_end(first) == "done"
        assert len(warnings_on(world)) == 1
        [warning] = [
            c for c in world.linear.store.comments_on(first) if "Today's spend is" in c.body
        ]
        assert "of the $0.80 daily budget" in warning.body

        e2e.assign(second)
        assert e2e.wait_end(second) == "over_budget"
        report = e2e.report(second)
        assert texts.DAY_BLOCKED.split(":")[0] in report
        identifier = world.linear.store.find_issue(second).identifier
        for key in ("cli", "unit-tests", "review"):
            assert e2e.agent_calls(identifier, key) == []
            assert "over budget" in row_of(report, child_by_key(e2e, second, key).identifier)[2]
        day_total = sum(e["usd_micros"] or 0 for i in (first, second) for e in e2e.ledger(i))
        assert 800_000 <= day_total <= 800_000 + 150_000  # overshoot bounded by one task

        planner_calls = len(world.anthropic.successful_requests)
        third_state_before = world.linear.store.find_issue(third).state_id
        e2e.assign(third)
        assert e2e.wait_end(third) == "over_budget"
        refused = e2e.report(third)
        assert "so I did not start on this issue" in refused
        assert world.linear.store.children_of(third) == []
        # not moved to "started": no work began on it
        assert world.linear.store.find_issue(third).state_id == third_state_before
        assert len(world.anthropic.successful_requests) == planner_calls  # nothing spent

        assert len(warnings_on(world)) == 1  # once per day, across issues
        log_lines = [line for line in e2e.log().splitlines() if "daily budget warning" in line]
        assert len(log_lines) == 1


def money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


def test_report_costs_command_and_metrics_agree_to_the_cent(tmp_path: Path) -> None:
    """Tried as a new user would: run an issue, then read the report comment, run
    ``edge-worker costs`` (table and JSON) and scrape ``/metrics``."""
    with SandboxWorld(tmp_path / "world") as world:
        issue_id = world.new_issue()
        env = {
            "EDGE_WORKER_STRATEGY": "hybrid-smart",
            "EDGE_WORKER_CODEGEN__COST_PER_RUN_USD": "0.25",
        }
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "done"
            report = e2e.report(issue_id)
            metrics = e2e.metrics()
            identifier = world.linear.store.find_issue(issue_id).identifier

        found = re.search(r"\*\*Total:\*\* (\$[\d,.]+)(.*)", report)
        assert found is not None, report
        assert found.group(2).strip() == ""  # every part priced: nothing "+ unpriced"
        report_total = money(found.group(1))
        assert report_total == Decimal("1.14")  # planner $0.02, 4 x $0.25 Codegen, $0.12 Claude

        settings = Settings(state_dir=tmp_path / "state")
        out = io.StringIO()
        assert run_costs_command(settings, day=None, issue=identifier, as_json=True, out=out) == 0
        costs = json.loads(out.getvalue())
        assert costs["total"]["unpriced"] == 0
        assert Decimal(str(costs["total"]["usd"])).quantize(Decimal("0.01")) == report_total
        table = io.StringIO()
        run_costs_command(settings, day=None, issue=identifier, as_json=False, out=table)
        assert f"Total: ${report_total}" in table.getvalue()

        samples = re.findall(
            r'^edge_worker_cost_usd_total\{executor="([^"]+)",model="[^"]*"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        by_executor: dict[str, Decimal] = {}
        for executor, value in samples:
            by_executor[executor] = by_executor.get(executor, Decimal(0)) + Decimal(value)
        cents = Decimal("0.01")
        assert sum(by_executor.values(), Decimal(0)).quantize(cents) == report_total
        ledger_by_executor: dict[str, Decimal] = {}
        for line in costs["lines"]:
            executor = line["executor"]
            ledger_by_executor[executor] = ledger_by_executor.get(executor, Decimal(0)) + Decimal(
                str(line["usd"])
            )
        assert {k: v.quantize(cents) for k, v in by_executor.items()} == {
            k: v.quantize(cents) for k, v in ledger_by_executor.items()
        }
        assert by_executor["codegen"].quantize(cents) == Decimal("1.00")
        for key in KEYS[:4]:
            assert row_of(report, child_by_key_world(world, issue_id, key))[5] == "$0.25"


def child_by_key_world(world: SandboxWorld, issue_id: str, key: str) -> str:
    title = next(s["title"] for s in world.plan["subtasks"] if s["key"] == key)
    return next(c.identifier for c in world.linear.store.children_of(issue_id) if c.title == title)
