"""The end-of-day report (sans-I/O): what was finished, spent, slow, expensive or failing.

Contract:
- :func:`build_daily_report` turns one day's facts (:class:`DayFacts`: the issues that
  ended that day, the sub-tasks that ended that day, the day's ledger rows, the daily
  limit) into a :class:`DailyReport` of titled sections of text lines.
- :func:`render_markdown` prints that report as markdown (``edge-worker report --day D``);
  the console's *Daily report* page prints the same sections, so both say the same.
- Money is summed with :mod:`edge_worker.costs.summary` (the numbers of
  ``edge-worker costs --day D``); unpriced parts are named, never counted as $0.
- Recommendations are derived from the data only; each names the numbers behind it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from edge_worker.costs.ledger import LedgerRow
from edge_worker.costs.money import Total, format_usd, plural
from edge_worker.costs.summary import executor_totals, group_rows, rows_total
from edge_worker.status import format_age

TITLE = "Daily report for {day} ({timezone})"
NOTHING = "Nothing ended and nothing was spent on this day."
TOP = 3

REC_VERIFICATION = (
    "{executor} sub-tasks failed {failed} of {ended} times: check its settings or route "
    "such work to another executor."
)
REC_UNPRICED = (
    "{count} cost entries of {executor}/{model} have no price: add a price for that model "
    "so the totals are complete."
)
REC_DAY_BUDGET = "The day used {percent} % of the daily budget of {limit}: consider raising it."
REC_OVER_BUDGET = (
    "{count} issue(s) ended over budget ({names}): raise the per-issue budget or ask for "
    "smaller issues."
)
REC_TIMED_OUT = "{count} issue(s) timed out ({names}): raise the issue timeout or split them."
REC_NONE = "No recommendation: nothing stood out."

FAILURE_MIN_ENDED = 3
FAILURE_RATE = Decimal("0.3")
BUDGET_RATIO = Decimal("0.8")


@dataclass(frozen=True)
class EndedIssue:
    """An issue whose work ended on the day."""

    identifier: str
    state: str
    started_at: datetime
    finished_at: datetime
    spend: Total

    @property
    def seconds(self) -> float:
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class EndedSubtask:
    """A sub-task that ended on the day: its issue, key, executor and final state."""

    identifier: str
    key: str
    executor: str | None
    state: str


@dataclass(frozen=True)
class DayFacts:
    """Everything the report is made from."""

    day: date
    timezone: str
    issues: Sequence[EndedIssue]
    subtasks: Sequence[EndedSubtask]
    ledger: Sequence[LedgerRow]
    daily_limit: Decimal | None = None


@dataclass(frozen=True)
class Section:
    """A titled list of lines."""

    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class DailyReport:
    """The report: a title, a one-line summary, and its sections."""

    title: str
    summary: str
    sections: tuple[Section, ...]
    total: Total


def _counts(facts: DayFacts) -> Counter[str]:
    return Counter(issue.state for issue in facts.issues)


def _summary(facts: DayFacts, total: Total) -> str:
    counts = _counts(facts)
    ended = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(counts.items()))
    issues = plural(len(facts.issues), "issue")
    return f"{issues} ended ({ended or 'none'}); spend {total.format()}."


def _spend_lines(facts: DayFacts, total: Total) -> tuple[str, ...]:
    lines = [f"Total: {total.format()} over {plural(len(facts.ledger), 'entry', 'entries')}"]
    if facts.daily_limit is not None:
        percent = int(total.usd * 100 / facts.daily_limit) if facts.daily_limit else 0
        lines.append(f"Daily budget: {format_usd(facts.daily_limit)} ({percent} % used)")
    lines += [f"{name}: {t.format()}" for name, t in executor_totals(facts.ledger).items()]
    unpriced = [line for line in group_rows(facts.ledger) if line.total.unpriced]
    lines += [
        f"Unpriced (cost unknown, not zero): {line.issue_identifier} {line.subtask_label} "
        f"{line.executor}/{line.model or '-'}, {plural(line.total.unpriced, 'run')}"
        for line in unpriced
    ]
    return tuple(lines)


def _failure_classes(facts: DayFacts) -> tuple[str, ...]:
    issue_states = Counter(i.state for i in facts.issues if i.state != "done")
    task_states = Counter(t.state for t in facts.subtasks if t.state != "passed")
    lines = [f"issues {state.replace('_', ' ')}: {n}" for state, n in sorted(issue_states.items())]
    lines += [
        f"sub-tasks {state.replace('_', ' ')}: {n}" for state, n in sorted(task_states.items())
    ]
    return tuple(lines) or ("none",)


def recommendations(facts: DayFacts, total: Total) -> tuple[str, ...]:
    """What the day's numbers suggest doing, each with the numbers behind it."""
    found: list[str] = []
    by_executor: dict[str, Counter[str]] = {}
    for task in facts.subtasks:
        if task.executor:
            by_executor.setdefault(task.executor, Counter())[task.state] += 1
    for executor, states in sorted(by_executor.items()):
        ended = sum(states.values())
        failed = states.get("failed", 0)
        if ended >= FAILURE_MIN_ENDED and Decimal(failed) / ended >= FAILURE_RATE:
            found.append(REC_VERIFICATION.format(executor=executor, failed=failed, ended=ended))
    for line in group_rows(facts.ledger):
        if line.total.unpriced and line.model:
            found.append(
                REC_UNPRICED.format(
                    count=line.total.unpriced, executor=line.executor, model=line.model
                )
            )
    if facts.daily_limit and total.usd >= facts.daily_limit * BUDGET_RATIO:
        found.append(
            REC_DAY_BUDGET.format(
                percent=int(total.usd * 100 / facts.daily_limit),
                limit=format_usd(facts.daily_limit),
            )
        )
    for state, template in (("over_budget", REC_OVER_BUDGET), ("timed_out", REC_TIMED_OUT)):
        names = [i.identifier for i in facts.issues if i.state == state]
        if names:
            found.append(template.format(count=len(names), names=", ".join(names)))
    return tuple(dict.fromkeys(found)) or (REC_NONE,)


