"""End to end: the real daemon, the stand-ins of Linear, Anthropic and Codegen, real git and
the fake agent CLIs, over loopback. Each test acts the way Linear does (signed webhooks)
and checks what a user would see on Linear and what the daemon recorded."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_worker.sandbox.anthropic import ToolAnswer
from edge_worker.sandbox.codegen import RunScript
from edge_worker.sandbox.demo_plan import DEMO_SOLUTIONS, demo_plan
from edge_worker.sandbox.world import SandboxWorld, solved_runs
from tests.support.e2e import E2E, alive, row_of, running, wait_until

# Whole-daemon runs on two cores shared with other work: every wait is on a condition with
# a generous deadline (a slow machine makes a test slower, never red), within this limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
pytest_plugins = ("tests.support.world_fixtures",)

KEYS = ["add-function", "multiply-function", "cli", "unit-tests", "review"]
LOCAL = ("claude-code", "codex")


def strategy_plan() -> dict[str, Any]:
    """The demo plan with one small code task (``add-function``, local under hybrid-smart,
    cloud under hybrid-parallel as it has no dependency) and a review that asks for a
    local executor (honoured where the strategy allows it)."""
    plan = demo_plan(sys.executable)
    add, review = plan["subtasks"][0], plan["subtasks"][4]
    add["description"] = (
        "Objective: `calc/add.py` with `add(a, b)` returning a + b.\n\n"
        "Acceptance criteria: `add(2, 3) == 5`."
    )
    review["executor"] = "local"
    return plan


# strategy -> (extra settings, the executor each sub-task must run on)
STRATEGIES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "local-only": ({}, dict.fromkeys(KEYS, "claude-code")),
    "cloud-only": ({}, dict.fromkeys(KEYS, "codegen")),
    # small code task and reviews local, other code work in the cloud
    "hybrid-smart": (
        {},
        {
            "add-function": "claude-code",
            "multiply-function": "codegen",
            "cli": "codegen",
            "unit-tests": "codegen",
            "review": "claude-code",
        },
    ),
    # independent work to the cloud at once; the rest as hybrid-smart
    "hybrid-parallel": (
        {},
        {
            "add-function": "codegen",
            "multiply-function": "codegen",
            "cli": "codegen",
            "unit-tests": "codegen",
            "review": "claude-code",
        },
    ),
    # Codegen at $0.30 a run beats Codex ($0.50 at 70 %) and Claude Code ($1.00 at 80 %);
    # the review's "local" hint narrows it to the cheapest local executor, Codex.
    "cost-optimized": (
        {"EDGE_WORKER_CODEGEN__COST_PER_RUN_USD": "0.30"},
        {**dict.fromkeys(KEYS[:4], "codegen"), "review": "codex"},
    ),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_five_subtasks_under_each_strategy(strategy: str, tmp_path: Path) -> None:
    settings, expected = STRATEGIES[strategy]
    plan = strategy_plan()
    with SandboxWorld(tmp_path / "world", plan=copy.deepcopy(plan)) as world:
        issue_id = world.new_issue()
        with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY=strategy, **settings) as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]
            assert_all_passed(e2e, issue_id, expected)
            cloud = sorted(k for k, e in expected.items() if e == "codegen")
            created = world.codegen.records("create")
            assert sorted(c.body["metadata"]["subtask_key"] for c in created) == cloud
            identifier = world.linear.store.find_issue(issue_id).identifier
            for key, executor in expected.items():
                calls = e2e.agent_calls(identifier, key)
                if executor in LOCAL:
                    assert len(calls) == 1, (key, calls)
                    assert calls[0]["argv"][0] == (
                        "claude" if executor == "claude-code" else "codex"
                    )
                else:
                    assert calls == [], key
            if strategy == "local-only":  # the demo: Linear requests stay few
                assert sum(world.linear.operation_counts().values()) <= 40


def assert_all_passed(e2e: E2E, issue_id: str, expected: dict[str, str]) -> None:
    """Every sub-issue passed on its expected executor, as Linear and the daemon show it."""
    store = e2e.world.linear.store
    children = store.children_of(issue_id)
    assert len(children) == len(expected)
    report = e2e.report(issue_id)
    assert "is done" in report
    by_key = {s["title"]: s["key"] for s in e2e.world.plan["subtasks"]}
    for child in children:
        key = by_key[child.title]
        assert e2e.state_name(child) == "Done", key
        result = e2e.result_comment(child.id)
        assert "### Result: done" in result or "### Result: passed" in result, result
        assert f"**Executor:** {expected[key]}" in result
        cells = row_of(report, child.identifier)
        assert cells[1] == expected[key], (key, cells)
        assert "passed" in cells[2]
    assert {k: v for k, (_, v) in e2e.subtask_rows(issue_id).items()} == expected
    assert {s for s, _ in e2e.subtask_rows(issue_id).values()} == {"passed"}


def sub_plan(*keys: str) -> dict[str, Any]:
    """The demo plan cut down to ``keys`` (dependencies on the others dropped)."""
    plan = demo_plan(sys.executable)
    chosen = [s for s in plan["subtasks"] if s["key"] in keys]
    for subtask in chosen:
        subtask["depends_on"] = [d for d in subtask["depends_on"] if d in keys]
    return {"summary": plan["summary"], "subtasks": chosen}


def key_of(e2e: E2E, title: str) -> str:
    return str(next(s["key"] for s in e2e.world.plan["subtasks"] if s["title"] == title))


def test_iterations_fix_one_and_give_up_on_another(world: SandboxWorld, tmp_path: Path) -> None:
    # add-function: the first run changes nothing, the second (with feedback) fixes it.
    world.tasks["add-function"] = solved_runs("add-function", failures_first=1)
    # multiply-function: never does the work.
    world.tasks["multiply-function"] = {"runs": [{"text": "I could not do it.", "cost_usd": 0.03}]}
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "failed"
        identifier = world.linear.store.find_issue(issue_id).identifier
        children = {key_of(e2e, c.title): c for c in world.linear.store.children_of(issue_id)}
        report = e2e.report(issue_id)

        # Fixed on the second iteration, with the failing evidence fed back.
        calls = e2e.agent_calls(identifier, "add-function")
        assert len(calls) == 2
        assert calls[1]["resume"] == calls[0]["session_id"]
        feedback = calls[1]["prompt"]
        assert "Independent verification of your work failed" in feedback
        assert "from calc.add import add" in feedback and "exited 1" in feedback
        assert "ModuleNotFoundError" in feedback  # the output tail, not just the exit code
        add_row = row_of(report, children["add-function"].identifier)
        assert "passed" in add_row[2] and add_row[4] == "2"
        assert e2e.state_name(children["add-function"]) == "Done"

        # Never passes: 1 run + 2 iterations (EDGE_WORKER_MAX_ITERATIONS=2), then failed
        # with its evidence; its sub-issue is not moved to Done.
        assert len(e2e.agent_calls(identifier, "multiply-function")) == 3
        multiply = children["multiply-function"]
        result = e2e.result_comment(multiply.id)
        assert "### Result: failed" in result
        assert "exit 1 (expected 0)" in result and "ModuleNotFoundError" in result
        assert "**Iterations:** 3" in result
        # back to the team's unstarted state, not left "In Progress" on the board
        assert e2e.state_name(multiply) == "Todo"
        assert row_of(report, multiply.identifier)[4] == "3"

        # Its dependents are skipped with the reason, never run.
        for key, because in (
            ("cli", "multiply-function"),
            ("unit-tests", "multiply-function"),
            ("review", "cli"),
        ):
            row = row_of(report, children[key].identifier)
            assert "skipped" in row[2]
            assert f"skipped: depends on `{because}`" in report
            assert e2e.agent_calls(identifier, key) == []
        assert "a human should look at" in report and multiply.identifier in report
        assert "is failed" in report
        assert e2e.subtask_rows(issue_id)["multiply-function"][0] == "failed"


def test_codegen_quota_falls_back_to_local(world: SandboxWorld, tmp_path: Path) -> None:
    world.codegen.quota_exhausted = True
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="cloud-only") as e2e:
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done"
        attempts = world.codegen.records("create")
        assert attempts and {c.status for c in attempts} == {402}
        assert world.codegen.runs == {}  # nothing was created, so nothing paid in the cloud
        assert_all_passed(e2e, issue_id, dict.fromkeys(KEYS, "claude-code"))
        report = e2e.report(issue_id)
        assert report.count("fell back to claude-code") >= len(KEYS)
        for child in world.linear.store.children_of(issue_id):
            assert "fell back to claude-code" in e2e.result_comment(child.id)


SLOW_RUN = {"runs": [{"text": "Slowly done.", "turns": 150, "delay_seconds": 0.2, "cost_usd": 0.1}]}


def wait_running(e2e: E2E, identifier: str, keys: tuple[str, ...]) -> list[int]:
    """The pids of the fake agents running ``keys``, once every one has started."""

    def pids() -> list[int] | None:
        found = []
        for key in keys:
            calls = e2e.agent_calls(identifier, key)
            if not calls or not alive(calls[-1]["pid"]):
                return None
            found.append(int(calls[-1]["pid"]))
        return found

    return list(wait_until(pids, timeout=120))


def assert_stopped(
    e2e: E2E, issue_id: str, pids: list[int], who: str, *, in_session: bool = False
) -> None:
    """Stopped: runs killed, nothing new started; the report says so in user mode (in app
    mode the session's final activity does, and nothing else is written after a stop)."""
    assert e2e.wait_end(issue_id) == "stopped"
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=60)
    report = e2e.report(issue_id)
    if not in_session:
        assert "is stopped" in report and f"Stopped by {who}." in report
    rows = e2e.subtask_rows(issue_id)
    assert rows["add-function"][0] == rows["multiply-function"][0] == "cancelled"
    store = e2e.world.linear.store
    for child in store.children_of(issue_id):
        assert e2e.state_name(child) != "Done"
        if not in_session:
            assert "stopped" in row_of(report, child.identifier)[2]
    identifier = store.find_issue(issue_id).identifier
    for key in ("cli", "unit-tests", "review"):  # nothing new started after the stop
        assert e2e.agent_calls(identifier, key) == []
    children = [s for w, s in e2e.workflows(f"issue-{issue_id}-") if w.count("-add-function-")]
    assert children == ["CANCELLED"]


