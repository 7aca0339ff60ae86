"""The OAuth client-credentials token, kept in the database and shared by every daemon.

Linear keeps one active client-credentials token per app: fetching a new one revokes the
one before. Daemons sharing a database therefore share the token (table
``ew_linear_tokens``, one row per client id, with a ``version`` that grows by one at each
replacement) and take turns to replace it.

Contract (:class:`SharedTokenStore`, the ``TokenStore`` that ``LinearAuth`` uses):
- ``obtain(seen_version, fetch)`` returns the stored token unless it is the one the
  caller saw fail (``seen_version``) or it has expired; then exactly one caller across
  all daemons runs ``fetch`` and stores its result as the next version, while the others
  wait for that version and use it. So N daemons hit by the same 401 (all with version N)
  cause one token request, and a daemon starting beside a running one reads its token.
- Turns are taken with a lease claimed by compare-and-swap on ``(version, lease_until)``
  (no lock is held while Linear answers, and it works alike on SQLite and PostgreSQL). A
  daemon that dies while refreshing leaves a lease that expires after
  ``lease_seconds``; another then takes over.
- A failed ``fetch`` releases the lease and raises to its caller; waiters then try
  themselves.
- The token is a secret: it is stored, never logged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog

from edge_worker.linear.clock import Clock
from edge_worker.storage.db import METADATA

log = structlog.get_logger(__name__)

linear_tokens = sa.Table(
    "ew_linear_tokens",
    METADATA,
    sa.Column("client_id", sa.String(200), primary_key=True),
    sa.Column("token", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class StoredToken:
    """One version of the shared token; ``expires_at`` is epoch seconds (already less
    the safety margin), ``None`` when Linear gave no lifetime."""

    token: str
    version: int
    expires_at: float | None


Fetch = Callable[[], Awaitable[tuple[str, float | None]]]


@dataclass(frozen=True)
class _Row:
    token: str | None
    version: int
    expires_at: float | None
    lease_until: float | None


class SharedTokenStore:
    """The shared token of one OAuth client in one database; see the module contract."""

    def __init__(
        self,
        engine: sa.Engine,
        client_id: str,
        *,
        clock: Clock,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self._engine = engine
        self._client_id = client_id
        self._clock = clock
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._owner = uuid.uuid4().hex

    async def obtain(self, seen_version: int | None, fetch: Fetch) -> StoredToken:
        """A usable token other than version ``seen_version``; see the module contract."""
        while True:
            row = await asyncio.to_thread(self._read)
            now = self._clock.time()
            usable = (
                row is not None
                and row.token
                and row.version != seen_version
                and (row.expires_at is None or now < row.expires_at)
            )
            if usable:
                assert row is not None and row.token is not None
                return StoredToken(row.token, row.version, row.expires_at)
            if await asyncio.to_thread(self._claim, row, now):
                return await self._replace(row.version if row else 0, fetch)
            await self._clock.sleep(self._poll)

    async def _replace(self, claimed_version: int, fetch: Fetch) -> StoredToken:
        try:
            token, expires_at = await fetch()
        except BaseException:
            await asyncio.to_thread(self._release, claimed_version)
            raise
        stored = StoredToken(token, claimed_version + 1, expires_at)
        if not await asyncio.to_thread(self._write, claimed_version, stored):
            # Our lease ran out while Linear answered and another daemon took over; its
            # token is the one in force from here on.
            log.warning("linear.auth.lease_lost", version=claimed_version)
            row = await asyncio.to_thread(self._read)
            if row is not None and row.token:
                return StoredToken(row.token, row.version, row.expires_at)
        log.info("linear.auth.token_shared", version=stored.version)
        return stored

    # -- database (run in a worker thread) ---------------------------------------------------

    def _read(self) -> _Row | None:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(
                    linear_tokens.c.token,
                    linear_tokens.c.version,
                    linear_tokens.c.expires_at,
                    linear_tokens.c.lease_until,
                ).where(linear_tokens.c.client_id == self._client_id)
            ).first()
        return _Row(found[0], int(found[1]), found[2], found[3]) if found else None

    def _claim(self, row: _Row | None, now: float) -> bool:
        """Take the turn to replace version ``row.version`` (compare-and-swap)."""
        until = now + self._lease
        with self._engine.begin() as conn:
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            sa.insert(linear_tokens).values(
                                client_id=self._client_id,
                                token=None,
                                version=0,
                                expires_at=None,
                                lease_owner=self._owner,
                                lease_until=until,
                                updated_at=datetime.now(UTC),
                            )
                        )
                except sa.exc.IntegrityError:
                    return False
                return True
            claimed = conn.execute(
                sa.update(linear_tokens)
                .where(linear_tokens.c.client_id == self._client_id)
                .where(linear_tokens.c.version == row.version)
                .where(
                    sa.or_(linear_tokens.c.lease_until.is_(None), linear_tokens.c.lease_until < now)
                )
                .values(lease_owner=self._owner, lease_until=until)
            )
            return claimed.rowcount == 1

    def _write(self, claimed_version: int, stored: StoredToken) -> bool:
        with self._engine.begin() as conn:
            written = conn.execute(
                sa.update(linear_tokens)
                .where(linear_tokens.c.client_id == self._client_id)
                .where(linear_tokens.c.version == claimed_version)
                .where(linear_tokens.c.lease_owner == self._owner)
                .values(
                    token=stored.token,
                    version=stored.version,
                    expires_at=stored.expires_at,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=datetime.now(UTC),
                )
            )
            return written.rowcount == 1

    def _release(self, claimed_version: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(linear_tokens)
                .where(linear_tokens.c.client_id == self._client_id)
                .where(linear_tokens.c.version == claimed_version)
                .where(linear_tokens.c.lease_owner == self._owner)
                .values(lease_owner=None, lease_until=None)
            )
