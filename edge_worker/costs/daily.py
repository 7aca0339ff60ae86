"""The daily cost summary line (sans-I/O): which day to summarise, and what the line says.

Contract:
- Once a day has ended in the budget time zone (``settings.budget.timezone``, the zone the
  ledger files every entry under), the daemon writes one log line with the event
  :data:`SUMMARY_EVENT` for that day. The I/O around it (a DBOS workflow per day, with the
  id :func:`summary_workflow_id`, and the periodic check) lives in
  :mod:`edge_worker.costs.daily_workflow`; this module decides and formats only.
- :func:`day_to_summarise` is the latest day that ended at least :data:`SETTLE` before
  ``now``: entries are filed under the day of the recording machine's clock, and the margin
  lets a machine whose clock runs a little behind, or a run recorded on the stroke of
  midnight, finish filing the day before it is summed.
- :class:`DayRollover` remembers the last day this process saw summarised, so the periodic
  check asks for each day once and never for an earlier one (a clock stepped back).
- :func:`summarise_day` counts a day's ledger rows with :mod:`edge_worker.costs.summary`,
  the functions behind ``edge-worker costs --day``: the line and the command agree exactly.
  Money stays exact (micro-dollars); unpriced parts are counted, never summed as $0.
- :meth:`DailySummary.log_fields` is the line's fields, JSON-able (USD as exact decimal
  strings, so the JSON log carries no float rounding).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from edge_worker.costs.ledger import LedgerRow, zone_for
from edge_worker.costs.money import Amount, Total, from_micros, to_micros
from edge_worker.costs.summary import executor_totals, issue_totals, rows_total

SUMMARY_EVENT = "daily cost summary"
"""The structlog event of the line."""

WORKFLOW_ID = "daily-cost-summary-{day}"
"""The DBOS workflow id of a day's summary: DBOS runs one id once, across daemons."""

SETTLE = timedelta(minutes=5)
"""How long after midnight (in the budget time zone) a day is summarised at the earliest."""


def summary_workflow_id(day: date) -> str:
    """``daily-cost-summary-<YYYY-MM-DD>``: the workflow id of ``day``'s summary."""
    return WORKFLOW_ID.format(day=day.isoformat())


def day_to_summarise(now: datetime, timezone: str, settle: timedelta = SETTLE) -> date:
    """The latest day in ``timezone`` that ended at least ``settle`` before ``now``.

    ``now`` must be timezone-aware (``ValueError`` otherwise, as for an unknown zone). At
    00:04 local time with the default margin this is still the day before yesterday; from
    00:05 it is yesterday.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the daily summary needs a timezone-aware time")
    if settle < timedelta(0):
        raise ValueError(f"settle cannot be negative: {settle}")
    settled = (now - settle).astimezone(zone_for(timezone))
    return settled.date() - timedelta(days=1)


@dataclass
class DayRollover:
    """Notices, from successive looks at the clock, that a new day is due for its summary.

    :meth:`due` returns the day to summarise when it is later than the last day passed to
    :meth:`done`, else ``None``. A process starts with nothing done, so its first look asks
    for yesterday (the summary workflow's id makes that a no-op when it was written).
    """

    timezone: str
    settle: timedelta = SETTLE
    last_done: date | None = field(default=None)

    def __post_init__(self) -> None:
        zone_for(self.timezone)  # ValueError naming an unknown zone, at once

    def due(self, now: datetime) -> date | None:
        """The day to summarise at ``now``, or ``None`` when it was already done."""
        day = day_to_summarise(now, self.timezone, self.settle)
        if self.last_done is not None and day <= self.last_done:
            return None
        return day

    def done(self, day: date) -> None:
        """Record that ``day``'s summary is written (or will never be: it failed for good)."""
        if self.last_done is None or day > self.last_done:
            self.last_done = day


def _usd(micros: int) -> str:
    """Micro-dollars as an exact decimal string: ``"3.415000"``."""
    return str(from_micros(micros))


def _total_fields(total: Total) -> dict[str, Any]:
    return {"total": total.format(), "usd": _usd(total.micros), "unpriced": total.unpriced}


@dataclass(frozen=True)
class DailySummary:
    """What one day cost, as the ledger has it.

    ``total`` sums every entry of the day; ``executors`` one total per executor (sorted by
    name); ``issues`` counts the issues with at least one entry that day (priced or not);
    ``daily_limit`` is the configured daily limit in USD, ``None`` when there is none.
    """

    day: date
    timezone: str
    total: Total
    entries: int
    issues: int
    executors: tuple[tuple[str, Total], ...]
    daily_limit: Decimal | None = None

    def log_fields(self) -> dict[str, Any]:
        """The line's fields (besides its event), JSON-able.

        ``total`` reads as ``edge-worker costs`` prints it (``"$3.42 + 2 unpriced runs"``);
        ``total_usd`` is the priced part exact to the micro-dollar, ``unpriced`` the number
        of parts with no price; ``executors`` maps each executor to the same three fields;
        ``daily_limit_usd`` is ``None`` when no daily limit is set.
        """
        return {
            "day": self.day.isoformat(),
            "timezone": self.timezone,
            "total": self.total.format(),
            "total_usd": _usd(self.total.micros),
            "unpriced": self.total.unpriced,
            "entries": self.entries,
            "issues": self.issues,
            "executors": {name: _total_fields(total) for name, total in self.executors},
            "daily_limit_usd": (
                None if self.daily_limit is None else _usd(to_micros(self.daily_limit))
            ),
        }


def summarise_day(
    day: date, timezone: str, rows: Iterable[LedgerRow], daily_limit: Amount | None = None
) -> DailySummary:
    """The summary of ``day`` from its ledger rows (``Ledger.entries(day=day)``).

    Raises ``ValueError`` when a row belongs to another day: the caller read the wrong rows.
    """
    listed = list(rows)
    strays = sorted({row.day.isoformat() for row in listed if row.day != day})
    if strays:
        raise ValueError(f"rows of {', '.join(strays)} given for {day.isoformat()}")
    return DailySummary(
        day=day,
        timezone=timezone,
        total=rows_total(listed),
        entries=len(listed),
        issues=len(issue_totals(listed)),
        executors=tuple(sorted(executor_totals(listed).items())),
        daily_limit=None if daily_limit is None else from_micros(to_micros(daily_limit)),
    )
