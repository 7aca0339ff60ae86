"""Budget decisions: dispatch gates with committed money, warnings once, "continue", watchdog."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from edge_worker.costs.budget import (
    DAILY_BUDGET_REACHED,
    DEFAULT_TASK_ESTIMATE_USD,
    ISSUE_BUDGET_REACHED,
    BudgetLimits,
    IssueBudget,
    TaskWatchdog,
    Threshold,
    day_alert,
    decide_dispatch,
    is_continue_reply,
    issue_alert,
    newly_crossed,
    threshold_of,
)
from edge_worker.settings import BudgetSettings

D = Decimal


def limits(**values: str | None) -> BudgetLimits:
    return BudgetLimits(
        **{name: None if value is None else D(value) for name, value in values.items()}  # type: ignore[arg-type]
    )


# --- dispatch gates ----------------------------------------------------------------------


def test_no_limits_never_block() -> None:
    decision = decide_dispatch(BudgetLimits(), issue_spent=1000, day_spent=1000, day_running=50)
    assert decision.may_dispatch and decision.reason is None


def test_issue_budget_blocks_once_spend_reaches_it() -> None:
    budget = limits(per_issue="10")
    assert decide_dispatch(budget, issue_spent="9.99", day_spent="9.99").may_dispatch
    reached = decide_dispatch(budget, issue_spent="10.00", day_spent="10.00")
    assert not reached.may_dispatch
    assert reached.reason == ISSUE_BUDGET_REACHED == "issue budget reached"


def test_daily_budget_blocks_and_is_named_first() -> None:
    budget = limits(per_issue="5", per_day="20")
    decision = decide_dispatch(budget, issue_spent="6", day_spent="25")
    assert decision.reasons == (DAILY_BUDGET_REACHED, ISSUE_BUDGET_REACHED)
    assert decision.reason == "daily budget reached"


def test_runs_in_flight_are_committed_at_the_per_task_limit() -> None:
    budget = limits(per_task="2", per_issue="10", per_day="100")
    allowed = decide_dispatch(
        budget, issue_spent="3", day_spent="3", issue_running=3, day_running=3
    )
    assert allowed.may_dispatch and allowed.issue_committed == D("9")
    blocked = decide_dispatch(
        budget, issue_spent="4", day_spent="4", issue_running=3, day_running=3
    )
    assert not blocked.may_dispatch and blocked.reason == ISSUE_BUDGET_REACHED


def test_without_a_per_task_limit_runs_are_committed_at_an_estimate() -> None:
    budget = limits(per_day="10")
    default = decide_dispatch(budget, issue_spent=0, day_spent="4", issue_running=0, day_running=3)
    assert default.day_committed == D("4") + 3 * DEFAULT_TASK_ESTIMATE_USD
    estimated = decide_dispatch(
        budget, issue_spent=0, day_spent="4", day_running=3, task_estimate=3
    )
    assert estimated.day_committed == D("13") and not estimated.may_dispatch


def test_the_decision_names_the_threshold_reached() -> None:
    budget = limits(per_issue="10", per_day="100")
    decision = decide_dispatch(budget, issue_spent="7.5", day_spent="99")
    assert decision.issue_threshold is Threshold.WARNING
    assert decision.day_threshold is Threshold.WARNING
    assert decide_dispatch(budget, issue_spent="1", day_spent="1").day_threshold is Threshold.NONE


def test_impossible_running_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="issue_running <= day_running"):
        decide_dispatch(BudgetLimits(), issue_spent=0, day_spent=0, issue_running=2, day_running=1)


# --- parallel dispatch cannot overshoot by more than one task ---------------------------


@dataclass
class Simulation:
    """Issues dispatching sub-tasks in parallel; each run costs up to the per-task limit."""

    limits: BudgetLimits
    count_committed: bool = True
    seed: int = 0
    issue_spent: dict[str, Decimal] = field(default_factory=dict)
    running: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def day_spent(self) -> Decimal:
        return sum(self.issue_spent.values(), D(0))

    def run(self, issues: int, tasks_per_issue: int, max_parallel: int) -> None:
        rng = random.Random(self.seed)
        assert self.limits.per_task is not None
        cents = int(self.limits.per_task * 100)
        pending = {f"issue-{n}": tasks_per_issue for n in range(issues)}
        self.issue_spent = dict.fromkeys(pending, D(0))
        while True:
            for issue in pending:
                while pending[issue] and len(self.running) < max_parallel:
                    in_flight = sum(1 for owner, _ in self.running if owner == issue)
                    decision = decide_dispatch(
                        self.limits,
                        issue_spent=self.issue_spent[issue],
                        day_spent=self.day_spent,
                        issue_running=in_flight if self.count_committed else 0,
                        day_running=len(self.running) if self.count_committed else 0,
                    )
                    if not decision.may_dispatch:
                        break
                    pending[issue] -= 1
                    # The watchdog holds each run to its per-task limit: cost <= per_task.
                    self.running.append((issue, D(rng.randint(cents // 2, cents)) / 100))
            if not self.running:
                return
            # The oldest run ends: its ledger entry is recorded, then it stops counting.
            issue, cost = self.running.pop(0)
            self.issue_spent[issue] += cost


@pytest.mark.parametrize("seed", range(20))
def test_parallel_dispatch_overshoots_the_daily_limit_by_at_most_one_task(seed: int) -> None:
    budget = limits(per_task="3", per_day="20")
    simulation = Simulation(budget, seed=seed)
    simulation.run(issues=4, tasks_per_issue=10, max_parallel=8)
    assert simulation.day_spent >= D("20") - D("3")  # the day was used, not starved
    assert simulation.day_spent < D("20") + D("3")


@pytest.mark.parametrize("seed", range(20))
def test_parallel_dispatch_overshoots_the_issue_limit_by_at_most_one_task(seed: int) -> None:
    budget = limits(per_task="2", per_issue="7")
    simulation = Simulation(budget, seed=seed)
    simulation.run(issues=3, tasks_per_issue=12, max_parallel=10)
    for spent in simulation.issue_spent.values():
        assert D("7") - D("2") <= spent < D("7") + D("2")


def test_without_committed_money_parallel_runs_would_overshoot() -> None:
    # The counterfactual that shows the bound above is the committed money's doing.
    budget = limits(per_task="3", per_day="20")
    simulation = Simulation(budget, count_committed=False)
    simulation.run(issues=4, tasks_per_issue=10, max_parallel=8)
    assert simulation.day_spent >= D("20") + D("3")


def test_halt_at_100_percent_with_parallel_runs_in_flight() -> None:
    budget = limits(per_task="2", per_day="10")
    # $6 recorded today and two runs in flight: $10 committed, nothing new starts.
    halted = decide_dispatch(budget, issue_spent="1", day_spent="6", issue_running=1, day_running=2)
    assert not halted.may_dispatch and halted.reason == DAILY_BUDGET_REACHED
    # One run ends having spent $0.50: $8.50 committed, one more may start.
    resumed = decide_dispatch(
        budget, issue_spent="1.5", day_spent="6.5", issue_running=0, day_running=1
    )
    assert resumed.may_dispatch


# --- warnings once ----------------------------------------------------------------------


def test_the_days_warning_is_sent_once_then_the_halt() -> None:
    budget = limits(per_day="10")
    sent: list[Threshold] = []
    previous = D(0)
    for spent in ["2", "5", "7.50", "8", "9.99", "10", "12"]:
        alert = day_alert(budget, previous, spent)
        if alert is not None:
            sent.append(alert.threshold)
        previous = D(spent)
    assert sent == [Threshold.WARNING, Threshold.LIMIT]


def test_day_alert_texts_say_what_happens() -> None:
    budget = limits(per_day="10")
    warning = day_alert(budget, "7", "7.6")
    assert warning is not None and warning.scope == "day"
    assert warning.message == "Today's spend is $7.60 of the $10.00 daily budget (76 %)."
    halt = day_alert(budget, "9", "10.2")
    assert halt is not None and halt.threshold is Threshold.LIMIT
    assert "nothing new is dispatched until the day rolls over" in halt.message
    assert day_alert(BudgetLimits(), 0, 1000) is None


def test_jumping_past_both_thresholds_names_only_the_limit() -> None:
    assert newly_crossed(1, 11, 10, "0.75") is Threshold.LIMIT
    assert newly_crossed(8, 9, 10, "0.75") is None
    assert newly_crossed(12, 13, 10, "0.75") is None
    assert threshold_of("7.49", 10, "0.75") is Threshold.NONE
    assert threshold_of("7.50", 10, "0.75") is Threshold.WARNING
    assert threshold_of(5, None, "0.75") is Threshold.NONE


# --- per-issue exhaustion and "continue" ------------------------------------------------


def test_issue_exhaustion_holds_a_pending_dependent_until_continue() -> None:
    budget = limits(per_task="4", per_issue="5", continue_step="5")
    issue = IssueBudget.initial(budget)
    # Sub-task A runs; B depends on A and waits.
    during_a = decide_dispatch(budget, issue_spent=0, day_spent=0, issue_running=1, day_running=1)
    assert during_a.may_dispatch  # $4 committed < $5: a parallel sibling could still start
    # A ends having spent $5.10: the issue's budget is reached, B must not start.
    blocked = decide_dispatch(budget, issue_spent="5.10", day_spent="5.10", issue_budget=issue)
    assert not blocked.may_dispatch and blocked.reason == ISSUE_BUDGET_REACHED
    alert = issue_alert(budget, issue, "0", "5.10")
    assert alert is not None and alert.threshold is Threshold.LIMIT
    assert 'Reply "continue" to raise it once by $5.00.' in alert.message

    issue = issue.continue_once(budget)
    assert issue == IssueBudget(limit=D("10"), raised=True)
    assert decide_dispatch(
        budget, issue_spent="5.10", day_spent="5.10", issue_budget=issue
    ).may_dispatch
    # A second "continue" does not raise it again.
    assert issue.continue_once(budget) == issue


def test_continue_without_a_step_doubles_the_budget_and_no_limit_stays_none() -> None:
    assert IssueBudget.initial(limits(per_issue="8")).continue_once(
        limits(per_issue="8")
    ).limit == D(16)
    assert IssueBudget.initial(BudgetLimits()).continue_once(BudgetLimits()).limit is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("continue", True),
        ("Continue.", True),
        ("yes, please continue!", True),
        ("approve", True),
        ("approved", True),
        ("don't continue", False),
        ("stop", False),
        ("continue with the parser but not the docs", False),
        ("", False),
    ],
)
def test_continue_replies(reply: str, expected: bool) -> None:
    assert is_continue_reply(reply) is expected


def test_limits_come_from_the_budget_settings() -> None:
    settings = BudgetSettings(
        per_task_usd=2.5, per_issue_usd=10, per_day_usd=50, warn_ratio=0.8, continue_step_usd=5
    )
    assert BudgetLimits.from_settings(settings) == BudgetLimits(
        per_task=D("2.5"),
        per_issue=D("10"),
        per_day=D("50"),
        warn_ratio=D("0.8"),
        continue_step=D("5"),
    )
    assert BudgetLimits.from_settings(BudgetSettings()).per_day is None


# --- the per-task watchdog --------------------------------------------------------------


async def test_watchdog_stops_a_run_that_keeps_spending() -> None:
    spend = {"usd": D(0)}
    ticks: list[float] = []

    async def fake_sleep(seconds: float) -> None:  # the agent spends $0.30 per interval
        ticks.append(seconds)
        spend["usd"] += D("0.30")

    watchdog = TaskWatchdog(limit=1, current_spend=lambda: spend["usd"])
    verdict = await watchdog.watch(interval=5, sleep=fake_sleep)
    assert verdict.over_budget
    assert verdict.spent == D("1.20") and len(ticks) == 4 and ticks[0] == 5
    assert verdict.message == "Stopped: this run spent $1.20, over its per-task budget of $1.00."


async def test_watchdog_leaves_a_run_that_ends_within_budget() -> None:
    spend = {"usd": D(0)}
    checks = {"n": 0}

    async def fake_sleep(_: float) -> None:
        spend["usd"] += D("0.10")
        checks["n"] += 1

    watchdog = TaskWatchdog(limit=1, current_spend=lambda: spend["usd"])
    verdict = await watchdog.watch(interval=1, is_done=lambda: checks["n"] >= 3, sleep=fake_sleep)
    assert not verdict.over_budget and verdict.spent == D("0.30") and verdict.message is None


def test_unknown_spend_or_no_limit_is_never_over_budget() -> None:
    assert not TaskWatchdog(limit=1, current_spend=lambda: None).check().over_budget
    assert not TaskWatchdog(limit=None, current_spend=lambda: 1000).check().over_budget
    assert TaskWatchdog(limit="0.5", current_spend=lambda: 0.5).check().over_budget


SPENDING_AGENT = """
import time
spent = 0.0
while True:  # a fake agent that never finishes and keeps spending
    spent += 0.25
    print(f"cost {spent:.2f}", flush=True)
    time.sleep(0.02)
"""


async def test_watchdog_stops_a_real_agent_process_that_keeps_spending() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SPENDING_AGENT,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    latest = {"usd": D(0)}

    async def read_costs() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            latest["usd"] = D(line.decode().split()[1])

    reader = asyncio.create_task(read_costs())
    watchdog = TaskWatchdog(limit=2, current_spend=lambda: latest["usd"])
    try:
        verdict = await asyncio.wait_for(watchdog.watch(interval=0.01), timeout=30)
        still_running = process.returncode is None
        os.killpg(process.pid, signal.SIGKILL)  # what the executor does on an over-budget verdict
        await process.wait()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        reader.cancel()
    assert still_running, "the agent must still be spending when the watchdog decides"
    assert verdict.over_budget and verdict.spent is not None and verdict.spent >= D(2)
    assert process.returncode == -signal.SIGKILL
