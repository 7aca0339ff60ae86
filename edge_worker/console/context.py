"""What every console handler shares: settings, the database, DBOS's tables, the clock,
the tokens, the change feed, and the templates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request

from edge_worker import services
from edge_worker.console import audit, queries
from edge_worker.console.access import Role, Tokens
from edge_worker.console.changes import ChangeFeed, short
from edge_worker.console.dbos_reader import WorkflowReader
from edge_worker.costs.ledger import Clock, Ledger, aware_now, utc_now, zone_for
from edge_worker.linear.limits import RateLimitSnapshot
from edge_worker.settings import Settings

CHOICES_SECONDS = 60.0


@dataclass
class Console:
    """What the pages read from: settings, the database, DBOS's tables, the clock."""

    settings: Settings
    engine: Callable[[], sa.Engine | None]
    tokens: Tokens
    clock: Clock = utc_now
    reader: WorkflowReader = field(init=False)
    feed: ChangeFeed = field(init=False)

    def __post_init__(self) -> None:
        self._probe: Any = None
        self._token_lock = threading.Lock()
        self._audit_ready = False
        self._version: object = None
        self._last_token: str | None = None
        self._choices: tuple[float, tuple[list[str], list[str]]] | None = None
        self.reader = WorkflowReader(self.settings)
        self.feed = ChangeFeed(self._token)
        self.zone = zone_for(self.settings.budget.timezone)

    def db(self) -> sa.Engine:
        engine = self.engine()
        if engine is None:
            raise RuntimeError("the daemon's database is not open yet")
        return engine

    def _token(self) -> str:
        """The change token; on SQLite only recomputed after another connection committed.

        ``PRAGMA data_version`` on a connection of its own changes whenever any other
        connection (any process) commits to the file, and costs next to nothing, so an
        idle console does not scan tables several times a second.
        """
        with self._token_lock:  # the poller and page renders share the probe connection
            return self._read_token()

    def _read_token(self) -> str:
        engine = self.db()
        if engine.dialect.name == "sqlite":
            if self._probe is None:
                self._probe = engine.raw_connection()
            cursor = self._probe.cursor()
            try:
                version = cursor.execute("PRAGMA data_version").fetchone()[0]
            finally:
                cursor.close()
            if version == self._version and self._last_token is not None:
                return self._last_token
            self._version = version
        with engine.connect() as conn:
            self._last_token = queries.change_token(conn)
        return self._last_token

    def linear_snapshot(self) -> RateLimitSnapshot | None:
        """What Linear last said about the daemon's rate limit (``None`` outside a daemon)."""
        try:
            adapters = services.current().extra.get("adapters")
        except RuntimeError:
            return None
        snapshot = getattr(getattr(adapters, "linear", None), "rate_limit", None)
        return snapshot if isinstance(snapshot, RateLimitSnapshot) else None

    def change_id(self) -> str:
        """The current change's id, as the event stream names it (call from a thread)."""
        return short(self._token())

    def history_choices(self, conn: sa.Connection) -> tuple[list[str], list[str]]:
        """The History filters' teams and executors, read at most once a minute."""
        moment = time.monotonic()
        if self._choices is None or moment - self._choices[0] > CHOICES_SECONDS:
            self._choices = (moment, queries.history_choices(conn))
        return self._choices[1]

    def audit(self, *, target: str | None = None, limit: int = 20) -> list[audit.AuditEntry]:
        """The audit log's latest entries (of one issue when ``target`` is given)."""
        engine = self.db()
        if not self._audit_ready:
            audit.ensure_table(engine)
            self._audit_ready = True
        return audit.recent(engine, target=target, limit=limit)

    def ledger(self) -> Ledger:
        return Ledger(self.db(), self.settings.budget.timezone, self.clock)

    def now(self) -> datetime:
        return aware_now(self.clock)

    def today(self) -> date:
        return self.now().astimezone(self.zone).date()

    @property
    def issue_limit(self) -> Decimal | None:
        value = self.settings.budget.per_issue_usd
        return None if value is None else Decimal(str(value))

    @property
    def day_limit(self) -> Decimal | None:
        value = self.settings.budget.per_day_usd
        return None if value is None else Decimal(str(value))


_ENV = Environment(
    loader=PackageLoader("edge_worker.console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, **context: Any) -> str:
    """The template ``name`` rendered with ``context``."""
    return _ENV.get_template(name).render(**context)


def base_path(request: Request) -> str:
    """Where the console is mounted (``/console`` in the daemon)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def role_of(request: Request) -> Role | None:
    """The role the request was let in with (set by the routes' guard)."""
    role: Role | None = getattr(request.state, "role", None)
    return role


def actor_of(request: Request) -> str:
    """Who acts, for the audit log: the role and the client's address (never a secret)."""
    client = request.client.host if request.client else "unknown"
    return f"{role_of(request) or 'anonymous'}@{client}"
