"""Budget decisions (sans-I/O): may we dispatch, which threshold was crossed, "continue".

Contract:
- Limits are per task, per issue and per day (USD, ``None`` = no limit), with a warning
  ratio (default 0.75) and a step by which a "continue" raises an issue's limit once.
- :func:`decide_dispatch` is called right before each dispatch (a new run or iteration)
  with the money already spent (from the ledger) and the number of runs still in flight.
  Each run in flight is *committed* at the per-task limit (or an estimate when there is
  none). A dispatch is allowed only while ``spent + committed < limit`` for the issue and
  for the day. With every run held to the per-task limit (Claude Code's
  ``--max-budget-usd``, the :class:`TaskWatchdog` for the others), parallel work can
  therefore end at most one task's limit above the issue or day limit.
  Callers must record a run's ledger entry *before* they stop counting it as in flight.
- Unpriced parts count as nothing spent (they are unknown, not free); the reports name them.
- Warnings are sent once: :func:`newly_crossed` compares the previous spend with the new
  one and names the threshold crossed; remembering what was sent is the caller's job.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from edge_worker.costs.money import Amount, format_usd, to_decimal
from edge_worker.settings import BudgetSettings

Scope = Literal["issue", "day"]

ISSUE_BUDGET_REACHED = "issue budget reached"
DAILY_BUDGET_REACHED = "daily budget reached"

DEFAULT_TASK_ESTIMATE_USD = Decimal("2.00")
"""What a run in flight is assumed to cost when there is no per-task limit."""

ISSUE_WARNING_TEXT = "This issue has spent {spent} of its {limit} budget ({percent} %)."
ISSUE_LIMIT_TEXT = (
    "This issue's budget of {limit} is reached ({spent} spent): no new run or iteration "
    'starts. Reply "continue" to raise it once by {step}.'
)
DAY_WARNING_TEXT = "Today's spend is {spent} of the {limit} daily budget ({percent} %)."
DAY_LIMIT_TEXT = (
    "The daily budget of {limit} is reached ({spent} spent today): nothing new is "
    "dispatched until the day rolls over or EDGE_WORKER_BUDGET__PER_DAY_USD is raised."
)
OVER_TASK_BUDGET_TEXT = "Stopped: this run spent {spent}, over its per-task budget of {limit}."

CONTINUE_WORDS = frozenset({"continue", "approve", "approved"})
_POLITE_WORDS = frozenset({"please", "yes", "ok", "okay", "go", "on", "ahead"})


class Threshold(enum.IntEnum):
    """How far spend has gone towards a limit (ordered)."""

    NONE = 0
    WARNING = 1
    LIMIT = 2


def _optional(value: Amount | None) -> Decimal | None:
    return None if value is None else to_decimal(value)


@dataclass(frozen=True)
class BudgetLimits:
    """The configured limits in USD (``None`` = unlimited)."""

    per_task: Decimal | None = None
    per_issue: Decimal | None = None
    per_day: Decimal | None = None
    warn_ratio: Decimal = Decimal("0.75")
    continue_step: Decimal | None = None

    def __post_init__(self) -> None:
        if not Decimal(0) < self.warn_ratio <= Decimal(1):
            raise ValueError(f"warn_ratio must be in (0, 1], not {self.warn_ratio}")

    @classmethod
    def from_settings(cls, budget: BudgetSettings) -> BudgetLimits:
        """Limits from ``settings.budget``."""
        return cls(
            per_task=_optional(budget.per_task_usd),
            per_issue=_optional(budget.per_issue_usd),
            per_day=_optional(budget.per_day_usd),
            warn_ratio=to_decimal(budget.warn_ratio),
            continue_step=_optional(budget.continue_step_usd),
        )

    def task_commitment(self, estimate: Amount | None = None) -> Decimal:
        """What one run in flight is counted at: the per-task limit, else the estimate."""
        if self.per_task is not None:
            return self.per_task
        return DEFAULT_TASK_ESTIMATE_USD if estimate is None else to_decimal(estimate)


@dataclass(frozen=True)
class IssueBudget:
    """An issue's effective limit, which a "continue" may raise once."""

    limit: Decimal | None
    raised: bool = False

    @classmethod
    def initial(cls, limits: BudgetLimits) -> IssueBudget:
        """The issue's budget before any "continue"."""
        return cls(limit=limits.per_issue)

    def continue_once(self, limits: BudgetLimits) -> IssueBudget:
        """The budget after a "continue": raised once by the step, unchanged afterwards.

        The step is ``limits.continue_step``, or the original per-issue limit when no step
        is configured (a "continue" then doubles the budget).
        """
        if self.raised or self.limit is None:
            return self
        return replace(self, limit=self.limit + continue_step(limits), raised=True)


