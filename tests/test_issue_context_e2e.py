"""End to end over loopback: the real daemon plans an issue that already has a sub-issue
and carries an image and a text file. The planner is shown both files and the existing
sub-issue; its plan reuses the sub-issue (no duplicate is created); the agent finds the
files in its worktree, and nothing of them is committed. An edit of the description
during the work is acknowledged and reaches the planner and the running agent. A session
started in a thread hands its ``previousComments`` and its guidance (team first) on."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from edge_worker.sandbox import payloads
from edge_worker.sandbox.anthropic import ToolAnswer
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.linear import DEFAULT_API_KEY
from edge_worker.sandbox.world import SandboxWorld, solved_runs
from tests.support.e2e import running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SPEC = "add(a, b) must accept floats\n"
CHECK_FILES = (
    f"{sys.executable} -c \"import pathlib,sys; a=pathlib.Path('.edge-worker/attachments'); "
    f"sys.exit(0 if (a/'spec.txt').read_text()=={SPEC!r} and (a/'screen.png').read_bytes()[:4]"
    "==b'\\x89PNG' else 1)\""
)


def reuse_plan(existing: str) -> dict[str, object]:
    """The demo's ``add-function`` alone, bound to ``existing`` and also checking that the
    issue's files were in the worktree."""
    plan = demo_plan(sys.executable)
    add = next(s for s in plan["subtasks"] if s["key"] == "add-function")
    add["reuses"] = existing
    add["verification"] = [*add["verification"], {"command": CHECK_FILES, "expect_exit": 0}]
    return {"summary": f"Reuse {existing} for add().", "subtasks": [add]}


def test_existing_sub_issue_is_reused_and_files_reach_planner_and_agent(tmp_path: Path) -> None:
    with SandboxWorld(tmp_path / "world") as world:
        store = world.linear.store
        spec_url = world.upload(SPEC.encode(), "text/plain")
        image_url = world.upload(PNG, "image/png")
        issue = store.add_issue(
            "Calculator: add", f"Add `add(a, b)`.\n\n![screen.png]({image_url})\n"
        )
        store.add_attachment(issue.id, "spec.txt", spec_url)
        store.add_attachment(issue.id, "big.log", world.upload(b"x" * 2000, "text/plain"))
        existing = store.add_issue("Add calc.add(a, b)", "Started earlier.", parent_id=issue.id)
        plan = reuse_plan(existing.identifier)
        world.anthropic.default = ToolAnswer(plan)
        with running(world, tmp_path / "state", EDGE_WORKER_ATTACHMENTS__MAX_BYTES="1000") as e2e:
            e2e.assign(issue.id)
            assert e2e.wait_end(issue.id) == "done", e2e.log()[-4000:]

        # No duplicate: the plan's one sub-task ran on the existing sub-issue.
        assert [c.id for c in store.children_of(issue.id)] == [existing.id]
        assert world.linear.count("IssueCreate") == 0
        assert e2e.state_name(existing) == "Done"
        assert "### Result:" in e2e.result_comment(existing.id)
        report = e2e.report(issue.id)
        assert f"Existing sub-issues reused: {existing.identifier} (as `add-function`)" in report
        # The file over the cap was not fetched, and the report says why and what to set.
        assert (
            "Attachment big.log was not fetched: it is 2.0 KB and the limit is 1.0 KB "
            "(setting EDGE_WORKER_ATTACHMENTS__MAX_BYTES)." in report
        )

        # The planner saw the sub-issue, the text file and the image (as an image block).
        first = world.anthropic.successful_requests[0].body["messages"][0]["content"]
        text = first[0]["text"]
        assert f'identifier="{existing.identifier}"' in text and "Started earlier." in text
        assert SPEC.strip() in text and 'name="screen.png"' in text
        images = [b for b in first if b["type"] == "image"]
        assert [base64.b64decode(b["source"]["data"]) for b in images] == [PNG]
        # Fetched with the Linear token, from the stand-in's upload host only.
        assert {(status, auth) for _, status, auth in world.linear.upload_requests} == {
            (200, DEFAULT_API_KEY)
        }

        # The agent was told where the files are, and they were there (the check passed).
        calls = e2e.agent_calls(issue.identifier, "add-function")
        assert len(calls) == 1
        assert ".edge-worker/attachments/screen.png" in calls[0]["prompt"]
        assert ".edge-worker/attachments/spec.txt" in calls[0]["prompt"]
        committed = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", f"edge-worker/{issue.identifier}-add-function"],
            cwd=world.repository,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "calc/add.py" in committed and ".edge-worker" not in committed


