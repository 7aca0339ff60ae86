"""The cost ledger: one row per planner call, executor run, resume and verification.

Contract:
- Every entry has a deterministic ``entry_id`` chosen by the caller (see
  :func:`cost_entry_id`: workflow id + step + attempt). :meth:`Ledger.record` inserts with
  ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL), so recording the same entry twice,
  e.g. when a durable step is replayed after a crash, leaves exactly one row; it returns
  ``True`` only when the row is new (count metrics only then).
- ``created_at`` is UTC; ``day`` is the date in the configured time zone
  (``settings.budget.timezone``) at ``created_at``, both from an injectable clock.
- Money is stored as integer micro-dollars (``usd_micros``); ``NULL`` means unpriced, which
  every total keeps counting separately (:class:`~edge_worker.costs.money.Total`).
- What ``cost_entries`` has no column for lives in ``cost_entry_details`` (a table of its
  own, so databases made before it need no migration), one row per entry that has any:
  ``uncertain`` (the executor could not confirm the figure; totals count such entries and
  read "(uncertain)"), ``cache_write_input_tokens`` and ``reasoning_output_tokens``.
- Everything is synchronous SQLAlchemy Core: the workflows call it inside DBOS steps.
- The tables are declared in :mod:`edge_worker.storage.cost_entries` (storage imports
  nothing of ``costs``); ``COST_ENTRIES`` and ``COST_ENTRY_DETAILS`` are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from edge_worker.costs.money import Amount, Total, from_micros, to_micros
from edge_worker.executors.base import Usage
from edge_worker.ids import stable_uuid4
from edge_worker.storage.cost_entries import COST_ENTRIES as COST_ENTRIES
from edge_worker.storage.cost_entries import COST_ENTRY_DETAILS as COST_ENTRY_DETAILS
from edge_worker.storage.db import create_engine_for

EntryKind = Literal["planner", "run", "resume", "verification", "review"]
ENTRY_KINDS: tuple[str, ...] = get_args(EntryKind)

Clock = Callable[[], datetime]
"""Returns the current time as a timezone-aware datetime."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def aware_now(clock: Clock) -> datetime:
    """``clock()`` in UTC; ``ValueError`` when the clock returns a naive datetime."""
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the ledger clock must return a timezone-aware datetime")
    return now.astimezone(UTC)


def cost_entry_id(workflow_id: str, step: str, attempt: int) -> str:
    """The deterministic id of the cost entry written by ``step`` of ``workflow_id``."""
    return stable_uuid4("cost-entry", workflow_id, step, str(attempt))


def zone_for(timezone: str) -> ZoneInfo:
    """The :class:`ZoneInfo` named ``timezone``; ``ValueError`` naming it when unknown."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone: {timezone!r}") from None


@dataclass(frozen=True)
class CostEntry:
    """What one planner call, run, resume or verification cost (as the caller observed it).

    ``usd`` is ``None`` when the cost is unknown ("unpriced"), never ``0`` for that.
    """

    entry_id: str
    issue_id: str
    issue_identifier: str
    kind: EntryKind
    executor: str
    attempt: int = 1
    subtask_key: str | None = None
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    usd: Amount | None = None
    uncertain: bool = False

    def __post_init__(self) -> None:
        if not self.entry_id:
            raise ValueError("a cost entry needs an entry_id")
        if self.kind not in ENTRY_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ENTRY_KINDS)}, not {self.kind!r}")
        if self.attempt < 1:
            raise ValueError(f"attempt counts from 1, not {self.attempt}")
        tokens = tuple(self.usage.model_dump().values())
        if min(tokens) < 0:
            raise ValueError(f"token counts cannot be negative: {self.usage!r}")
        if self.usd is not None:
            to_micros(self.usd)  # raises ValueError for a negative or non-finite amount


@dataclass(frozen=True)
class LedgerRow:
    """One recorded entry, as read back."""

    entry_id: str
    created_at: datetime
    day: date
    issue_id: str
    issue_identifier: str
    subtask_key: str | None
    kind: str
    executor: str
    model: str | None
    attempt: int
    usage: Usage
    usd_micros: int | None
    uncertain: bool = False

    @property
    def total(self) -> Total:
        """This entry as a one-part total (unpriced when ``usd_micros`` is ``None``)."""
        uncertain = int(self.uncertain)
        if self.usd_micros is None:
            return Total(unpriced=1, uncertain=uncertain)
        return Total(micros=self.usd_micros, priced=1, uncertain=uncertain)

    @property
    def usd(self) -> float | None:
        """The entry's USD as a number, or ``None`` when unpriced."""
        return None if self.usd_micros is None else float(from_micros(self.usd_micros))


