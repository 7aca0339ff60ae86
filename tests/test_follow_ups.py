"""Which sub-tasks a follow-up names (sans-I/O rules)."""

from __future__ import annotations

from edge_worker.orchestration.follow_ups import Named, named_subtasks

TASKS = [
    Named("add-function", "ENG-8"),
    Named("cli", "ENG-9"),
    Named("review", "ENG-80"),
    Named("docs", None),  # its sub-issue is not created yet
]


def test_a_sub_issue_identifier_names_its_sub_task_in_any_case() -> None:
    assert named_subtasks("ENG-8: also accept floats", TASKS) == ["add-function"]
    assert named_subtasks("about eng-9, the output is wrong", TASKS) == ["cli"]


def test_an_identifier_is_not_matched_inside_a_longer_one() -> None:
    assert named_subtasks("ENG-80 looks fine", TASKS) == ["review"]
    assert named_subtasks("see ENG-81 and XENG-8", TASKS) == []


def test_a_key_counts_only_in_backticks_since_keys_are_everyday_words() -> None:
    assert named_subtasks("please review the cli once more", TASKS) == []
    assert named_subtasks("`cli` should print a usage line", TASKS) == ["cli"]
    assert named_subtasks("`docs`: mention the divide command", TASKS) == ["docs"]


def test_several_named_sub_tasks_come_in_plan_order_once_each() -> None:
    text = "`cli` and ENG-8 both need work; ENG-8 first, then `cli` again"
    assert named_subtasks(text, TASKS) == ["add-function", "cli"]


def test_a_follow_up_naming_nothing_is_for_the_orchestrator() -> None:
    assert named_subtasks("Please also document the CLI in the README.", TASKS) == []
