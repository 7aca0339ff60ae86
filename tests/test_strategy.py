"""Choosing an executor for a sub-task under each strategy."""

from __future__ import annotations

from typing import Any

import pytest

from edge_worker.orchestration.plan import Subtask, Verification
from edge_worker.orchestration.strategy import (
    SMALL_TASK_CHARS,
    Choice,
    ExecutorEstimate,
    choose_executor,
    is_small_task,
)
from edge_worker.settings import Strategy

ALL = {"codegen", "claude-code", "codex"}
LOCAL = {"claude-code", "codex"}
LONG = "Objective: implement the parser.\n" + "Context and acceptance criteria. " * 20


def subtask(
    role: str = "builder",
    *,
    executor: str = "any",
    depends_on: list[str] | None = None,
    description: str = LONG,
    checks: int = 2,
) -> Subtask:
    return Subtask(
        key="work",
        title="Work",
        description=description,
        role=role,  # type: ignore[arg-type]
        executor=executor,  # type: ignore[arg-type]
        depends_on=depends_on or [],
        verification=[Verification(command=f"check {i}") for i in range(checks)],
    )


def choose(strategy: Strategy, task: Subtask, **overrides: Any) -> Choice:
    arguments: dict[str, Any] = {
        "available": ALL,
        "remaining_budget_usd": None,
        "estimates": {},
        "fallback_to_local": True,
    }
    arguments.update(overrides)
    return choose_executor(strategy, task, **arguments)


def test_local_only_prefers_claude_code_then_codex() -> None:
    assert choose("local-only", subtask()).executor == "claude-code"
    assert choose("local-only", subtask(), available={"codex", "codegen"}).executor == "codex"


def test_local_only_without_a_local_executor_says_why() -> None:
    choice = choose(
        "local-only",
        subtask(),
        available={"codegen"},
        unavailable_reasons={"claude-code": "binary not found"},
    )
    assert choice.executor is None
    assert "no local executor is available" in choice.reason
    assert "claude-code: binary not found" in choice.reason


def test_cloud_only_uses_codegen_for_every_role() -> None:
    for role in ("builder", "debugger", "scoper", "reviewer"):
        assert choose("cloud-only", subtask(role)).executor == "codegen"


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("builder", "codegen"),
        ("debugger", "codegen"),
        ("scoper", "claude-code"),
        ("reviewer", "claude-code"),
    ],
)
def test_hybrid_smart_sends_code_to_the_cloud_and_the_rest_local(role: str, expected: str) -> None:
    choice = choose("hybrid-smart", subtask(role))
    assert choice.executor == expected
    assert not choice.fell_back


def test_hybrid_smart_runs_a_small_code_task_locally() -> None:
    small = subtask(description="Rename `foo` to `bar` in utils.py.", checks=1)
    assert is_small_task(small)
    choice = choose("hybrid-smart", small)
    assert choice.executor == "claude-code"
    assert "small" in choice.reason


def test_small_task_boundary() -> None:
    assert is_small_task(subtask(description="x" * SMALL_TASK_CHARS, checks=1))
    assert not is_small_task(subtask(description="x" * (SMALL_TASK_CHARS + 1), checks=1))
    assert not is_small_task(subtask(description="short", checks=2))
    assert not is_small_task(subtask("reviewer", description="short", checks=0))


def test_hybrid_parallel_sends_independent_work_to_the_cloud() -> None:
    assert choose("hybrid-parallel", subtask("reviewer")).executor == "codegen"
    assert choose("hybrid-parallel", subtask("builder")).executor == "codegen"


def test_hybrid_parallel_treats_dependent_work_like_hybrid_smart() -> None:
    assert choose("hybrid-parallel", subtask("reviewer", depends_on=["a"])).executor == (
        "claude-code"
    )
    assert choose("hybrid-parallel", subtask("builder", depends_on=["a"])).executor == "codegen"


def test_the_hint_narrows_a_hybrid_strategy() -> None:
    choice = choose("hybrid-smart", subtask("builder", executor="local"))
    assert choice.executor == "claude-code"
    assert "asks for a local executor" in choice.reason
    assert choose("hybrid-smart", subtask("reviewer", executor="cloud")).executor == "codegen"


@pytest.mark.parametrize(
    ("strategy", "hint", "expected"),
    [("local-only", "cloud", "claude-code"), ("cloud-only", "local", "codegen")],
)
def test_a_hint_the_strategy_forbids_is_ignored_and_reported(
    strategy: Strategy, hint: str, expected: str
) -> None:
    choice = choose(strategy, subtask(executor=hint))
    assert choice.executor == expected
    assert f"{hint} hint is ignored under {strategy}" in choice.reason


def test_codegen_unavailable_falls_back_to_local_and_says_so() -> None:
    choice = choose(
        "hybrid-smart",
        subtask("builder"),
        available=LOCAL,
        unavailable_reasons={"codegen": "quota used up (402)"},
    )
    assert choice.executor == "claude-code"
    assert choice.fell_back
    assert "codegen unavailable (quota used up (402)): fell back to claude-code" in choice.reason