def _insert_ignoring_duplicates(
    dialect: str, values: dict[str, Any], table: sa.Table = COST_ENTRIES
) -> sa.Executable:
    """``INSERT .. ON CONFLICT (entry_id) DO NOTHING RETURNING entry_id`` for ``dialect``.

    A row comes back only when the entry is new (SQLite >= 3.35 and PostgreSQL).
    """
    if dialect == "sqlite":
        return (
            sqlite.insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["entry_id"])
            .returning(table.c.entry_id)
        )
    if dialect == "postgresql":
        return (
            postgresql.insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["entry_id"])
            .returning(table.c.entry_id)
        )
    raise ValueError(f"the cost ledger supports SQLite and PostgreSQL, not {dialect}")


class Ledger:
    """Reads and writes ``cost_entries`` through ``engine`` (tables must exist).

    ``timezone`` decides which day an entry counts for; ``clock`` returns the current
    timezone-aware time (inject a fake one in tests).
    """

    def __init__(self, engine: sa.Engine, timezone: str = "UTC", clock: Clock = utc_now) -> None:
        self._engine = engine
        self._zone = zone_for(timezone)
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, timezone: str = "UTC", clock: Clock = utc_now) -> Ledger:
        """A ledger on a new engine for ``url`` (as ``settings.resolved_database_url``)."""
        return cls(create_engine_for(url), timezone, clock)

    @property
    def timezone(self) -> str:
        """The configured time zone's name."""
        return self._zone.key

    def _now(self) -> datetime:
        return aware_now(self._clock)

    def day_of(self, moment: datetime) -> date:
        """The date of the aware datetime ``moment`` in the configured time zone."""
        return moment.astimezone(self._zone).date()

    def today(self) -> date:
        """Today's date in the configured time zone."""
        return self.day_of(self._now())

    def record(self, entry: CostEntry) -> bool:
        """Write ``entry`` unless its ``entry_id`` is already there; ``True`` if newly written."""
        now = self._now()
        values: dict[str, Any] = {
            "entry_id": entry.entry_id,
            "created_at": now,
            "day": self.day_of(now),
            "issue_id": entry.issue_id,
            "issue_identifier": entry.issue_identifier,
            "subtask_key": entry.subtask_key,
            "kind": entry.kind,
            "executor": entry.executor,
            "model": entry.model,
            "attempt": entry.attempt,
            "input_tokens": entry.usage.input_tokens,
            "cached_input_tokens": entry.usage.cached_input_tokens,
            "output_tokens": entry.usage.output_tokens,
            "usd_micros": None if entry.usd is None else to_micros(entry.usd),
        }
        dialect = self._engine.dialect.name
        statement = _insert_ignoring_duplicates(dialect, values)
        with self._engine.begin() as connection:
            # RETURNING rather than rowcount: psycopg reports -1 for this statement.
            new = connection.execute(statement).first() is not None
            details = {
                "entry_id": entry.entry_id,
                "uncertain": entry.uncertain,
                "cache_write_input_tokens": entry.usage.cache_write_input_tokens,
                "reasoning_output_tokens": entry.usage.reasoning_output_tokens,
            }
            if any(value for name, value in details.items() if name != "entry_id"):
                connection.execute(
                    _insert_ignoring_duplicates(dialect, details, COST_ENTRY_DETAILS)
                )
            return new

    def _total(self, *conditions: sa.ColumnElement[bool]) -> Total:
        usd = COST_ENTRIES.c.usd_micros
        query = (
            sa.select(
                sa.func.coalesce(sa.func.sum(usd), 0),
                sa.func.count(usd),
                sa.func.count(),
                sa.func.count(sa.case((COST_ENTRY_DETAILS.c.uncertain, 1))),
            )
            .select_from(_with_details())
            .where(*conditions)
        )
        with self._engine.connect() as connection:
            micros, priced, parts, uncertain = connection.execute(query).one()
        return Total(
            micros=int(micros),
            priced=int(priced),
            unpriced=int(parts) - int(priced),
            uncertain=int(uncertain),
        )

    def issue_total(self, issue_id: str) -> Total:
        """Everything spent on ``issue_id``: planner, every run, resume and verification."""
        return self._total(COST_ENTRIES.c.issue_id == issue_id)

    def subtask_total(self, issue_id: str, key: str) -> Total:
        """Everything spent on sub-task ``key`` of ``issue_id``, across attempts."""
        return self._total(COST_ENTRIES.c.issue_id == issue_id, COST_ENTRIES.c.subtask_key == key)

    def day_total(self, day: date) -> Total:
        """Everything spent on ``day`` (a date in the configured time zone), all issues."""
        return self._total(COST_ENTRIES.c.day == day)

    def entries(self, day: date | None = None, issue: str | None = None) -> list[LedgerRow]:
        """Entries, oldest first, optionally of one ``day`` and/or one ``issue``.

        ``issue`` matches the issue's id or its identifier (``ENG-12``).
        """
        details = COST_ENTRY_DETAILS.c
        query = (
            sa.select(
                COST_ENTRIES,
                sa.func.coalesce(details.uncertain, False).label("uncertain"),
                sa.func.coalesce(details.cache_write_input_tokens, 0).label("cache_writes"),
                sa.func.coalesce(details.reasoning_output_tokens, 0).label("reasoning"),
            )
            .select_from(_with_details())
            .order_by(COST_ENTRIES.c.created_at, COST_ENTRIES.c.entry_id)
        )
        if day is not None:
            query = query.where(COST_ENTRIES.c.day == day)
        if issue is not None:
            query = query.where(
                sa.or_(COST_ENTRIES.c.issue_id == issue, COST_ENTRIES.c.issue_identifier == issue)
            )
        with self._engine.connect() as connection:
            return [_row(mapping) for mapping in connection.execute(query).mappings()]


