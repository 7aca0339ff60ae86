"""Grouping ledger rows for people and scripts (sans-I/O).

Contract: :func:`group_rows` folds entries into one :class:`CostLine` per issue, sub-task,
executor and model (first-seen order), summing tokens and money exactly and keeping the
unpriced parts counted; :func:`issue_totals` gives one total per issue,
:func:`executor_totals` one per executor, and :func:`rows_total` the grand total. The
``edge-worker costs`` command and the daily summary line both count with these functions,
so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from edge_worker.costs.ledger import LedgerRow
from edge_worker.costs.money import Total
from edge_worker.executors.base import Usage

PLANNER_LABEL = "(planner)"
NO_SUBTASK_LABEL = "-"


@dataclass
class CostLine:
    """The entries of one issue / sub-task / executor / model, summed."""

    issue_id: str
    issue_identifier: str
    subtask_key: str | None
    executor: str
    model: str | None
    kinds: set[str] = field(default_factory=set)
    attempts: set[int] = field(default_factory=set)
    entries: int = 0
    usage: Usage = field(default_factory=Usage)
    total: Total = field(default_factory=Total)

    @property
    def subtask_label(self) -> str:
        """The sub-task key, ``(planner)`` for planner calls, ``-`` otherwise."""
        if self.subtask_key is not None:
            return self.subtask_key
        return PLANNER_LABEL if self.kinds == {"planner"} else NO_SUBTASK_LABEL


@dataclass
class IssueTotal:
    """Everything listed for one issue."""

    issue_id: str
    issue_identifier: str
    total: Total = field(default_factory=Total)


def group_rows(rows: Iterable[LedgerRow]) -> list[CostLine]:
    """One line per (issue, sub-task, executor, model), in first-seen order."""
    lines: dict[tuple[str, str | None, str, str | None], CostLine] = {}
    for row in rows:
        key = (row.issue_id, row.subtask_key, row.executor, row.model)
        line = lines.get(key)
        if line is None:
            line = lines[key] = CostLine(
                row.issue_id, row.issue_identifier, row.subtask_key, row.executor, row.model
            )
        line.kinds.add(row.kind)
        line.attempts.add(row.attempt)
        line.entries += 1
        line.usage = line.usage + row.usage
        line.total = line.total + row.total
    return list(lines.values())


def issue_totals(rows: Iterable[LedgerRow]) -> list[IssueTotal]:
    """One total per issue, in first-seen order."""
    totals: dict[str, IssueTotal] = {}
    for row in rows:
        item = totals.setdefault(row.issue_id, IssueTotal(row.issue_id, row.issue_identifier))
        item.total = item.total + row.total
    return list(totals.values())


def executor_totals(rows: Iterable[LedgerRow]) -> dict[str, Total]:
    """One total per executor (``claude-code``, ``codex``, ``codegen``, the planner's...),
    keyed by the executor's name in first-seen order."""
    totals: dict[str, Total] = {}
    for row in rows:
        totals[row.executor] = totals.get(row.executor, Total()) + row.total
    return totals


def rows_total(rows: Iterable[LedgerRow]) -> Total:
    """Everything in ``rows``: the exact priced USD plus the count of unpriced parts."""
    return Total.sum(row.total for row in rows)