def test_an_edit_during_the_work_is_acknowledged_and_reaches_planner_and_agent(
    tmp_path: Path,
) -> None:
    plan = demo_plan(sys.executable)
    add = next(s for s in plan["subtasks"] if s["key"] == "add-function")
    with SandboxWorld(tmp_path / "world", plan={"summary": "Add.", "subtasks": [add]}) as world:
        # The first run changes nothing and takes a while (the edit arrives meanwhile);
        # the second, resumed with the verification evidence and the edit, does the work.
        runs = solved_runs("add-function", failures_first=1)
        runs["runs"][0]["delay_seconds"] = 3.0
        world.tasks["add-function"] = runs
        issue_id = world.new_issue()
        identifier = world.linear.store.find_issue(issue_id).identifier
        with running(world, tmp_path / "state") as e2e:
            e2e.assign(issue_id)
            wait_until(lambda: e2e.agent_calls(identifier, "add-function"), 60)
            e2e.send(world.linear.issue_edited(issue_id, description=NEW_DESCRIPTION))
            wait_until(lambda: acknowledged(world, issue_id), 30)
            assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]

        calls = e2e.agent_calls(identifier, "add-function")
        assert len(calls) == 2
        assert NEW_DESCRIPTION not in calls[0]["prompt"]
        assert "New description:" in calls[1]["prompt"] and NEW_DESCRIPTION in calls[1]["prompt"]
        later = [r.body["messages"][0]["content"] for r in world.anthropic.successful_requests[1:]]
        assert later and all(NEW_DESCRIPTION in str(content) for content in later)
        assert "The issue's description changed during the work" in e2e.report(issue_id)


NEW_DESCRIPTION = "Also accept negative numbers in add()."


def acknowledged(world: SandboxWorld, issue_id: str) -> bool:
    return any(
        "description changed while I work on it" in c.body
        for c in world.linear.store.comments_on(issue_id)
    )


def test_a_session_hands_its_thread_and_guidance_by_origin_to_the_planner(tmp_path: Path) -> None:
    plan = demo_plan(sys.executable)
    add = next(s for s in plan["subtasks"] if s["key"] == "add-function")
    with SandboxWorld(tmp_path / "world", plan={"summary": "Add.", "subtasks": [add]}) as world:
        issue_id = world.new_issue()
        team = world.linear.store.team
        team_payload = payloads.team(team.id, team.key, team.name)
        delivery = world.linear.agent_session_created(
            issue_id,
            guidance=[
                payloads.guidance_rule("WORKSPACE RULE: write docs."),
                payloads.guidance_rule(
                    "TEAM RULE: no docs, tests only.", team_payload=team_payload
                ),
            ],
            previous_comments=[
                payloads.previous_comment("c-thread", issue_id, "THREAD: the bug is in add().")
            ],
        )
        with running(world, tmp_path / "state") as e2e:
            e2e.send(delivery)
            assert e2e.wait_end(issue_id) == "done", e2e.log()[-4000:]
        text = str(world.anthropic.successful_requests[0].body["messages"][0]["content"])
        assert 'source="agent_session.previous_comment"' in text
        assert "THREAD: the bug is in add()." in text
        # Team guidance first, then the workspace's, each with its origin.
        assert text.index("TEAM RULE") < text.index("WORKSPACE RULE")
        assert 'origin="team ENG"' in text and 'origin="workspace"' in text