def test_stop_signal_in_app_mode_kills_running_agents(world: SandboxWorld, tmp_path: Path) -> None:
    world.tasks["add-function"] = SLOW_RUN
    world.tasks["multiply-function"] = SLOW_RUN
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = created.payload["agentSession"]["id"]
        e2e.send(created)
        identifier = world.linear.store.find_issue(issue_id).identifier
        pids = wait_running(e2e, identifier, ("add-function", "multiply-function"))
        e2e.send(world.linear.agent_session_prompted(session_id, "stop", signal="stop"))
        assert_stopped(e2e, issue_id, pids, "Ada Lovelace", in_session=True)
        last = world.linear.store.activities_of(session_id)[-1]
        assert last.content["type"] in ("error", "response")
        assert "Stopped by Ada Lovelace" in last.content["body"]


def test_unassignment_stops_the_work(world: SandboxWorld, tmp_path: Path) -> None:
    world.tasks["add-function"] = SLOW_RUN
    world.tasks["multiply-function"] = SLOW_RUN
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        identifier = world.linear.store.find_issue(issue_id).identifier
        pids = wait_running(e2e, identifier, ("add-function", "multiply-function"))
        e2e.unassign(issue_id)
        assert_stopped(e2e, issue_id, pids, "Ada Lovelace")