def _words(state: str) -> str:
    return state.replace("_", " ")


def _names(facts: DayFacts, state: str) -> str:
    return ", ".join(i.identifier for i in facts.issues if i.state == state)


def build_daily_report(facts: DayFacts) -> DailyReport:
    """The report of ``facts.day``."""
    total = rows_total(facts.ledger)
    title = TITLE.format(day=facts.day.isoformat(), timezone=facts.timezone)
    if not facts.issues and not facts.ledger and not facts.subtasks:
        return DailyReport(title, NOTHING, (), total)
    counts = _counts(facts)
    ended = tuple(
        f"{state.replace('_', ' ')}: {n} ({_names(facts, state)})"
        for state, n in sorted(counts.items())
    ) or ("none",)
    longest = sorted(facts.issues, key=lambda i: i.seconds, reverse=True)[:TOP]
    dearest = sorted(facts.issues, key=lambda i: (i.spend.micros, i.spend.unpriced), reverse=True)
    sections = (
        Section("Issues ended", ended),
        Section("Spend", _spend_lines(facts, total)),
        Section(
            "Longest work",
            tuple(f"{i.identifier}: {format_age(i.seconds)} ({_words(i.state)})" for i in longest)
            or ("none",),
        ),
        Section(
            "Most expensive work",
            tuple(f"{i.identifier}: {i.spend.format()} ({_words(i.state)})" for i in dearest[:TOP])
            or ("none",),
        ),
        Section("Failure classes", _failure_classes(facts)),
        Section("Recommendations", recommendations(facts, total)),
    )
    return DailyReport(title, _summary(facts, total), sections, total)


def render_markdown(report: DailyReport) -> str:
    """``report`` as markdown: a heading, the summary, one ``##`` section per part."""
    out = [f"# {report.title}", "", report.summary]
    for section in report.sections:
        out += ["", f"## {section.title}", ""]
        out += [f"- {line}" for line in section.lines]
    return "\n".join(out) + "\n"
