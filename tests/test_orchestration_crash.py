"""Crash tests: the daemon is SIGKILLed at each step boundary of an orchestration, then
restarted on the same state directory against the same stand-ins. The end must look as if
nothing happened: the same sub-issues (none duplicated), no second paid run, one report
comment, one result comment per sub-issue, and a ledger without doubled entries.

Boundaries are detected from outside, as an operator could: DBOS's own checkpoint tables
in the daemon's SQLite files (``operation_outputs`` gets a row per completed step) and the
fake agents' and stand-ins' records. No hook in the daemon helps."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_worker.orchestration import texts
from edge_worker.sandbox.codegen import RunScript
from edge_worker.sandbox.demo_plan import DEMO_SOLUTIONS, demo_plan
from edge_worker.sandbox.world import SandboxWorld
from tests.support.e2e import (
    E2E,
    agents_starting_or_running,
    alive,
    row_of,
    running,
    wait_until,
)

# Whole-daemon runs on two cores shared with other work: every wait is on a condition with
# a generous deadline (a slow machine makes a test slower, never red), within this limit.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
pytest_plugins = ("tests.support.world_fixtures",)

KEYS = ["add-function", "multiply-function", "cli", "unit-tests", "review"]
ROOTS = ("add-function", "multiply-function")


def crash_when(
    e2e: E2E, reached: Callable[[], Any], timeout: float = 180.0, *, idle: str | None = None
) -> None:
    """SIGKILL the daemon as soon as ``reached()`` holds, then start it again.

    With ``idle`` (an issue id), also wait until no local agent of that issue is running:
    a local run in flight dies with the daemon and is continued after the restart (see
    ``test_crash_while_local_runs_are_in_flight``), which is not the boundary under test.
    """

    def boundary() -> bool:
        return bool(reached()) and (idle is None or not agents_running(e2e, idle))

    try:
        wait_until(boundary, timeout=timeout, interval=0.02)
    except AssertionError:
        raise AssertionError(f"boundary never reached; log:\n{e2e.log()[-4000:]}") from None
    e2e.crash()
    e2e.restart()


def agents_running(e2e: E2E, issue_id: str) -> bool:
    """Whether an agent of the issue runs, or was spawned and has not yet said so (a crash
    then would cut that run short too: seen once in CI as a second fresh run)."""
    identifier = e2e.world.linear.store.find_issue(issue_id).identifier
    if any(alive(c["pid"]) for key in KEYS for c in e2e.agent_calls(identifier, key)):
        return True
    proc = e2e.daemon.proc
    return bool(agents_starting_or_running(proc.pid if proc else None, e2e.state_dir))


def session_transcribed(call: dict[str, Any]) -> bool:
    """True once the daemon's transcript of the run (in the worktree's private git
    directory) holds the session the fake agent announced."""
    try:
        gitdir = Path((Path(call["cwd"]) / ".git").read_text().split(":", 1)[1].strip())
    except (OSError, IndexError):
        return False
    return any(
        call["session_id"] in path.read_text(errors="replace")
        for path in (gitdir / "edge-worker-runs").glob("*.jsonl")
    )


def steps_done(e2e: E2E, issue_id: str, name: str, key: str | None = None) -> int:
    prefix = f"issue-{issue_id}-%" + (f"-{key}-" if key else "")
    return e2e.completed_steps(name, prefix)


def assert_as_without_crash(e2e: E2E, issue_id: str, executor: str, *, agent_runs: int = 1) -> None:
    """The final state a run without a crash leaves (see ``test_orchestration_e2e``)."""
    world = e2e.world
    state = e2e.wait_end(issue_id)
    if state != "done":
        comments = [c.body for c in world.linear.store.comments_on(issue_id)]
        results = [
            c.body
            for child in world.linear.store.children_of(issue_id)
            for c in world.linear.store.comments_on(child.id)
        ]
        raise AssertionError(
            f"ended {state}\nreport: {comments}\nresults: {results}\nlog tail: {e2e.log()[-4000:]}"
        )
    store = world.linear.store
    children = store.children_of(issue_id)
    assert sorted(c.title for c in children) == sorted(s["title"] for s in world.plan["subtasks"])
    assert len({c.id for c in children}) == len(KEYS)  # no duplicated sub-issue
    report = e2e.report(issue_id)  # exactly one report comment
    assert "is done" in report
    for child in children:
        assert e2e.state_name(child) == "Done"
        result = e2e.result_comment(child.id)  # exactly one result comment
        assert "### Result: passed" in result
        cells = row_of(report, child.identifier)
        assert cells[1] == executor and "passed" in cells[2] and cells[4] == "1", cells
    identifier = store.find_issue(issue_id).identifier
    if executor == "codegen":
        created = [c.body["metadata"]["subtask_key"] for c in world.codegen.records("create")]
        assert sorted(created) == sorted(KEYS)  # one paid cloud run per sub-task
    else:
        for key in KEYS:
            fresh = [c for c in e2e.agent_calls(identifier, key) if c["resume"] is None]
            assert len(fresh) == 1, (key, e2e.agent_calls(identifier, key))
            if agent_runs == 1:
                assert len(e2e.agent_calls(identifier, key)) == 1, key
    ledger = e2e.ledger(issue_id)
    kinds = Counter((e["subtask_key"], e["kind"]) for e in ledger)
    assert kinds[(None, "planner")] == 1
    for key in KEYS:
        assert kinds[(key, "run")] == 1, kinds
        assert kinds[(key, "verification")] == 1, kinds
    assert len(e2e.subtask_rows(issue_id)) == len(KEYS)


def start(world: SandboxWorld, tmp_path: Path, strategy: str = "local-only") -> E2E:
    return E2E(world, tmp_path / "state", EDGE_WORKER_STRATEGY=strategy)


def test_crash_after_the_plan(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        crash_when(e2e, lambda: steps_done(e2e, issue_id, "plan_step") == 1, idle=issue_id)
        assert_as_without_crash(e2e, issue_id, "claude-code")
        # the plan was checkpointed: the model was not asked (nor paid) again
        assert len(world.anthropic.successful_requests) == 1


def test_crash_after_creating_subissues(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        crash_when(
            e2e,
            lambda: steps_done(e2e, issue_id, "create_subissue_step") == len(KEYS),
            idle=issue_id,
        )
        assert_as_without_crash(e2e, issue_id, "claude-code")


def test_crash_after_starting_cloud_runs(world: SandboxWorld, tmp_path: Path) -> None:
    for key in ROOTS:  # still running in the cloud while the daemon is down
        world.codegen.script(key, RunScript(seconds_to_finish=2.0))
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="cloud-only") as e2e:
        e2e.assign(issue_id)
        crash_when(e2e, lambda: steps_done(e2e, issue_id, "start_run_step") == len(ROOTS))
        assert world.codegen.runs, "the runs were created before the crash"
        assert_as_without_crash(e2e, issue_id, "codegen")


def test_crash_while_local_runs_are_in_flight(world: SandboxWorld, tmp_path: Path) -> None:
    """A local agent dies with the daemon (its output pipe is gone): after the restart its
    session is continued, not started afresh, and it is not counted as an iteration."""
    for key in ROOTS:
        edits = [{"path": p, "content": c} for p, c in DEMO_SOLUTIONS[key].items()]
        world.tasks[key] = {
            "runs": [
                {
                    "text": "slow",
                    "turns": 30,
                    "delay_seconds": 0.1,
                    "cost_usd": 0.1,
                    "edits": edits,
                },
                {"text": "Finished after the restart.", "cost_usd": 0.02},
            ]
        }
    world.scenario_path()
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        identifier = world.linear.store.find_issue(issue_id).identifier

        def both_running() -> bool:
            """Both runs in flight with a session to continue: their start checkpointed
            and their first line (the session) in the daemon's transcript. Earlier, a
            crash leaves nothing to continue and the run is rightly started afresh."""
            calls = [e2e.agent_calls(identifier, key) for key in ROOTS]
            return all(
                c and alive(c[0]["pid"]) and session_transcribed(c[0]) for c in calls
            ) and steps_done(e2e, issue_id, "start_run_step") == len(ROOTS)

        crash_when(e2e, both_running)
        assert_as_without_crash(e2e, issue_id, "claude-code", agent_runs=2)
        for key in ROOTS:
            first, second = e2e.agent_calls(identifier, key)
            assert second["resume"] == first["session_id"]
            assert texts.CONTINUE_AFTER_RESTART.split(".")[0] in second["prompt"]
            assert not alive(first["pid"])
            entries = [e for e in e2e.ledger(issue_id) if e["subtask_key"] == key]
            run = next(e for e in entries if e["kind"] == "run")
            resumed = [e for e in entries if e["kind"] == "resume"]
            assert run["usd_micros"] is None  # cut short before it said what it cost
            assert [e["usd_micros"] for e in resumed] == [20_000]
        assert "unpriced" in e2e.report(issue_id)  # the total does not pretend to be complete


def test_crash_during_verification(tmp_path: Path) -> None:
    plan = demo_plan(sys.executable)
    check = plan["subtasks"][0]["verification"][0]
    check["command"] = "sleep 1.5 && " + check["command"]
    with SandboxWorld(tmp_path / "world", plan=plan) as world:
        issue_id = world.new_issue()
        with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
            e2e.assign(issue_id)

            def verifying() -> bool:
                return (
                    steps_done(e2e, issue_id, "follow_run_step", "add-function") == 1
                    and steps_done(e2e, issue_id, "verify_step", "add-function") == 0
                )

            crash_when(e2e, verifying, idle=issue_id)
            assert_as_without_crash(e2e, issue_id, "claude-code")


def test_crash_before_the_report(world: SandboxWorld, tmp_path: Path) -> None:
    issue_id = world.new_issue()
    with running(world, tmp_path / "state", EDGE_WORKER_STRATEGY="local-only") as e2e:
        e2e.assign(issue_id)
        state_at_crash: dict[str, str] = {}

        def review_finished() -> bool:
            if steps_done(e2e, issue_id, "finish_subissue_step", "review") < 1:
                return False
            state_at_crash["report"] = e2e.report(issue_id)
            return True

        crash_when(e2e, review_finished, idle=issue_id)
        assert "is done" not in state_at_crash["report"]  # the final report was still to come
        assert_as_without_crash(e2e, issue_id, "claude-code")
