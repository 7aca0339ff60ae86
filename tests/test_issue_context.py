"""What the planner and the agents see of an issue: existing sub-issues (reused or left),
attachments (fetched with the token, size-capped, handed on), edits during the work,
``previousComments`` and guidance by origin. Sans-I/O parts directly; fetching and the
planner request over real loopback HTTP against the Linear and Anthropic stand-ins."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_worker.executors.attachments import place_attachments
from edge_worker.executors.base import Task, TaskAttachment
from edge_worker.executors.task_prompt import task_prompt
from edge_worker.linear.uploads import UploadFailed, UploadTooLarge, fetch_upload
from edge_worker.orchestration import edits
from edge_worker.orchestration.attachments import (
    AttachmentRef,
    Reference,
    file_name,
    find_references,
    kind_of,
    skipped_notes,
    too_large,
)
from edge_worker.orchestration.context import PlanningContext, render_planner_input
from edge_worker.orchestration.existing import (
    ExistingSubIssue,
    bindings,
    reuse_note,
    reuse_problems,
)
from edge_worker.orchestration.guidance import by_precedence, parse_guidance
from edge_worker.orchestration.plan import Plan, validate_plan
from edge_worker.orchestration.planner import Planner, PlanningFailed
from edge_worker.orchestration.planner_anthropic import AnthropicBackend, RetryPolicy
from edge_worker.orchestration.planner_claude import ClaudeCodeBackend
from edge_worker.sandbox import payloads as p
from edge_worker.sandbox.anthropic import AnthropicStandIn, ToolAnswer, serve_anthropic
from edge_worker.sandbox.demo_plan import demo_plan
from edge_worker.sandbox.linear import DEFAULT_API_KEY, LinearStandIn
from edge_worker.sandbox.server import serve_in_thread
from edge_worker.webhooks.decisions import Kind, Rules
from edge_worker.webhooks.triggers import classify

AGENT = "agent-1"
RULES = Rules.build(AGENT)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
BLOCK = re.compile(r'<untrusted-data source="([^"]+)"([^>]*)>\n(.*?)\n</untrusted-data>', re.S)


def sub(
    identifier: str, title: str, state: str = "Todo", kind: str = "unstarted"
) -> ExistingSubIssue:
    return ExistingSubIssue(
        id=f"id-{identifier}",
        identifier=identifier,
        title=title,
        url=f"https://linear.app/example/issue/{identifier}",
        state_name=state,
        state_type=kind,
    )


EXISTING = [sub("ENG-5", "Add calc.add", "In Progress", "started"), sub("ENG-6", "Old idea")]


def one_task_plan(**extra: Any) -> dict[str, Any]:
    task = {
        "key": "add-function",
        "title": "Add calc.add",
        "description": "Objective: add.",
        "role": "builder",
        "verification": [{"command": "true", "expect_exit": 0}],
        **extra,
    }
    return {"summary": "One task.", "subtasks": [task]}


# --- guidance ------------------------------------------------------------------------------


def test_team_guidance_takes_precedence_over_workspace_guidance() -> None:
    eng = p.team("team-eng", "ENG", "Engineering")
    parent = p.team("team-prod", "PROD", "Product")
    raw = [
        p.guidance_rule("Workspace: always write docs."),
        p.guidance_rule("Parent team: small PRs."),
        p.guidance_rule("ENG: never touch the CLI."),
        {"body": "   "},
        "not a rule",
    ]
    raw[1]["origin"] = {"type": "Team", "team": {**parent, "displayName": "Product"}}
    raw[2]["origin"] = {"type": "Team", "team": {**eng, "displayName": "Engineering"}}
    rules = parse_guidance(raw)
    assert [r.origin for r in rules] == ["workspace", "team", "team"]
    ordered = by_precedence(rules, team_key="ENG")
    assert [r.body for r in ordered] == [
        "ENG: never touch the CLI.",
        "Parent team: small PRs.",
        "Workspace: always write docs.",
    ]
    rendered = render_planner_input(
        PlanningContext(issue_identifier="ENG-1", title="t", team_key="ENG", guidance_rules=rules)
    )
    found = [
        (attrs, body) for source, attrs, body in BLOCK.findall(rendered) if "guidance" in source
    ]
    assert [body for _, body in found] == [r.body for r in ordered]
    assert 'origin="team ENG"' in found[0][0] and 'origin="workspace"' in found[2][0]
    assert "team over other teams, any team over the workspace" in rendered


def test_agent_session_created_carries_previous_comments_and_guidance() -> None:
    payload = p.agent_session_created(
        "s-1",
        "iss-1",
        AGENT,
        guidance=[p.guidance_rule("Be brief.", team_payload=p.team())],
        previous_comments=[p.previous_comment("c-9", "iss-1", "The bug is in parse().")],
    )
    decision = classify(payload, RULES)
    assert decision.kind is Kind.START
    assert decision.context["previous_comments"] == [
        {"id": "c-9", "body": "The bug is in parse().", "issueId": "iss-1", "userId": "user-human"}
    ]
    assert parse_guidance(decision.context["guidance"])[0].label == "team ENG"


def test_previous_comments_reach_the_planner_as_their_own_blocks() -> None:
    from edge_worker.orchestration.context import Comment

    ctx = PlanningContext(
        issue_identifier="ENG-1",
        title="t",
        previous_comments=[Comment(author="u-1", body="The bug is in parse().")],
    )
    found = BLOCK.findall(render_planner_input(ctx))
    assert ("agent_session.previous_comment", ' author="u-1"', "The bug is in parse().") in found


# --- existing sub-issues --------------------------------------------------------------------


def test_existing_sub_issues_are_shown_with_how_to_reuse_them() -> None:
    ctx = PlanningContext(issue_identifier="ENG-1", title="t", existing_subissues=EXISTING)
    rendered = render_planner_input(ctx)
    found = [(a, b) for s, a, b in BLOCK.findall(rendered) if s == "issue.sub_issue"]
    assert len(found) == 2
    assert 'identifier="ENG-5"' in found[0][0] and 'state="In Progress (started)"' in found[0][0]
    assert "set that sub-task's `reuses`" in rendered


def test_reuses_must_name_an_existing_sub_issue_once() -> None:
    plan = Plan.model_validate(
        {
            "summary": "s",
            "subtasks": [
                {**one_task_plan(reuses="eng-5")["subtasks"][0]},
                {**one_task_plan(reuses="ENG-5")["subtasks"][0], "key": "again"},
                {**one_task_plan(reuses="ENG-99")["subtasks"][0], "key": "ghost"},
            ],
        }
    )
    problems = reuse_problems(plan, EXISTING)
    assert len(problems) == 2
    assert "ENG-5 is already reused by sub-task 'add-function'" in problems[0]
    assert "'ENG-99' is not an existing sub-issue" in problems[1] and "ENG-5, ENG-6" in problems[1]
    assert reuse_problems(Plan.model_validate(one_task_plan(reuses="ENG-5")), EXISTING) == []


def test_bindings_and_the_report_note_say_what_was_reused_and_what_was_left() -> None:
    plan = validate_plan(one_task_plan(reuses="ENG-5"), max_subtasks=8)
    assert {k: v.identifier for k, v in bindings(plan.subtasks, EXISTING).items()} == {
        "add-function": "ENG-5"
    }
    note = reuse_note(plan, EXISTING)
    assert note == (
        "Existing sub-issues reused: ENG-5 (as `add-function`). "
        "Existing sub-issues left as they are (not in the plan): ENG-6 (Todo)."
    )
    assert reuse_note(plan, []) is None


@pytest.fixture
def anthropic() -> Iterator[tuple[AnthropicStandIn, str]]:
    stand_in = AnthropicStandIn(api_key="k")
    with serve_anthropic(stand_in) as url:
        yield stand_in, url


def anthropic_planner(url: str) -> Planner:
    fast = RetryPolicy(attempts=2, timeout_seconds=10, wait_initial=0, wait_max=0, wait_jitter=0)
    backend = AnthropicBackend(base_url=url, api_key="k", model="m", timeout_seconds=10, retry=fast)
    return Planner(backend=backend, system_prompt="plan", max_subtasks=8)


async def test_a_plan_reusing_an_unknown_sub_issue_is_re_asked_over_http(
    anthropic: tuple[AnthropicStandIn, str],
) -> None:
    stand_in, url = anthropic
    stand_in.script(
        ToolAnswer(one_task_plan(reuses="ENG-99")), ToolAnswer(one_task_plan(reuses="ENG-5"))
    )
    ctx = PlanningContext(issue_identifier="ENG-1", title="t", existing_subissues=EXISTING)
    outcome = await anthropic_planner(url).plan(ctx)
    assert outcome.plan.subtasks[0].reuses == "ENG-5"
    assert outcome.attempts == 2
    reask = stand_in.successful_requests[1].body["messages"][-1]["content"][0]
    assert reask["is_error"] and "'ENG-99' is not an existing sub-issue" in reask["content"]


async def test_reusing_a_sub_issue_twice_fails_after_the_re_ask(
    anthropic: tuple[AnthropicStandIn, str],
) -> None:
    stand_in, url = anthropic
    twice = one_task_plan(reuses="ENG-5")
    twice["subtasks"].append({**twice["subtasks"][0], "key": "other"})
    stand_in.script(ToolAnswer(twice), ToolAnswer(twice))
    ctx = PlanningContext(issue_identifier="ENG-1", title="t", existing_subissues=EXISTING)
    with pytest.raises(PlanningFailed, match="already reused"):
        await anthropic_planner(url).plan(ctx)


# --- attachments: finding, naming, the size cap -------------------------------------------


def test_references_are_attachments_then_uploads_in_text_within_max_files() -> None:
    hosts = ["uploads.linear.app"]
    attachments = [
        {"title": "Design", "url": "https://uploads.linear.app/o/1/2"},
        {"title": "PR", "url": "https://github.com/x/y/pull/1"},
    ]
    description = (
        "See ![shot](https://uploads.linear.app/o/3/4) and [docs](https://example.com/doc), "
        "again https://uploads.linear.app/o/1/2 and https://uploads.linear.app/o/5/6."
    )
    found, dropped = find_references(
        attachments,
        [description, None, "https://uploads.linear.app/o/7/8"],
        upload_hosts=hosts,
        max_files=3,
    )
    assert [(r.url, r.title, r.fetch) for r in found] == [
        ("https://uploads.linear.app/o/1/2", "Design", True),
        ("https://github.com/x/y/pull/1", "PR", False),
        ("https://uploads.linear.app/o/3/4", "shot", True),
        ("https://uploads.linear.app/o/5/6", None, True),
    ]
    assert dropped == 1  # the comment's upload: three uploads were fetched already
    assert "1 more uploads were not fetched" in skipped_notes([], dropped, 3)[0]


def test_the_token_is_only_for_upload_hosts() -> None:
    found, _ = find_references(
        [],
        ["https://uploads.linear.app.evil.com/x https://evil.com/uploads.linear.app/y"],
        upload_hosts=["uploads.linear.app"],
        max_files=10,
    )
    assert found == []


def test_file_names_are_safe_unique_and_typed() -> None:
    taken: set[str] = set()
    ref = Reference(url="https://uploads.linear.app/o/uuid-1/uuid-2", title="shot", fetch=True)
    assert file_name(ref, taken, "image/png") == "uuid-2.png"
    assert file_name(ref, taken, "image/png") == "uuid-2-2.png"
    evil = Reference(
        url="https://uploads.linear.app/o/1/2", title="../../etc/passwd.txt", fetch=True
    )
    assert file_name(evil, taken) == "etc-passwd.txt"
    assert kind_of("image/png", "a") == "image"
    assert kind_of("application/octet-stream", "notes.md") == "text"
    assert kind_of("application/pdf", "a.pdf") == "file"
    assert kind_of("image/svg+xml", "a.svg") == "file"  # not an image the API accepts


def test_the_size_cap_says_what_was_skipped_and_the_setting() -> None:
    assert too_large("big.png", 100, 100) is None
    note = too_large("big.png", 4_500_000, 3_000_000)
    assert note == (
        "Attachment big.png was not fetched: it is 4.5 MB and the limit is 3.0 MB "
        "(setting EDGE_WORKER_ATTACHMENTS__MAX_BYTES)."
    )


# --- attachments over real HTTP -----------------------------------------------------------


@pytest.fixture
def linear() -> Iterator[tuple[LinearStandIn, str]]:
    stand_in = LinearStandIn()
    with serve_in_thread(stand_in.app) as url:
        yield stand_in, url


async def test_an_upload_is_fetched_with_the_token_and_refused_without(
    linear: tuple[LinearStandIn, str], tmp_path: Path
) -> None:
    stand_in, url = linear
    upload = url + stand_in.store.add_upload(PNG, "image/png")
    size, media = await fetch_upload(
        upload, tmp_path / "a.png", authorization=DEFAULT_API_KEY, max_bytes=1000
    )
    assert (size, media) == (len(PNG), "image/png")
    assert (tmp_path / "a.png").read_bytes() == PNG
    with pytest.raises(UploadFailed, match="HTTP 401"):
        await fetch_upload(upload, tmp_path / "b.png", authorization="wrong", max_bytes=1000)
    assert [(status, auth) for _, status, auth in stand_in.upload_requests] == [
        (200, DEFAULT_API_KEY),
        (401, "wrong"),
    ]
    assert not (tmp_path / "b.png").exists()


async def test_an_upload_over_the_cap_leaves_no_file(
    linear: tuple[LinearStandIn, str], tmp_path: Path
) -> None:
    stand_in, url = linear
    upload = url + stand_in.store.add_upload(b"x" * 5000, "text/plain")
    with pytest.raises(UploadTooLarge) as raised:
        await fetch_upload(
            upload, tmp_path / "big.txt", authorization=DEFAULT_API_KEY, max_bytes=4999
        )
    assert raised.value.size == 5000
    assert list(tmp_path.iterdir()) == []


async def test_images_reach_the_anthropic_planner_as_image_blocks(
    anthropic: tuple[AnthropicStandIn, str], tmp_path: Path
) -> None:
    stand_in, url = anthropic
    (tmp_path / "shot.png").write_bytes(PNG)
    stand_in.script(ToolAnswer(one_task_plan()))
    ctx = PlanningContext(
        issue_identifier="ENG-1",
        title="t",
        attachments=[
            AttachmentRef(
                name="shot.png",
                url="u1",
                kind="image",
                media_type="image/png",
                path=str(tmp_path / "shot.png"),
            ),
            AttachmentRef(
                name="log.txt",
                url="u2",
                kind="text",
                media_type="text/plain",
                path="/nowhere",
                text="ERROR at line 3",
            ),
            AttachmentRef(name="big.zip", url="u3", kind="file", skipped="too big"),
        ],
    )
    await anthropic_planner(url).plan(ctx)
    content = stand_in.successful_requests[0].body["messages"][0]["content"]
    assert content[0]["type"] == "text"
    assert content[1] == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(PNG).decode(),
        },
    }
    blocks = {
        m[2].split("\n")[0]: m[1]
        for m in BLOCK.findall(content[0]["text"])
        if m[0] == "issue.attachment"
    }
    assert "ERROR at line 3" in blocks and 'kind="text"' in blocks["ERROR at line 3"]
    assert any("not fetched: too big" in body for _, _, body in BLOCK.findall(content[0]["text"]))


def test_the_claude_planner_may_read_the_image_directory() -> None:
    backend = ClaudeCodeBackend(binary="claude")
    argv = backend.command(system="s", session_id=None, image_dirs=["/state/attachments/i1"])
    assert argv[argv.index("--add-dir") + 1] == "/state/attachments/i1"


def test_files_go_into_the_worktree_out_of_git_and_the_prompt_names_them(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (tmp_path / "shot.png").write_bytes(PNG)
    files = [
        TaskAttachment(name="shot.png", path=str(tmp_path / "shot.png")),
        TaskAttachment(name="../gone.txt", path=str(tmp_path / "missing")),
    ]
    assert place_attachments(repo, files) == ["shot.png"]
    assert (repo / ".edge-worker/attachments/shot.png").read_bytes() == PNG
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""  # nothing there can be committed
    task = Task(
        issue_id="i",
        issue_identifier="ENG-1",
        key="k",
        title="t",
        description="d",
        attachments=files[:1],
    )
    prompt = task_prompt(task, workdir=repo, branch="b")
    assert "- .edge-worker/attachments/shot.png" in prompt
    assert "untrusted data" in prompt


# --- edits during the work ---------------------------------------------------------------


def test_a_title_or_description_edit_is_a_follow_up_for_active_work() -> None:
    payload = p.issue_edited(
        "iss-1",
        previous={"description": "old"},
        description="new text",
        updated_at="2026-01-01T00:00:00.000Z",
    )
    decision = classify(payload, RULES)
    assert decision.kind is Kind.FOLLOW_UP and decision.only_if_active
    assert decision.context["edit"] == {
        "fields": ["description"],
        "title": "Add a greeting function",
        "description": "new text",
    }
    assert decision.dedupe_key == "issue:iss-1:edit:description@2026-01-01T00:00:00.000Z"
    own = p.issue_edited("iss-1", previous={"title": "x"}, actor_id=AGENT)
    assert classify(own, RULES).kind is Kind.IGNORE
    other = p.issue_edited("iss-1", previous={"priority": 1})
    assert classify(other, RULES).kind is Kind.IGNORE


def test_an_edit_becomes_a_thought_and_feedback_with_the_new_text() -> None:
    message = {
        "kind": "follow_up",
        "context": {
            "edit": {"fields": ["title", "description"], "title": "New", "description": None}
        },
    }
    edit = edits.edit_of(message)
    assert edit is not None
    assert "title and description changed" in edits.acknowledgement(edit)
    text = edits.feedback(edit)
    assert "New title: New" in text and "New description:\n(now empty)" in text
    snapshot = {"title": "Old", "description": "old"}
    edits.apply_to_snapshot(snapshot, edit)
    assert snapshot == {"title": "New", "description": None}
    assert edits.edit_of({"kind": "follow_up", "text": "hi"}) is None


def test_demo_plan_still_validates_with_the_reuses_field() -> None:
    plan = validate_plan(demo_plan(sys.executable), max_subtasks=8)
    assert all(s.reuses is None for s in plan.subtasks)


def test_codex_gets_the_worktree_images_as_image_input(tmp_path: Path) -> None:
    from edge_worker.executors.codex import CodexExecutor
    from edge_worker.executors.worktrees import WorktreeManager
    from edge_worker.sandbox.fake_codex import parse
    from edge_worker.settings import CodexSettings

    (tmp_path / "shot.png").write_bytes(PNG)
    (tmp_path / "log.txt").write_text("log")
    files = [
        TaskAttachment(name="shot.png", path=str(tmp_path / "shot.png"), media_type="image/png"),
        TaskAttachment(name="log.txt", path=str(tmp_path / "log.txt"), media_type="text/plain"),
    ]
    workdir = tmp_path / "wt"
    place_attachments(workdir, files)
    task = Task(
        issue_id="i",
        issue_identifier="ENG-1",
        key="k",
        title="t",
        description="d",
        attachments=files,
    )
    executor = CodexExecutor(
        CodexSettings(binary="codex"), WorktreeManager(tmp_path / "trees"), pricer=lambda m, u: None
    )
    argv = executor.build_argv(task, workdir=workdir, prompt="# Task", resume_session=None)
    image = str(workdir / ".edge-worker/attachments/shot.png")
    assert f"--image={image}" in argv and argv[-1] == "# Task"
    parsed = parse(argv[1:])  # the stand-in CLI accepts it, prompt intact
    assert isinstance(parsed, dict) and parsed["images"] == [image] and parsed["prompt"] == "# Task"
    resumed = executor.build_argv(task, workdir=workdir, prompt="more", resume_session="t-1")
    assert not any(a.startswith("--image") for a in resumed)


def test_a_sub_issue_an_earlier_run_created_for_the_same_key_counts_as_reused() -> None:
    from edge_worker.orchestration.existing import subtask_issue_id

    earlier = ExistingSubIssue(
        id=subtask_issue_id("parent-1", "add-function"), identifier="ENG-7", title="Add calc.add"
    )
    plan = validate_plan(one_task_plan(), max_subtasks=8)
    assert bindings(plan.subtasks, [earlier], "parent-1") == {"add-function": earlier}
    assert bindings(plan.subtasks, [earlier]) == {}
    assert reuse_note(plan, [earlier], "parent-1") == (
        "Existing sub-issues reused: ENG-7 (as `add-function`)."
    )


async def test_a_body_without_length_is_cut_off_at_the_cap_while_streaming(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 1000

    async def endless(request: Any) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/f", endless)])
    with serve_in_thread(app) as url, pytest.raises(UploadTooLarge) as raised:
        await fetch_upload(url + "/f", tmp_path / "f.txt", authorization="k", max_bytes=2500)
    assert raised.value.size > 2500
    assert list(tmp_path.iterdir()) == []


def test_a_cloud_run_is_told_where_the_files_are_on_linear() -> None:
    from edge_worker.executors.codegen_runs import build_run_prompt

    files = [
        TaskAttachment(name="shot.png", path="/x/shot.png", url="https://uploads.linear.app/o/1/2")
    ]
    task = Task(
        issue_id="i",
        issue_identifier="ENG-1",
        key="k",
        title="t",
        description="d",
        attachments=files,
    )
    prompt = build_run_prompt(task)
    assert "## Files attached to the Linear issue" in prompt
    assert "- shot.png: https://uploads.linear.app/o/1/2" in prompt
    assert "/x/shot.png" not in prompt  # the daemon's own paths stay on the daemon
    bare = task.model_copy(update={"attachments": []})
    assert "Files attached" not in build_run_prompt(bare)


def test_old_fetched_files_are_swept_and_recent_ones_kept(tmp_path: Path) -> None:
    import os

    from edge_worker.orchestration.attachment_steps import sweep_attachments

    old, recent = tmp_path / "issue-old", tmp_path / "issue-new"
    for directory in (old, recent):
        directory.mkdir()
        (directory / "a.png").write_bytes(PNG)
    os.utime(old, (1_000_000, 1_000_000))
    assert sweep_attachments(tmp_path, keep_days=7) == [old]
    assert not old.exists() and (recent / "a.png").is_file()
    assert sweep_attachments(tmp_path / "absent", keep_days=7) == []