def test_codegen_unavailable_without_fallback_gives_no_executor() -> None:
    choice = choose("cloud-only", subtask(), available=LOCAL, fallback_to_local=False)
    assert choice == Choice(
        None, "strategy cloud-only, but codegen unavailable and fallback to local is off"
    )


def test_codegen_unavailable_and_no_local_executor() -> None:
    choice = choose("hybrid-smart", subtask(), available=set())
    assert choice.executor is None
    assert "no local executor is available" in choice.reason


def test_no_budget_left_means_no_executor() -> None:
    choice = choose("local-only", subtask(), remaining_budget_usd=0.0)
    assert choice.executor is None
    assert "no budget left" in choice.reason


def test_cost_optimized_picks_the_cheapest_per_expected_success() -> None:
    estimates = {
        "codegen": ExecutorEstimate(expected_usd=0.50, success_rate=0.9),  # 0.56 per success
        "claude-code": ExecutorEstimate(expected_usd=0.40, success_rate=0.6),  # 0.67
        "codex": ExecutorEstimate(expected_usd=0.45, success_rate=0.9),  # 0.50
    }
    choice = choose("cost-optimized", subtask(), estimates=estimates)
    assert choice.executor == "codex"
    assert "about $0.45 a run, 90% success" in choice.reason


def test_cost_optimized_skips_unlikely_and_unaffordable_executors() -> None:
    estimates = {
        "codegen": ExecutorEstimate(expected_usd=0.10, success_rate=0.3),
        "claude-code": ExecutorEstimate(expected_usd=2.00, success_rate=0.9),
        "codex": ExecutorEstimate(expected_usd=0.80, success_rate=0.7),
    }
    choice = choose("cost-optimized", subtask(), estimates=estimates, remaining_budget_usd=1.0)
    assert choice.executor == "codex"


def test_cost_optimized_prefers_priced_over_unpriced() -> None:
    estimates = {"codex": ExecutorEstimate(expected_usd=None, success_rate=0.9)}
    estimates["claude-code"] = ExecutorEstimate(expected_usd=3.0, success_rate=0.6)
    estimates["codegen"] = ExecutorEstimate(expected_usd=None, success_rate=0.9)
    assert choose("cost-optimized", subtask(), estimates=estimates).executor == "claude-code"


def test_cost_optimized_with_nothing_affordable_lists_every_exclusion() -> None:
    estimates = {
        "codegen": ExecutorEstimate(expected_usd=5.0, success_rate=0.9),
        "claude-code": ExecutorEstimate(expected_usd=4.0, success_rate=0.9),
        "codex": ExecutorEstimate(expected_usd=1.0, success_rate=0.1),
    }
    choice = choose("cost-optimized", subtask(), estimates=estimates, remaining_budget_usd=2.0)
    assert choice.executor is None
    assert "codegen costs about $5.00, over the $2.00 left" in choice.reason
    assert "claude-code costs about $4.00" in choice.reason
    assert "codex succeeds 10% of the time" in choice.reason


def test_cost_optimized_reports_a_fall_back_when_the_cheapest_is_codegen_and_unavailable() -> None:
    estimates = {
        "codegen": ExecutorEstimate(expected_usd=0.10, success_rate=0.9),
        "claude-code": ExecutorEstimate(expected_usd=0.50, success_rate=0.9),
    }
    choice = choose(
        "cost-optimized",
        subtask(),
        estimates=estimates,
        available=LOCAL,
        unavailable_reasons={"codegen": "unreachable"},
    )
    assert choice.executor == "claude-code"
    assert choice.fell_back
    assert choice.reason.startswith("codegen unavailable (unreachable): fell back to")


def test_cost_optimized_honours_the_hint() -> None:
    estimates = {
        "codegen": ExecutorEstimate(expected_usd=0.10, success_rate=0.9),
        "claude-code": ExecutorEstimate(expected_usd=0.90, success_rate=0.9),
        "codex": ExecutorEstimate(expected_usd=0.50, success_rate=0.9),
    }
    local = choose("cost-optimized", subtask(executor="local"), estimates=estimates)
    assert local.executor == "codex"
    cheap_cloud = dict(estimates, codegen=ExecutorEstimate(expected_usd=2.0, success_rate=0.9))
    cloud = choose("cost-optimized", subtask(executor="cloud"), estimates=cheap_cloud)
    assert cloud.executor == "codegen"


def test_cost_optimized_cloud_hint_falls_back_only_when_configured() -> None:
    task = subtask(executor="cloud")
    fell = choose("cost-optimized", task, available=LOCAL)
    assert (fell.executor, fell.fell_back) == ("claude-code", True)
    assert "asks for a cloud executor but codegen unavailable" in fell.reason
    refused = choose("cost-optimized", task, available=LOCAL, fallback_to_local=False)
    assert refused.executor is None
    assert "fallback to local is off" in refused.reason