def continue_step(limits: BudgetLimits) -> Decimal:
    """By how much a "continue" raises an issue's limit."""
    if limits.continue_step is not None:
        return limits.continue_step
    return limits.per_issue if limits.per_issue is not None else Decimal(0)


def is_continue_reply(text: str) -> bool:
    """True when a human's reply asks to go on: "continue", "approve", "yes, please continue"."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    return bool(words & CONTINUE_WORDS) and words <= CONTINUE_WORDS | _POLITE_WORDS


def threshold_of(spent: Amount, limit: Amount | None, warn_ratio: Amount) -> Threshold:
    """The highest threshold ``spent`` has reached against ``limit``."""
    if limit is None:
        return Threshold.NONE
    spent_d, limit_d = to_decimal(spent), to_decimal(limit)
    if spent_d >= limit_d:
        return Threshold.LIMIT
    if spent_d >= limit_d * to_decimal(warn_ratio):
        return Threshold.WARNING
    return Threshold.NONE


def newly_crossed(
    previous: Amount, current: Amount, limit: Amount | None, warn_ratio: Amount
) -> Threshold | None:
    """The threshold ``current`` reaches that ``previous`` had not, or ``None``.

    Going from 70 % to 120 % in one step names :attr:`Threshold.LIMIT` only: the caller
    sends the more serious message, once.
    """
    before = threshold_of(previous, limit, warn_ratio)
    after = threshold_of(current, limit, warn_ratio)
    return after if after > before else None


@dataclass(frozen=True)
class BudgetAlert:
    """A threshold just crossed, with the text to say on Linear and in the log."""

    scope: Scope
    threshold: Threshold
    spent: Decimal
    limit: Decimal
    message: str


def _alert_text(
    scope: Scope, threshold: Threshold, spent: Decimal, limit: Decimal, step: str
) -> str:
    percent = int(spent * 100 / limit) if limit else 100
    if scope == "day":
        template = DAY_LIMIT_TEXT if threshold is Threshold.LIMIT else DAY_WARNING_TEXT
    else:
        template = ISSUE_LIMIT_TEXT if threshold is Threshold.LIMIT else ISSUE_WARNING_TEXT
    return template.format(
        spent=format_usd(spent), limit=format_usd(limit), percent=percent, step=step
    )


def day_alert(limits: BudgetLimits, previous_spent: Amount, spent: Amount) -> BudgetAlert | None:
    """The daily alert to send now that today's spend moved from ``previous_spent``."""
    if limits.per_day is None:
        return None
    crossed = newly_crossed(previous_spent, spent, limits.per_day, limits.warn_ratio)
    if crossed is None:
        return None
    spent_d = to_decimal(spent)
    text = _alert_text("day", crossed, spent_d, limits.per_day, "")
    return BudgetAlert("day", crossed, spent_d, limits.per_day, text)


def issue_alert(
    limits: BudgetLimits, budget: IssueBudget, previous_spent: Amount, spent: Amount
) -> BudgetAlert | None:
    """The issue alert to send now that the issue's spend moved from ``previous_spent``."""
    if budget.limit is None:
        return None
    crossed = newly_crossed(previous_spent, spent, budget.limit, limits.warn_ratio)
    if crossed is None:
        return None
    spent_d = to_decimal(spent)
    text = _alert_text("issue", crossed, spent_d, budget.limit, format_usd(continue_step(limits)))
    return BudgetAlert("issue", crossed, spent_d, budget.limit, text)


