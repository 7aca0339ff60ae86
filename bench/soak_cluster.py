"""The daemons of one soak run and the database they share.

Contract:
- :class:`Cluster` runs one daemon on SQLite (``database_url=None``), or ``len(names)``
  daemons (distinct ``EDGE_WORKER_EXECUTOR_ID``, state directories ``<root>/<name>``) on
  one PostgreSQL database, all wired to the same stand-ins.
- ``crash(i)`` SIGKILLs daemon ``i``, ``terminate(i)`` SIGTERMs it (its drain allowed);
  ``restart(i)`` starts a new process with the same executor id, state directory and port,
  so it recovers its own unfinished workflows; ``revive()`` restarts any daemon that
  exited by itself and says how many did.
- ``pause_database(seconds)`` (PostgreSQL only) refuses new connections and cuts the open
  ones for ``seconds``, then allows them again (through ``admin_url``, a connection to
  another database of the same server).
- ``work_states()`` and ``ledger()`` read the shared store directly (read-only).
- ``url(i)`` is daemon ``i``'s base URL; read it under :attr:`lock` while restarts happen.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from edge_worker.sandbox.daemon import Daemon
from tests.support.pg import set_connections_allowed

LEDGER_SQL = (
    "SELECT issue_id, issue_identifier, subtask_key, kind, executor, model, attempt, "
    "input_tokens, cached_input_tokens, output_tokens, usd_micros FROM cost_entries"
)


@dataclass(frozen=True)
class LedgerLine:
    """One row of the daemon's ``cost_entries``, as read back."""

    issue_id: str
    issue_identifier: str
    subtask_key: str | None
    kind: str
    executor: str
    model: str | None
    attempt: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    usd_micros: int | None


class Cluster:
    """One SQLite daemon, or several daemons sharing a PostgreSQL database."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        *,
        database_url: str | None = None,
        admin_url: str | None = None,
        names: tuple[str, ...] = ("alpha", "beta"),
    ) -> None:
        self.database_url = database_url
        self.admin_url = admin_url or database_url
        self.lock = threading.Lock()
        if database_url is None:
            self.envs = [dict(env)]
            self.daemons = [Daemon(root / "state", **env)]
        else:
            self.envs = [
                {**env, "EDGE_WORKER_DATABASE_URL": database_url, "EDGE_WORKER_EXECUTOR_ID": n}
                for n in names
            ]
            self.daemons = [Daemon(root / n, **e) for n, e in zip(names, self.envs, strict=True)]

    def __len__(self) -> int:
        return len(self.daemons)

    def start(self) -> Cluster:
        for daemon in self.daemons:
            daemon.start()
        return self

    def url(self, index: int) -> str:
        return self.daemons[index].url

    # -- faults ----------------------------------------------------------------------------

    def crash(self, index: int) -> None:
        """SIGKILL daemon ``index`` (no clean-up at all)."""
        self.daemons[index].kill()

    def terminate(self, index: int) -> None:
        """SIGTERM daemon ``index`` and wait for its drain."""
        self.daemons[index].stop(timeout=60)

    def restart(self, index: int) -> None:
        """A new process for daemon ``index``: same state, executor id and port."""
        old = self.daemons[index]
        new = Daemon(old.state_dir, **self.envs[index])
        new.port, new.url = old.port, old.url
        self.daemons[index] = new
        new.start()

    def revive(self) -> int:
        """Restart every daemon that exited on its own; how many there were."""
        exited = [
            i
            for i, d in enumerate(self.daemons)
            if d.proc is not None and d.proc.poll() is not None
        ]
        for index in exited:
            self.restart(index)
        return len(exited)

    def pause_database(self, seconds: float) -> None:
        """PostgreSQL refuses connections (open ones are cut) for ``seconds``."""
        assert self.database_url and self.admin_url, "only a PostgreSQL cluster can pause"
        name = self.database_url.rsplit("/", 1)[1]
        set_connections_allowed(self.admin_url, name, False)
        try:
            time.sleep(seconds)  # the outage itself, not a wait for a condition
        finally:
            set_connections_allowed(self.admin_url, name, True)

    def close(self) -> None:
        """SIGKILL whatever is still running."""
        for daemon in self.daemons:
            proc = daemon.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)

    # -- reading the store -----------------------------------------------------------------

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (no parameters) from the shared store; ``[]`` before its tables
        exist."""
        if self.database_url is not None:
            try:
                with psycopg.connect(self.database_url, connect_timeout=10) as conn:
                    return list(conn.execute(sql.encode()).fetchall())
            except psycopg.errors.UndefinedTable:
                return []
        path = self.daemons[0].sqlite_path
        if not path.exists():
            return []
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
                return list(conn.execute(sql))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def work_states(self) -> dict[str, str]:
        """Every work item's state, by issue id."""
        return {str(i): str(s) for i, s in self.rows("SELECT issue_id, state FROM ew_work_items")}

    def ledger(self) -> list[LedgerLine]:
        """Every cost entry the daemons recorded."""
        return [LedgerLine(*row) for row in self.rows(LEDGER_SQL)]