def test_an_issue_over_its_wall_clock_limit_ends_timed_out(
    world: SandboxWorld, tmp_path: Path
) -> None:
    world.tasks["add-function"] = SLOW_RUN
    world.tasks["multiply-function"] = SLOW_RUN
    issue_id = world.new_issue()
    env = {"EDGE_WORKER_STRATEGY": "local-only", "EDGE_WORKER_ISSUE_TIMEOUT_SECONDS": "6"}
    with running(world, tmp_path / "state", **env) as e2e:
        e2e.assign(issue_id)
        identifier = world.linear.store.find_issue(issue_id).identifier
        pids = wait_running(e2e, identifier, ("add-function", "multiply-function"))
        assert e2e.wait_end(issue_id) == "timed_out"
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=60)
        report = e2e.report(issue_id)
        assert "ran longer than its 6s limit" in report
        rows = e2e.subtask_rows(issue_id)
        assert rows["add-function"][0] == rows["multiply-function"][0] == "timed_out"
        for child in world.linear.store.children_of(issue_id):
            assert e2e.state_name(child) != "Done"
            assert "timed out" in row_of(report, child.identifier)[2]
        for key in ("cli", "unit-tests", "review"):  # nothing started after the deadline
            assert e2e.agent_calls(identifier, key) == []


