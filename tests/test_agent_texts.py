"""What the daemon says on Linear: one-line reasons without the daemon's paths, refusals
that say what to do, sub-issues that link their parent and its report (sans-I/O)."""

from __future__ import annotations

import sys

from edge_worker.orchestration import texts
from edge_worker.orchestration.plan import Subtask
from edge_worker.reporting.subissue import render_subissue_description
from edge_worker.sandbox.demo_plan import demo_plan


def test_a_reason_for_linear_is_one_line_without_absolute_paths() -> None:
    raw = "claude-code unavailable: [Errno 2] No such file: '/usr/local/bin/claude'\nmore"
    assert texts.for_linear(raw) == "claude-code unavailable: [Errno 2] No such file: 'claude' more"
    assert "https://api.example.com/v1/runs" in texts.for_linear(
        "see https://api.example.com/v1/runs"
    )
    assert len(texts.for_linear("x" * 1000)) == texts.MAX_REASON_CHARS


def test_each_refusal_names_what_to_do() -> None:
    assert "EDGE_WORKER_ALLOWED_TEAMS" in texts.refusal({"refusal": "team"})
    assert "EDGE_WORKER_ALLOWED_USERS" in texts.refusal({"refusal": "user"})
    assert "Delegate an issue" in texts.refusal({"refusal": "no_issue"})
    assert texts.refusal({}) == texts.refusal({"refusal": "no_issue"})


def test_texts_carry_no_exception_placeholders() -> None:
    assert "{" not in texts.CRASHED and "{" not in texts.SUBTASK_ERROR


def test_a_sub_issue_links_its_parent_and_the_report_by_url() -> None:
    subtask = Subtask.model_validate(demo_plan(sys.executable)["subtasks"][0])
    parent = "https://linear.app/example/issue/ENG-1"
    report = parent + "#comment-1234abcd"
    text = render_subissue_description("parent-id", subtask, parent_url=parent, report_url=report)
    assert parent in text and report in text
    assert parent not in render_subissue_description("parent-id", subtask)


def test_a_reply_to_the_repository_question_names_one_repository() -> None:
    from edge_worker.orchestration.workflows import _repository_reply

    known = ["demo", "website"]
    assert _repository_reply("demo", known) == "[repo=demo]"  # the selected option
    assert _repository_reply("`website`", known) == "[repo=website]"
    assert _repository_reply("use demo please", known) == "[repo=demo]"
    assert _repository_reply("[repo=website]", known) == "[repo=website]"
    assert _repository_reply("unknown", known) == "[repo=unknown]"  # refused by routing
    assert _repository_reply("demo or website?", known) == "demo or website?"