def _with_details() -> sa.FromClause:
    """``cost_entries`` with each entry's details (``NULL`` where it has none)."""
    return COST_ENTRIES.outerjoin(
        COST_ENTRY_DETAILS, COST_ENTRY_DETAILS.c.entry_id == COST_ENTRIES.c.entry_id
    )


def _row(mapping: sa.RowMapping) -> LedgerRow:
    created_at: datetime = mapping["created_at"]
    # SQLite hands back naive datetimes; they were written as UTC.
    created_at = (
        created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at.astimezone(UTC)
    )
    return LedgerRow(
        entry_id=mapping["entry_id"],
        created_at=created_at,
        day=mapping["day"],
        issue_id=mapping["issue_id"],
        issue_identifier=mapping["issue_identifier"],
        subtask_key=mapping["subtask_key"],
        kind=mapping["kind"],
        executor=mapping["executor"],
        model=mapping["model"],
        attempt=mapping["attempt"],
        usage=Usage(
            input_tokens=mapping["input_tokens"],
            cached_input_tokens=mapping["cached_input_tokens"],
            output_tokens=mapping["output_tokens"],
            cache_write_input_tokens=int(mapping["cache_writes"]),
            reasoning_output_tokens=int(mapping["reasoning"]),
        ),
        usd_micros=mapping["usd_micros"],
        uncertain=bool(mapping["uncertain"]),
    )
