"""Which executor runs a sub-task, under the configured strategy.

Contract: :func:`choose_executor` is a pure function. It returns a :class:`Choice` whose
``executor`` is one of the ``available`` names, or ``None`` with a ``reason`` saying why no
executor can run the sub-task. ``reason`` is written for the report; ``fell_back`` is true
when the strategy wanted the cloud (Codegen) and a local executor runs the sub-task instead.

Strategies:

- ``local-only``: a local CLI (Claude Code, then Codex, then Gemini).
- ``cloud-only``: Codegen.
- ``hybrid-smart``: scopers, reviewers and small code tasks local; other code work cloud.
- ``hybrid-parallel``: independent sub-tasks (no dependencies) to the cloud, where they all
  run at once; dependent ones as under ``hybrid-smart``.
- ``cost-optimized``: the executor with the lowest expected cost per success
  (``expected_usd / success_rate``) among those expected to succeed
  (``success_rate >= MIN_SUCCESS_RATE``) and affordable within the remaining budget;
  executors without a price come after priced ones.

The sub-task's executor hint (``local``/``cloud``) narrows the choice within what the
strategy allows; a hint the strategy forbids (``cloud`` under ``local-only``) is ignored
and the reason says so. When Codegen is wanted but unavailable, a local executor runs the
sub-task if ``fallback_to_local`` is set. No budget left (``remaining_budget_usd <= 0``)
means no executor.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from edge_worker.orchestration.plan import Subtask
from edge_worker.settings import Strategy

CLOUD_EXECUTOR = "codegen"
LOCAL_PREFERENCE: tuple[str, ...] = ("claude-code", "codex", "gemini")
MIN_SUCCESS_RATE = 0.5
DEFAULT_SUCCESS_RATE = 0.5
SMALL_TASK_CHARS = 400

Place = Literal["local", "cloud"]


@dataclass(frozen=True)
class ExecutorEstimate:
    """What one run of an executor is expected to cost, and how often it passes."""

    expected_usd: float | None
    success_rate: float


@dataclass(frozen=True)
class Choice:
    """The executor for a sub-task (``None``: none possible) and why."""

    executor: str | None
    reason: str
    fell_back: bool = False


def is_small_task(subtask: Subtask) -> bool:
    """A code task short enough to run locally under ``hybrid-smart``.

    Small means a description of at most ``SMALL_TASK_CHARS`` characters and at most one
    verification command: a one-line fix, a rename, a config change.
    """
    return (
        subtask.is_code_task
        and len(subtask.description) <= SMALL_TASK_CHARS
        and len(subtask.verification) <= 1
    )


def choose_executor(
    strategy: Strategy,
    subtask: Subtask,
    *,
    available: Collection[str],
    remaining_budget_usd: float | None,
    estimates: Mapping[str, ExecutorEstimate],
    fallback_to_local: bool,
    unavailable_reasons: Mapping[str, str] | None = None,
    local_preference: Sequence[str] = LOCAL_PREFERENCE,
) -> Choice:
    """Choose the executor for ``subtask``; see the module docstring for the rules.

    ``unavailable_reasons`` (e.g. ``{"codegen": "quota used up"}``) only enriches reasons.
    """
    reasons = dict(unavailable_reasons or {})
    if remaining_budget_usd is not None and remaining_budget_usd <= 0:
        return Choice(None, f"no budget left (remaining ${remaining_budget_usd:.2f})")

    place, why = _strategy_place(strategy, subtask)
    hint_note = ""
    if subtask.executor != "any":
        forbidden = (strategy == "local-only" and subtask.executor == "cloud") or (
            strategy == "cloud-only" and subtask.executor == "local"
        )
        if forbidden:
            hint_note = f" (the sub-task's {subtask.executor} hint is ignored under {strategy})"
        else:
            place = subtask.executor
            why = f"the sub-task asks for a {subtask.executor} executor"

    if strategy == "cost-optimized":
        return _cost_optimized(
            subtask,
            place,
            available=available,
            remaining_budget_usd=remaining_budget_usd,
            estimates=estimates,
            fallback_to_local=fallback_to_local,
            reasons=reasons,
            local_preference=local_preference,
        )
    if place == "local":
        local = _first_local(available, local_preference)
        if local is None:
            return Choice(
                None, f"{why}{hint_note}, but no local executor is available{_why_not(reasons)}"
            )
        return Choice(local, f"{why}{hint_note}: {local}")
    if CLOUD_EXECUTOR in available:
        return Choice(CLOUD_EXECUTOR, f"{why}{hint_note}: {CLOUD_EXECUTOR}")
    unavailable = f"{CLOUD_EXECUTOR} unavailable{_detail(reasons.get(CLOUD_EXECUTOR))}"
    if not fallback_to_local:
        return Choice(None, f"{why}{hint_note}, but {unavailable} and fallback to local is off")
    local = _first_local(available, local_preference)
    if local is None:
        return Choice(
            None, f"{why}{hint_note}, but {unavailable} and no local executor is available"
        )
    return Choice(local, f"{unavailable}: fell back to {local} ({why})", fell_back=True)


def _strategy_place(strategy: Strategy, subtask: Subtask) -> tuple[Place | None, str]:
    """Where the strategy alone would run ``subtask`` (``None``: decided by cost)."""
    if strategy == "local-only":
        return "local", "strategy local-only"
    if strategy == "cloud-only":
        return "cloud", "strategy cloud-only"
    if strategy == "cost-optimized":
        return None, "strategy cost-optimized"
    if strategy == "hybrid-parallel" and not subtask.depends_on:
        return "cloud", "hybrid-parallel: independent work runs in the cloud at once"
    label = strategy
    if not subtask.is_code_task:
        return "local", f"{label}: {subtask.role} work runs locally"
    if is_small_task(subtask):
        return "local", f"{label}: small code task runs locally"
    return "cloud", f"{label}: code work runs in the cloud"


def _cost_optimized(
    subtask: Subtask,
    place: Place | None,
    *,
    available: Collection[str],
    remaining_budget_usd: float | None,
    estimates: Mapping[str, ExecutorEstimate],
    fallback_to_local: bool,
    reasons: Mapping[str, str],
    local_preference: Sequence[str],
) -> Choice:
    names = list(dict.fromkeys([CLOUD_EXECUTOR, *local_preference, *estimates, *available]))
    local_names = [name for name in names if name != CLOUD_EXECUTOR]
    candidates = {None: names, "local": local_names, "cloud": [CLOUD_EXECUTOR]}[place]
    choice = _cheapest(subtask, candidates, available, remaining_budget_usd, estimates, reasons)
    if place != "cloud" or choice.executor is not None:
        return choice
    if not fallback_to_local:
        return Choice(None, f"{choice.reason}; fallback to local is off")
    local = _cheapest(subtask, local_names, available, remaining_budget_usd, estimates, reasons)
    if local.executor is None:
        return Choice(None, f"{choice.reason}; {local.reason}")
    if CLOUD_EXECUTOR in available:
        problem = choice.reason
    else:
        problem = f"{CLOUD_EXECUTOR} unavailable{_detail(reasons.get(CLOUD_EXECUTOR))}"
    return Choice(
        local.executor,
        f"the sub-task asks for a cloud executor but {problem}: fell back to "
        f"{local.executor} ({local.reason})",
        fell_back=True,
    )


def _cheapest(
    subtask: Subtask,
    candidates: Sequence[str],
    available: Collection[str],
    remaining_budget_usd: float | None,
    estimates: Mapping[str, ExecutorEstimate],
    reasons: Mapping[str, str],
) -> Choice:
    """The cheapest of ``candidates`` per expected success, or ``None`` with every exclusion."""
    rejected: list[str] = []
    ranked: list[tuple[tuple[int, float, float, int], str, ExecutorEstimate]] = []
    for position, name in enumerate(candidates):
        estimate = estimates.get(name, ExecutorEstimate(None, DEFAULT_SUCCESS_RATE))
        if estimate.success_rate < MIN_SUCCESS_RATE:
            rejected.append(f"{name} succeeds {estimate.success_rate:.0%} of the time")
            continue
        if (
            estimate.expected_usd is not None
            and remaining_budget_usd is not None
            and estimate.expected_usd > remaining_budget_usd
        ):
            rejected.append(
                f"{name} costs about ${estimate.expected_usd:.2f}, over the "
                f"${remaining_budget_usd:.2f} left"
            )
            continue
        unpriced = 1 if estimate.expected_usd is None else 0
        per_success = (estimate.expected_usd or 0.0) / estimate.success_rate
        ranked.append(((unpriced, per_success, -estimate.success_rate, position), name, estimate))
    ranked.sort(key=lambda item: item[0])
    best_overall = ranked[0][1] if ranked else None
    for _, name, estimate in ranked:
        if name not in available:
            continue
        price = (
            f"about ${estimate.expected_usd:.2f} a run"
            if estimate.expected_usd is not None
            else "cost unknown"
        )
        reason = (
            f"cost-optimized: {name} is the cheapest expected to succeed "
            f"({price}, {estimate.success_rate:.0%} success)"
        )
        fell_back = best_overall == CLOUD_EXECUTOR and name != CLOUD_EXECUTOR
        if fell_back:
            reason = (
                f"{CLOUD_EXECUTOR} unavailable{_detail(reasons.get(CLOUD_EXECUTOR))}: fell "
                f"back to {reason}"
            )
        return Choice(name, reason, fell_back=fell_back)
    rejected.extend(
        f"{name} unavailable{_detail(reasons.get(name))}"
        for _, name, _ in ranked
        if name not in available
    )
    detail = "; ".join(rejected) if rejected else "no executor is configured"
    return Choice(None, f"cost-optimized: no executor can run {subtask.key!r}: {detail}")


def _first_local(available: Collection[str], local_preference: Sequence[str]) -> str | None:
    for name in local_preference:
        if name in available:
            return name
    others = sorted(name for name in available if name != CLOUD_EXECUTOR)
    return others[0] if others else None


def _why_not(reasons: Mapping[str, str]) -> str:
    local = {name: why for name, why in reasons.items() if name != CLOUD_EXECUTOR}
    if not local:
        return ""
    return " (" + "; ".join(f"{name}: {why}" for name, why in sorted(local.items())) + ")"


def _detail(reason: str | None) -> str:
    return f" ({reason})" if reason else ""
