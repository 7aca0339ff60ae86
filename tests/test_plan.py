"""Plan validation and the dependency graph helpers."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from edge_worker.orchestration.plan import (
    Plan,
    PlanError,
    dependencies_of,
    dependents_of,
    plan_json_schema,
    topological_layers,
    validate_plan,
)


def task(
    key: str,
    *deps: str,
    role: str = "builder",
    checks: list[dict[str, Any]] | None = None,
    executor: str = "any",
) -> dict[str, Any]:
    return {
        "key": key,
        "title": f"Do {key}",
        "description": f"Objective: {key}. Acceptance: tests pass.",
        "role": role,
        "executor": executor,
        "depends_on": list(deps),
        "verification": [{"command": "python -m pytest -q"}] if checks is None else checks,
    }


def plan(*subtasks: dict[str, Any]) -> dict[str, Any]:
    return {"summary": "Add a feature.", "subtasks": list(subtasks)}


def rejection(raw: object, *, max_subtasks: int = 8, max_depth: int = 4) -> PlanError:
    with pytest.raises(PlanError) as caught:
        validate_plan(raw, max_subtasks=max_subtasks, max_depth=max_depth)
    return caught.value


def test_a_valid_plan_from_json_text_keeps_every_field() -> None:
    raw = plan(
        task("scope", role="scoper", checks=[], executor="local"),
        task("build", "scope", checks=[{"command": "make check", "expect_exit": 0}]),
        task("review", "build", role="reviewer", checks=[]),
    )
    result = validate_plan(json.dumps(raw), max_subtasks=8)
    assert isinstance(result, Plan)
    assert result.keys == ["scope", "build", "review"]
    build = result.subtask("build")
    assert build.depends_on == ["scope"]
    assert build.verification_commands()[0].command == "make check"
    assert result.subtask("scope").executor == "local"
    assert result.subtask("review").role == "reviewer"


def test_defaults_fill_executor_depends_on_and_expect_exit() -> None:
    raw = plan(
        {
            "key": "only",
            "title": "One thing",
            "description": "All of it.",
            "role": "builder",
            "verification": [{"command": "true"}],
        }
    )
    only = validate_plan(raw, max_subtasks=1).subtasks[0]
    assert (only.executor, only.depends_on, only.verification[0].expect_exit) == ("any", [], 0)


def test_bytes_and_an_already_valid_plan_are_accepted() -> None:
    raw = plan(task("a"))
    parsed = validate_plan(json.dumps(raw).encode(), max_subtasks=8)
    assert validate_plan(parsed, max_subtasks=8) == parsed


def test_malformed_json_names_the_position() -> None:
    error = rejection('{"summary": "x", "subtasks": [}')
    assert "not valid JSON" in str(error)
    assert "line 1 column" in str(error)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [([], "not an array"), ('"text"', "not a string"), ("null", "not null")],
)
def test_a_plan_that_is_not_an_object_says_what_it_got(raw: object, expected: str) -> None:
    assert expected in str(rejection(raw))


def test_shape_errors_name_the_field_path_and_the_subtask_key() -> None:
    bad = task("lint-fix")
    bad["role"] = "tester"
    bad["colour"] = "blue"
    del bad["title"]
    problems = rejection(plan(bad)).problems
    assert any(p.startswith('subtasks[0] ("lint-fix").role:') and "tester" in p for p in problems)
    assert 'subtasks[0] ("lint-fix").colour: is not a known field; remove it' in problems
    assert 'subtasks[0] ("lint-fix").title: is required' in problems


def test_a_key_that_is_not_a_slug_is_rejected() -> None:
    problems = rejection(plan(task("Add Tests!"))).problems
    assert any("key: must be a slug" in p for p in problems)


def test_blank_text_fields_are_rejected() -> None:
    blank = task("a")
    blank["title"] = "   "
    assert any("title" in p for p in rejection(plan(blank)).problems)


def test_an_empty_plan_is_rejected() -> None:
    assert any(p.startswith("subtasks:") for p in rejection(plan()).problems)


def test_duplicate_keys_are_named() -> None:
    problems = rejection(plan(task("a"), task("a"))).problems
    assert problems == ['duplicate key "a": every sub-task needs its own key']


def test_unknown_dependency_is_named_with_the_known_keys() -> None:
    problems = rejection(plan(task("a"), task("b", "ghost"))).problems
    assert problems == ['sub-task "b" depends on unknown key "ghost"; known keys: a, b']


def test_a_cycle_is_named_link_by_link() -> None:
    problems = rejection(plan(task("a", "c"), task("b", "a"), task("c", "b"))).problems
    assert len(problems) == 1
    assert "cycle" in problems[0]
    for link in ('"a" depends on "c"', '"c" depends on "b"', '"b" depends on "a"'):
        assert link in problems[0]


def test_a_self_dependency_is_a_cycle() -> None:
    problems = rejection(plan(task("a", "a"))).problems
    assert problems == [
        'the dependencies form a cycle: "a" depends on "a"; remove one of these dependencies'
    ]


def test_more_subtasks_than_allowed_is_rejected_with_the_limit() -> None:
    error = rejection(plan(*(task(f"t{i}") for i in range(4))), max_subtasks=3)
    assert "the plan has 4 sub-tasks; at most 3 are allowed" in str(error)


def test_exactly_max_subtasks_is_accepted() -> None:
    assert len(validate_plan(plan(*(task(f"t{i}") for i in range(3))), max_subtasks=3).subtasks)


def test_a_chain_deeper_than_max_depth_is_rejected_and_named() -> None:
    chain = plan(task("a"), task("b", "a"), task("c", "b"))
    assert validate_plan(chain, max_subtasks=8, max_depth=3)
    error = rejection(chain, max_depth=2)
    assert "the dependency chain a -> b -> c" in str(error)
    assert "3 sub-tasks deep; at most 2" in str(error)


@pytest.mark.parametrize("role", ["builder", "debugger"])
def test_a_code_task_without_verification_is_rejected(role: str) -> None:
    problems = rejection(plan(task("fix", role=role, checks=[]))).problems
    assert problems == [
        f'sub-task "fix" is a {role} task without verification: add at least one command '
        "whose exit code proves the work"
    ]


@pytest.mark.parametrize("role", ["scoper", "reviewer"])
def test_non_code_tasks_may_have_no_verification(role: str) -> None:
    assert validate_plan(plan(task("look", role=role, checks=[])), max_subtasks=8)


def test_every_problem_is_reported_at_once() -> None:
    raw = plan(task("a", "nope"), task("b", checks=[]), task("c"))
    problems = rejection(raw, max_subtasks=2).problems
    assert len(problems) == 3
    assert str(rejection(raw, max_subtasks=2)).startswith("The plan was rejected:\n- ")


def test_topological_layers_group_independent_work() -> None:
    graph = validate_plan(
        plan(
            task("left"),
            task("right"),
            task("join", "left", "right"),
            task("side", "left"),
            task("review", "join", "side", role="reviewer", checks=[]),
        ),
        max_subtasks=8,
    )
    layers = [[s.key for s in layer] for layer in topological_layers(graph)]
    assert layers == [["left", "right"], ["join", "side"], ["review"]]


def test_topological_layers_refuse_a_cycle() -> None:
    cyclic = Plan.model_validate(plan(task("a", "b"), task("b", "a")))
    with pytest.raises(PlanError, match="cycle"):
        topological_layers(cyclic)


def test_dependents_of_is_transitive_and_in_plan_order() -> None:
    graph = validate_plan(
        plan(task("a"), task("b", "a"), task("x"), task("c", "b", "x"), task("d", "x")),
        max_subtasks=8,
    )
    assert [s.key for s in dependents_of(graph, "a")] == ["b", "c"]
    assert [s.key for s in dependents_of(graph, "x")] == ["c", "d"]
    assert dependents_of(graph, "d") == []
    with pytest.raises(KeyError):
        dependents_of(graph, "missing")


def test_dependencies_of_is_transitive_and_in_plan_order() -> None:
    graph = validate_plan(
        plan(task("x"), task("a"), task("b", "a"), task("c", "b", "x"), task("d", "x")),
        max_subtasks=8,
    )
    assert [s.key for s in dependencies_of(graph, "c")] == ["x", "a", "b"]
    assert [s.key for s in dependencies_of(graph, "d")] == ["x"]
    assert dependencies_of(graph, "a") == []
    with pytest.raises(KeyError):
        dependencies_of(graph, "missing")


def test_the_json_schema_is_self_contained_and_describes_the_format() -> None:
    schema = plan_json_schema()
    assert "$ref" not in json.dumps(schema)
    assert "$defs" not in schema
    assert schema["required"] == ["summary", "subtasks"]
    item = schema["properties"]["subtasks"]["items"]
    assert item["properties"]["role"]["enum"] == ["builder", "debugger", "scoper", "reviewer"]
    assert item["properties"]["executor"]["enum"] == ["any", "local", "cloud"]
    check = item["properties"]["verification"]["items"]
    assert set(check["properties"]) == {"command", "expect_exit"}
    assert item["additionalProperties"] is False


def test_a_plan_error_survives_pickling_with_its_problems() -> None:
    error = rejection(plan(task("a"), task("a", "ghost")))
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems
    assert str(copy) == str(error)
