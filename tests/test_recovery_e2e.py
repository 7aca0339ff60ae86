"""Recovery from known agent failures through the real daemon, with the stand-in CLIs
printing each failure: the expected action is taken, within its bound, and a usage limit
continues the same session after its (scaled-down) reset time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from edge_worker.executors.recovery import (
    REASON_BOUND,
    REASON_LOGIN_EXPIRED,
    REASON_NOT_GIT,
    REASON_USAGE_LIMIT,
)
from edge_worker.sandbox.alert_receivers import AlertInbox, alert_receivers_app
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.sandbox.world import SandboxWorld, solved_runs
from tests.support.e2e import running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KEY = "add-function"
NOT_GIT = "Not inside a trusted directory and --skip-git-repo-check was not specified."
RESET_AFTER_SECONDS = 3
TOKEN = "1:unused"
SECRET = "alert-signing-secret"


def one_subtask(
    tmp_path: Path, runs: list[dict[str, Any]], **env: str
) -> tuple[str, str, list[dict[str, Any]], str]:
    """Run ``KEY`` alone with the scripted ``runs``; the work state, the report, the
    agent's calls and the sub-issue's result comment."""
    plan = demo_plan(sys.executable)
    subtask = next(s for s in plan["subtasks"] if s["key"] == KEY)
    plan = {"summary": plan["summary"], "subtasks": [{**subtask, "depends_on": []}]}
    with SandboxWorld(tmp_path / "world", plan=plan) as world:
        world.tasks[KEY] = {"runs": runs}
        issue_id = world.new_issue()
        with running(world, tmp_path / "state", **env) as e2e:
            e2e.assign(issue_id)
            state = e2e.wait_end(issue_id)
            (child,) = world.linear.store.children_of(issue_id)
            identifier = world.linear.store.find_issue(issue_id).identifier
            calls = e2e.agent_calls(identifier, KEY)
            return state, e2e.report(issue_id), calls, e2e.result_comment(child.id)


def solved() -> dict[str, Any]:
    run = solved_runs(KEY)["runs"][0]
    assert isinstance(run, dict)
    return run


def test_codex_refusing_a_non_git_directory_is_relaunched_with_the_corrected_flag(
    tmp_path: Path,
) -> None:
    refusal = {"stderr": NOT_GIT, "unless_flag": "--skip-git-repo-check"}
    state, report, calls, result = one_subtask(
        tmp_path, [{**solved(), "fail": refusal}], EDGE_WORKER_STRATEGY="cost-optimized"
    )
    assert state == "done", report
    assert [call["argv"][0] for call in calls] == ["codex", "codex"]
    assert "--skip-git-repo-check" not in calls[0]["argv"]
    assert "--skip-git-repo-check" in calls[1]["argv"]
    assert REASON_NOT_GIT in report and REASON_NOT_GIT in result


def test_a_usage_limit_continues_the_same_session_after_its_reset_time(tmp_path: Path) -> None:
    limit = {
        "stderr": f"Claude AI usage limit reached|{{epoch+{RESET_AFTER_SECONDS}}}",
        "after_start": True,
    }
    state, report, calls, _ = one_subtask(
        tmp_path, [{"fail": limit}, solved()], EDGE_WORKER_STRATEGY="local-only"
    )
    assert state == "done", report
    assert [call["argv"][0] for call in calls] == ["claude", "claude"]
    assert calls[1]["resume"] == calls[0]["session_id"]
    # The reset was (whole seconds) at least RESET_AFTER_SECONDS - 1 after the first call.
    assert calls[1]["started_at"] >= calls[0]["started_at"] + RESET_AFTER_SECONDS - 1
    assert REASON_USAGE_LIMIT.format(executor="claude-code") in report


def test_an_overloaded_model_is_retried_within_its_bound_then_escalated(tmp_path: Path) -> None:
    overloaded = {"stderr": 'API Error: 529 {"error":{"type":"overloaded_error"}}'}
    inbox = AlertInbox(telegram_token=TOKEN, webhook_secret=SECRET)
    with serve_in_thread(alert_receivers_app(inbox)) as alerts_url:
        state, report, calls, result = one_subtask(
            tmp_path,
            [{"fail": overloaded}],  # the last run repeats: overloaded for good
            EDGE_WORKER_STRATEGY="local-only",
            EDGE_WORKER_RECOVERY__OVERLOAD_WAIT_SECONDS="0.05",
            EDGE_WORKER_ALERTS__SLACK_WEBHOOK_URL=alerts_url + "/slack/services/T/B/x",
            EDGE_WORKER_ALERTS__WEBHOOK_URL=alerts_url + "/webhook",
            EDGE_WORKER_ALERTS__WEBHOOK_SECRET=SECRET,
        )
    assert state == "failed", report
    assert len(calls) == 4  # the run and three recoveries, no more
    bound = REASON_BOUND.format(pattern="overloaded", times=3)
    assert bound in result
    # A human hears of it outside Linear: the sub-task and the issue, once each, per channel.
    hooks = inbox.of("webhook")
    assert sorted(hook["kind"] for hook in hooks) == ["issue_failed", "subtask_escalated"]
    (escalated,) = [hook for hook in hooks if hook["kind"] == "subtask_escalated"]
    assert bound in escalated["text"]
    assert len(inbox.of("slack")) == 2


def test_an_expired_login_moves_the_sub_task_to_another_executor(tmp_path: Path) -> None:
    expired = {"stderr": "Invalid API key · Please run /login", "only": "claude"}
    state, report, calls, _ = one_subtask(
        tmp_path, [{**solved(), "fail": expired}], EDGE_WORKER_STRATEGY="local-only"
    )
    assert state == "done", report
    assert [call["argv"][0] for call in calls] == ["claude", "codex"]
    assert REASON_LOGIN_EXPIRED.format(executor="claude-code") in report


def test_a_directory_refused_under_the_repository_is_allowed_on_relaunch(tmp_path: Path) -> None:
    repository = tmp_path / "world" / "repo"  # SandboxWorld's demo repository
    wanted = f"{repository}/shared"
    refusal = {
        "stderr": f"Error: {wanted} is outside the allowed working directories for this session",
        "unless_flag": "--add-dir",
    }
    state, report, calls, _ = one_subtask(
        tmp_path, [{**solved(), "fail": refusal}], EDGE_WORKER_STRATEGY="local-only"
    )
    assert state == "done", report
    assert len(calls) == 2
    assert "--add-dir" not in calls[0]["argv"]
    flag = calls[1]["argv"].index("--add-dir")
    assert calls[1]["argv"][flag + 1] == wanted