@dataclass(frozen=True)
class DispatchDecision:
    """Whether one more run may start, and why not."""

    may_dispatch: bool
    reasons: tuple[str, ...]
    issue_committed: Decimal
    day_committed: Decimal
    issue_threshold: Threshold
    day_threshold: Threshold

    @property
    def reason(self) -> str | None:
        """The main reason not to dispatch (the daily limit first: raising the issue's
        limit would not help), or ``None`` when dispatch may go ahead."""
        return self.reasons[0] if self.reasons else None


def decide_dispatch(
    limits: BudgetLimits,
    *,
    issue_spent: Amount,
    day_spent: Amount,
    issue_running: int = 0,
    day_running: int = 0,
    issue_budget: IssueBudget | None = None,
    task_estimate: Amount | None = None,
) -> DispatchDecision:
    """May one more run (or iteration) of this issue start now?

    ``issue_spent``/``day_spent`` are the priced totals from the ledger; ``issue_running``
    and ``day_running`` count runs in flight whose entries are not yet in the ledger (of
    this issue, and of every issue today). ``issue_budget`` is the issue's effective limit
    after any "continue" (default: the configured one).
    """
    if issue_running < 0 or day_running < issue_running:
        raise ValueError(
            f"running counts must satisfy 0 <= issue_running <= day_running, "
            f"got {issue_running} and {day_running}"
        )
    budget = issue_budget or IssueBudget.initial(limits)
    each = limits.task_commitment(task_estimate)
    issue_committed = to_decimal(issue_spent) + issue_running * each
    day_committed = to_decimal(day_spent) + day_running * each
    reasons: list[str] = []
    if limits.per_day is not None and day_committed >= limits.per_day:
        reasons.append(DAILY_BUDGET_REACHED)
    if budget.limit is not None and issue_committed >= budget.limit:
        reasons.append(ISSUE_BUDGET_REACHED)
    return DispatchDecision(
        may_dispatch=not reasons,
        reasons=tuple(reasons),
        issue_committed=issue_committed,
        day_committed=day_committed,
        issue_threshold=threshold_of(issue_spent, budget.limit, limits.warn_ratio),
        day_threshold=threshold_of(day_spent, limits.per_day, limits.warn_ratio),
    )


SpendReader = Callable[[], Amount | None]
"""Returns a run's spend so far in USD, or ``None`` when it cannot be known."""


@dataclass(frozen=True)
class WatchdogVerdict:
    """One look at a run's spend against its per-task limit."""

    over_budget: bool
    spent: Decimal | None
    limit: Decimal | None

    @property
    def message(self) -> str | None:
        """The text explaining the stop, when the run is over budget."""
        if not self.over_budget or self.spent is None or self.limit is None:
            return None
        return OVER_TASK_BUDGET_TEXT.format(
            spent=format_usd(self.spent), limit=format_usd(self.limit)
        )


class TaskWatchdog:
    """Decides when a run has crossed its per-task limit and must be stopped as over budget.

    For executors that cannot enforce a budget themselves (Codex, Codegen). A run whose spend
    cannot be read (``None``) is never declared over budget: unknown is not over.
    """

    def __init__(self, limit: Amount | None, current_spend: SpendReader) -> None:
        self.limit = _optional(limit)
        self._current_spend = current_spend

    def check(self) -> WatchdogVerdict:
        """Read the run's spend once and decide."""
        raw = self._current_spend()
        spent = None if raw is None else to_decimal(raw)
        over = self.limit is not None and spent is not None and spent >= self.limit
        return WatchdogVerdict(over_budget=over, spent=spent, limit=self.limit)

    async def watch(
        self,
        *,
        interval: float,
        is_done: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> WatchdogVerdict:
        """Check every ``interval`` seconds until the run is over budget or ``is_done()``.

        Returns the last verdict; the caller stops the run when ``over_budget`` is true (or
        cancels this coroutine when the run ends first). ``sleep`` is injectable for tests.
        """
        while True:
            verdict = self.check()
            if verdict.over_budget or is_done():
                return verdict
            await sleep(interval)