def docs_subtask() -> dict[str, Any]:
    return {
        "key": "docs",
        "title": "Document the command line in the README",
        "description": "Objective: a README section on `python -m calc`.\n\n"
        "Acceptance criteria: the README shows `python -m calc add 2 3`.",
        "role": "builder",
        "executor": "any",
        "depends_on": [],
        "verification": [{"command": "grep -q 'python -m calc add' README.md", "expect_exit": 0}],
    }


def test_follow_up_comment_adds_a_subtask(world: SandboxWorld, tmp_path: Path) -> None:
    plan = sub_plan("add-function", "multiply-function")
    extended = {**plan, "subtasks": [*plan["subtasks"], docs_subtask()]}
    world.anthropic.script(ToolAnswer(plan), ToolAnswer(extended))
    world.tasks["add-function"] = {
        "runs": [
            {
                **SLOW_RUN["runs"][0],
                "turns": 20,
                "edits": [
                    {"path": p, "content": c} for p, c in DEMO_SOLUTIONS["add-function"].items()
                ],
            }
        ]
    }
    world.tasks["docs"] = {
        "runs": [
            {
                "text": "Documented.",
                "cost_usd": 0.04,
                "edits": [
                    {
                        "path": "README.md",
                        "content": "Run `python -m calc add 2 3`.\n",
                        "append": True,
                    }
                ],
            }
        ]
    }
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        identifier = world.linear.store.find_issue(issue_id).identifier
        wait_running(e2e, identifier, ("add-function",))
        e2e.send(
            world.linear.comment_created(issue_id, "Please also document the CLI in the README.")
        )
        assert e2e.wait_end(issue_id) == "done"
        second = world.anthropic.successful_requests[1].body
        assert "Please also document the CLI" in str(second["messages"])
        children = world.linear.store.children_of(issue_id)
        docs = next(c for c in children if c.title == docs_subtask()["title"])
        assert len(children) == 3
        assert e2e.state_name(docs) == "Done"
        assert len(e2e.agent_calls(identifier, "docs")) == 1
        report = e2e.report(issue_id)
        assert "passed" in row_of(report, docs.identifier)[2]
        assert "added 1 sub-task(s): `docs`" in report


