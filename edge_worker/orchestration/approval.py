"""Plan approval, sans I/O: when a plan needs a human's approval, what the question says,
and what a reply to it means.

- The policy itself (``always``, ``never`` or ``above <USD>``, by repository, team or
  default) is read by :mod:`edge_worker.approval_policy`, which the settings validate with.
- :func:`estimate_plan` prices each sub-task on the executor the strategy would choose
  now: one run at the executor's expected cost up to one run per allowed iteration
  (capped by the per-task limit); an executor without a price shows ``unpriced``.
- :func:`read_reply` turns a reply (a selected option, a typed comment, the console's
  answer: all arrive as the same follow-up text) into :class:`Reply`; anything else is
  refused with a reason the user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal

from edge_worker.costs.money import format_usd
from edge_worker.orchestration.plan import Plan
from edge_worker.orchestration.strategy import ExecutorEstimate, choose_executor
from edge_worker.settings import Strategy

APPROVE, REVISE, CANCEL = "approve", "revise", "cancel"
OPTIONS = (APPROVE, REVISE, CANCEL)

QUESTION = (
    "Approve this plan before any work starts? Estimated cost {low} to {high}.\n\n"
    "{rows}\n\n"
    "Choose `approve`, `revise` (followed by what to change) or `cancel`."
)
QUESTION_ROW = "- {key} ({title}): {executor}, {low} to {high}"
REMINDER = (
    "Reminder: the plan above is waiting for approval; nothing runs until someone with "
    "access chooses `approve`, `revise` or `cancel`."
)
WAITING_NOTE = "Waiting for plan approval: nothing is dispatched until it is answered."
UNKNOWN_OPTION = (
    "`{given}` is not one of the choices; reply `approve`, `revise` followed by what to "
    "change, or `cancel`."
)
REVISE_WITHOUT_TEXT = "What should change in the plan? Reply `revise` followed by the change."
REVISING = "Revising the plan with {author}'s request."
APPROVED_NOTE = "Plan approved by {author}."
CANCELLED_NOTE = "Plan cancelled by {author}: nothing was dispatched."
UNPRICED = "unpriced"


@dataclass(frozen=True)
class Estimate:
    """One sub-task's expected executor and cost range (``None``: unpriced)."""

    key: str
    title: str
    executor: str | None
    low: Decimal | None
    high: Decimal | None


@dataclass(frozen=True)
class PlanEstimate:
    """Every sub-task's estimate and their totals (``None`` when one is unpriced)."""

    rows: tuple[Estimate, ...]

    @property
    def low(self) -> Decimal | None:
        return _sum([r.low for r in self.rows])

    @property
    def high(self) -> Decimal | None:
        return _sum([r.high for r in self.rows])


def _sum(values: list[Decimal | None]) -> Decimal | None:
    if any(v is None for v in values):
        return None
    return sum((v for v in values if v is not None), Decimal(0))


def estimate_plan(
    plan: Plan,
    *,
    strategy: Strategy,
    available: Collection[str],
    estimates: Mapping[str, ExecutorEstimate],
    fallback_to_local: bool,
    max_iterations: int,
    per_task_limit: Decimal | None,
) -> PlanEstimate:
    """Price each sub-task as :func:`choose_executor` would place it now."""
    rows = []
    for subtask in plan.subtasks:
        choice = choose_executor(
            strategy,
            subtask,
            available=available,
            remaining_budget_usd=None,
            estimates=estimates,
            fallback_to_local=fallback_to_local,
        )
        expected = estimates.get(choice.executor or "")
        if expected is None or expected.expected_usd is None:
            low = high = None
        else:
            low = Decimal(str(expected.expected_usd))
            high = low * (max_iterations + 1)
            if per_task_limit is not None:
                high = min(high, per_task_limit)
                low = min(low, high)
        rows.append(Estimate(subtask.key, subtask.title, choice.executor, low, high))
    return PlanEstimate(tuple(rows))


def _usd(value: Decimal | None) -> str:
    return format_usd(value) if value is not None else UNPRICED


def question(estimate: PlanEstimate) -> str:
    """The approval question: the plan's rows with executor and cost range, the total."""
    rows = "\n".join(
        QUESTION_ROW.format(
            key=r.key,
            title=r.title,
            executor=r.executor or "no executor available",
            low=_usd(r.low),
            high=_usd(r.high),
        )
        for r in estimate.rows
    )
    return QUESTION.format(low=_usd(estimate.low), high=_usd(estimate.high), rows=rows)


@dataclass(frozen=True)
class Reply:
    """A reply to the approval question: the choice and, for ``revise``, what to change
    (``refusal``: why the reply is not an answer, to say back)."""

    choice: str | None
    text: str = ""
    refusal: str | None = None


_WORD = re.compile(r"^\W*([A-Za-z]+)\W*(.*)$", re.DOTALL)


def read_reply(text: str) -> Reply:
    """What ``text`` answers: its first word must be one of :data:`OPTIONS` (any case,
    backticks and punctuation around it ignored); what follows ``revise`` is the change."""
    stripped = text.strip()
    match = _WORD.match(stripped)
    word = match.group(1).lower() if match else ""
    if word not in OPTIONS:
        given = (stripped.split() or [""])[0][:40].strip("`")
        return Reply(None, refusal=UNKNOWN_OPTION.format(given=given or stripped[:40]))
    rest = match.group(2).strip() if match else ""
    return Reply(word, rest if word == REVISE else "")
