"""The *Costs* page's model (sans-I/O), counted with the functions behind ``edge-worker costs``.

Contract: the day's total, per-issue totals and per-line totals come from
:func:`rows_total`, :func:`issue_totals` and :func:`group_rows` of
:mod:`edge_worker.costs.summary` over the same ledger rows the command reads, so the page
and ``edge-worker costs --day D`` agree to the cent; unpriced parts are named, never $0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from edge_worker.console.svg import Bar, spend_chart
from edge_worker.costs.cli import VERIFICATION_LABEL
from edge_worker.costs.ledger import LedgerRow
from edge_worker.costs.money import Total, plural
from edge_worker.costs.summary import executor_totals, group_rows, issue_totals, rows_total


@dataclass(frozen=True)
class Share:
    """One group's spend."""

    name: str
    total: str
    unpriced: int


@dataclass(frozen=True)
class UnpricedPart:
    """A line of the ledger with parts that have no price."""

    issue: str
    subtask: str
    executor: str
    model: str
    count: str


@dataclass(frozen=True)
class CostsView:
    """The *Costs* page for one day, with the chart of the days before it."""

    day: str
    timezone: str
    total: str
    entries: int
    chart_svg: str
    per_issue: list[Share]
    per_executor: list[Share]
    per_model: list[Share]
    per_team: list[Share]
    unpriced: list[UnpricedPart]


def _team(identifier: str) -> str:
    head, sep, _ = identifier.rpartition("-")
    return head if sep else "-"


def _grouped(rows: Iterable[LedgerRow], key: Callable[[LedgerRow], str]) -> list[Share]:
    totals: dict[str, Total] = {}
    for row in rows:
        name = key(row)
        totals[name] = totals.get(name, Total()) + row.total
    return [Share(name, t.format(), t.unpriced) for name, t in sorted(totals.items())]


def _model(row: LedgerRow) -> str:
    if row.model:
        return row.model
    return VERIFICATION_LABEL if row.kind == "verification" else "-"


def costs_view(
    day: date,
    timezone: str,
    rows: Sequence[LedgerRow],
    days: Sequence[tuple[date, Total]],
    href: Callable[[date], str],
) -> CostsView:
    """The page for ``day`` from its ledger ``rows`` and the per-day totals to chart."""
    total = rows_total(rows)
    bars = [Bar(d.isoformat(), t.micros, t.unpriced, t.format(), href(d)) for d, t in days]
    unpriced = [
        UnpricedPart(
            issue=line.issue_identifier,
            subtask=line.subtask_label,
            executor=line.executor,
            model=line.model or "-",
            count=plural(line.total.unpriced, "run"),
        )
        for line in group_rows(rows)
        if line.total.unpriced
    ]
    return CostsView(
        day=day.isoformat(),
        timezone=timezone,
        total=total.format(),
        entries=len(rows),
        chart_svg=spend_chart(bars),
        per_issue=[
            Share(item.issue_identifier, item.total.format(), item.total.unpriced)
            for item in issue_totals(rows)
        ],
        per_executor=[
            Share(name, t.format(), t.unpriced) for name, t in executor_totals(rows).items()
        ],
        per_model=_grouped(rows, _model),
        per_team=_grouped(rows, lambda r: _team(r.issue_identifier)),
        unpriced=unpriced,
    )