def test_follow_ups_naming_sub_tasks_become_their_feedback(
    world: SandboxWorld, tmp_path: Path
) -> None:
    # add-function passes quickly; multiply-function is still working when two comments
    # come: one names add-function's sub-issue (finished: it runs again, resuming its
    # session), one names `multiply-function` (running: it gets the feedback after).
    world.anthropic.script(ToolAnswer(sub_plan("add-function", "multiply-function")))
    add_files = DEMO_SOLUTIONS["add-function"]
    world.tasks["add-function"] = {
        "runs": [
            {"text": "Added.", "edits": [{"path": p, "content": c} for p, c in add_files.items()]},
            {"text": "Noted.", "edits": [{"path": "calc/ADD.md", "content": "add(a, b)\n"}]},
        ]
    }
    multiply_files = DEMO_SOLUTIONS["multiply-function"]
    world.tasks["multiply-function"] = {
        "runs": [
            {
                "text": "Multiplied, slowly.",
                "turns": 40,
                "delay_seconds": 0.2,
                "edits": [{"path": p, "content": c} for p, c in multiply_files.items()],
            },
            {"text": "Also noted.", "edits": [{"path": "calc/MUL.md", "content": "mul\n"}]},
        ]
    }
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        identifier = world.linear.store.find_issue(issue_id).identifier
        wait_running(e2e, identifier, ("multiply-function",))
        add = wait_until(
            lambda: next(
                (c for c in world.linear.store.children_of(issue_id) if "add" in c.title.lower()),
                None,
            )
        )
        wait_until(lambda: e2e.state_name(add) == "Done", timeout=180)
        assert e2e.agent_calls(identifier, "multiply-function")[-1]["resume"] is None
        e2e.send(
            world.linear.comment_created(issue_id, f"{add.identifier}: document add in ADD.md")
        )
        e2e.send(world.linear.comment_created(issue_id, "`multiply-function` needs a MUL.md too"))
        assert e2e.wait_end(issue_id) == "done"

        assert len(world.anthropic.successful_requests) == 1  # feedback, not a new plan
        assert len(world.linear.store.children_of(issue_id)) == 2
        for key, wanted in (
            ("add-function", "document add in ADD.md"),
            ("multiply-function", "needs a MUL.md too"),
        ):
            calls = e2e.agent_calls(identifier, key)
            assert len(calls) == 2, (key, calls)
            assert calls[1]["resume"] == calls[0]["session_id"]  # the same session goes on
            assert wanted in calls[1]["prompt"]
        repo = world.repository
        for branch, path in (("add-function", "calc/ADD.md"), ("multiply-function", "calc/MUL.md")):
            shown = subprocess.run(
                ["git", "show", f"edge-worker/{identifier}-{branch}:{path}"],
                cwd=repo,
                capture_output=True,
                text=True,
            )
            assert shown.returncode == 0, shown.stderr  # the feedback's work is on the branch
        report = e2e.report(issue_id)
        assert row_of(report, add.identifier)[4] == "2"  # iterations, both runs counted
        assert f"sent to `{add.identifier}`, which runs again with it" in report
        assert "for when its current run ends" in report
        assert e2e.state_name(add) == "Done"


def test_a_follow_up_naming_a_finished_codegen_sub_task_resumes_its_run(
    world: SandboxWorld, tmp_path: Path
) -> None:
    # add-function passes on Codegen while multiply-function is still running there; a
    # comment naming add-function's sub-issue goes to the same Codegen run, not a new one.
    world.anthropic.script(ToolAnswer(sub_plan("add-function", "multiply-function")))
    world.codegen.script("multiply-function", RunScript(seconds_to_finish=6.0))
    issue_id = world.new_issue()
    env = {
        "EDGE_WORKER_STRATEGY": "cloud-only",
        "EDGE_WORKER_CODEGEN__COST_PER_RUN_USD": "0.40",
        # Polling well inside Codegen's 60 calls per 30 s: faster, the daemon's own limiter
        # spends that allowance and rightly waits out the window, which only slows the test.
        "EDGE_WORKER_CODEGEN__POLL_INTERVAL_SECONDS": "0.75",
    }
    with running(world, tmp_path / "state", **env) as e2e:
        e2e.assign(issue_id)
        add = wait_until(
            lambda: next(
                (c for c in world.linear.store.children_of(issue_id) if "add" in c.title.lower()),
                None,
            )
        )
        wait_until(lambda: e2e.state_name(add) == "Done", timeout=180)
        assert e2e.subtask_rows(issue_id)["multiply-function"][0] == "running"
        e2e.send(world.linear.comment_created(issue_id, f"{add.identifier}: also handle floats"))
        assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]

        assert len(world.anthropic.successful_requests) == 1  # feedback, not a new plan
        created = world.codegen.records("create")
        assert len(created) == 2  # the feedback went to the existing run
        add_run = next(
            r.run_id for r in created if r.body["metadata"]["subtask_key"] == "add-function"
        )
        prompts = [r.body["prompt"] for r in world.codegen.records("resume") if r.run_id == add_run]
        with_feedback = [i for i, text in enumerate(prompts) if "also handle floats" in text]
        assert len(with_feedback) == 1, prompts
        # ... and the result was verified again after it, where the work lives.
        assert any('"commands"' in text for text in prompts[with_feedback[0] + 1 :]), prompts
        report = e2e.report(issue_id)
        assert row_of(report, add.identifier)[4] == "2"  # iterations, both runs counted
        assert f"sent to `{add.identifier}`, which runs again with it" in report
        assert e2e.state_name(add) == "Done"
        assert e2e.subtask_rows(issue_id)["add-function"] == ("passed", "codegen")


def test_work_waits_out_a_linear_outage_instead_of_failing(
    world: SandboxWorld, tmp_path: Path
) -> None:
    # Five 503s in a row: one more than a single call's own retries allowed before, when
    # the acknowledgement failed and the issue ended failed. Now the work waits it out.
    world.anthropic.script(ToolAnswer(sub_plan("add-function")))
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        world.linear.fail_next(5, "server_error", status=503)
        e2e.assign(issue_id)
        assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]
        failed = [r for r in world.linear.requests if r.status == 503]
        assert len(failed) == 5 and {r.operation for r in failed} == {"Issue"}
        assert len(world.linear.store.children_of(issue_id)) == 1  # created once
        assert "is done" in e2e.report(issue_id)


def test_malformed_plan_is_asked_again_once(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world", plan=sub_plan("add-function")) as world:
        world.anthropic.script(ToolAnswer({"summary": "I forgot the sub-tasks."}))
        issue_id = world.new_issue()
        with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "done"
            requests = world.anthropic.successful_requests
            assert len(requests) == 2
            reasked = str(requests[1].body["messages"][-1])
            assert "subtasks" in reasked  # the validation error went back to the model
            assert len(world.linear.store.children_of(issue_id)) == 1


def test_twice_malformed_plan_fails_the_issue_with_a_clear_comment(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world", plan=sub_plan("add-function")) as world:
        cyclic = sub_plan("add-function", "multiply-function")
        cyclic["subtasks"][0]["depends_on"] = ["multiply-function"]
        cyclic["subtasks"][1]["depends_on"] = ["add-function"]
        world.anthropic.script(ToolAnswer({"summary": "nothing"}), ToolAnswer(cyclic))
        issue_id = world.new_issue()
        with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
            e2e.assign(issue_id)
            assert e2e.wait_end(issue_id) == "failed"
            assert len(world.anthropic.successful_requests) == 2
            report = e2e.report(issue_id)
            assert "is failed" in report
            assert "I could not produce a valid plan for this issue" in report
            assert "cycle" in report.lower()
            assert world.linear.store.children_of(issue_id) == []
            # the planner's two calls are in the ledger all the same
            assert [e["kind"] for e in e2e.ledger(issue_id)] == ["planner", "planner"]


def test_app_mode_thought_plan_and_response(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    # Progress activities at the default pace (one per 10 s at most): the request count
    # below is what a real session costs, not what a test's fast pace would.
    env = {
        "EDGE_WORKER_STRATEGY": "local-only",
        "EDGE_WORKER_LINEAR__ACTIVITY_INTERVAL_SECONDS": "10",
    }
    with running(world, tmp_path / "state", **env) as e2e:
        created = world.linear.agent_session_created(issue_id)
        session_id = created.payload["agentSession"]["id"]
        e2e.send(created)
        first = wait_until(lambda: world.linear.store.activities_of(session_id), timeout=60)[0]
        # The first word is a thought (its latency is measured in bench/first_activity.py,
        # not timed here: a loaded machine must not turn this test red).
        assert first.content["type"] == "thought"
        assert e2e.wait_end(issue_id) == "done"
        activities = world.linear.store.activities_of(session_id)
        responses = [a for a in activities if a.content["type"] == "response"]
        assert len(responses) == 1 and activities[-1] is responses[0]
        assert "5/5 sub-issues passed" in responses[0].content["body"]
        session = world.linear.store.sessions[session_id]
        assert session.status == "complete"
        assert [step["status"] for step in session.plan] == ["completed"] * 5
        children = world.linear.store.children_of(issue_id)
        assert [step["content"] for step in session.plan] == [
            f"{c.identifier}: {c.title}" for c in children
        ]
        e2e.report(issue_id)  # the one report comment exists in app mode too
        assert sum(world.linear.operation_counts().values()) <= 40


def test_an_issue_is_never_started_twice(world: SandboxWorld, tmp_path: Path) -> None:
    world.tasks["add-function"] = {
        "runs": [
            {
                **SLOW_RUN["runs"][0],
                "turns": 15,
                "edits": [
                    {"path": p, "content": c} for p, c in DEMO_SOLUTIONS["add-function"].items()
                ],
            }
        ]
    }
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        assignment = world.linear.issue_assigned(issue_id, field="assigneeId")
        e2e.send(assignment)
        e2e.send(assignment)  # Linear delivering the same change twice
        identifier = world.linear.store.find_issue(issue_id).identifier
        wait_running(e2e, identifier, ("add-function",))
        again = world.linear.agent_session_created(issue_id)  # a second trigger while running
        e2e.send(again)
        assert e2e.wait_end(issue_id) == "done"
        orchestrations = [w for w, _ in e2e.workflows(f"issue-{issue_id}-") if w.count("-") == 6]
        assert len(orchestrations) == 1, e2e.workflows(f"issue-{issue_id}-")
        assert len(world.linear.store.children_of(issue_id)) == 5
        for key in KEYS:
            assert len(e2e.agent_calls(identifier, key)) == 1, key
        e2e.report(issue_id)
        # The session that came while the work ran carries it from then on (app mode:
        # the session is the unit of work), never answered "already working".
        session_id = again.payload["agentSession"]["id"]
        said = world.linear.store.activities_of(session_id)
        assert said[0].content["type"] == "thought"
        assert said[-1].content["type"] == "response"
        assert "5/5 sub-issues passed" in said[-1].content["body"]
        assert not any("already working" in str(a.content.get("body")) for a in said)


def test_stop_abandons_cloud_runs_and_records_them(world: SandboxWorld, tmp_path: Path) -> None:
    for key in ("add-function", "multiply-function"):  # they would run for a minute
        world.codegen.script(key, RunScript(seconds_to_finish=60.0))
    issue_id = world.new_issue()
    env = {"EDGE_WORKER_STRATEGY": "cloud-only", "EDGE_WORKER_CODEGEN__COST_PER_RUN_USD": "0.40"}
    with running(world, tmp_path / "state", **env) as e2e:
        e2e.assign(issue_id)
        wait_until(lambda: len(world.codegen.runs) == 2, timeout=120)
        e2e.unassign(issue_id)
        assert e2e.wait_end(issue_id) == "stopped"
        report = e2e.report(issue_id)
        assert "Stopped by Ada Lovelace." in report
        assert report.count("remote run abandoned (recorded)") == 2
        rows = e2e.subtask_rows(issue_id)
        assert rows["add-function"] == rows["multiply-function"] == ("cancelled", "codegen")
        # what the abandoned runs cost is in the ledger: Codegen cannot cancel, they are paid
        runs = [e for e in e2e.ledger(issue_id) if e["kind"] == "run"]
        assert sorted((e["subtask_key"], e["usd_micros"]) for e in runs) == [
            ("add-function", 400_000),
            ("multiply-function", 400_000),
        ]
        assert len(world.codegen.records("create")) == 2  # nothing new started


def test_a_run_created_as_the_stop_gives_up_on_it_is_still_charged(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """Codegen bills a run when it creates it. The stop waits a while for each run's
    handle, then cancels the sub-task; a create answered after that cannot hand its run
    back, and the run is never followed. It is charged all the same."""
    for key in ("add-function", "multiply-function"):
        world.codegen.script(key, RunScript(seconds_to_finish=60.0))
    slow_answer = world.codegen.hold("create", times=1)
    issue_id = world.new_issue()
    env = {"EDGE_WORKER_STRATEGY": "cloud-only", "EDGE_WORKER_CODEGEN__COST_PER_RUN_USD": "0.40"}
    with running(world, tmp_path / "state", **env) as e2e:
        e2e.assign(issue_id)
        wait_until(lambda: len(world.codegen.runs) == 2 and world.codegen.held == 1, 120)
        e2e.unassign(issue_id)
        assert e2e.wait_end(issue_id) == "stopped"  # it waited for the handle in vain
        slow_answer.set()

        def charged() -> list[tuple[str, int | None]]:
            runs = [e for e in e2e.ledger(issue_id) if e["kind"] == "run"]
            return sorted((e["subtask_key"], e["usd_micros"]) for e in runs)

        both = [("add-function", 400_000), ("multiply-function", 400_000)]
        wait_until(lambda: charged() == both, 60)
        assert len(world.codegen.records("create")) == 2  # the slow answer was not retried
