"""End-to-end harness: a :class:`SandboxWorld` (stand-ins of Linear, Anthropic, Codegen, a
demo repository and the fake agent CLIs) driven through the real daemon subprocess.

Nothing here reaches into the daemon: tests act on it the way Linear does (signed
webhooks) and observe it the way a user or an operator would (the stand-ins' data and
request logs, the daemon's SQLite database read-only, ``/metrics``).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from edge_worker.executors.process import all_pids, proc_stat, run_marker
from edge_worker.reporting.markers import marker
from edge_worker.sandbox import payloads
from edge_worker.sandbox.daemon import Daemon, wait_for
from edge_worker.sandbox.linear import WebhookDelivery, send_webhook
from edge_worker.sandbox.linear_store import Comment, Issue
from edge_worker.sandbox.world import WEBHOOK_SECRET, SandboxWorld
from edge_worker.storage.work import TERMINAL_STATES

FAST_ENV = {
    "EDGE_WORKER_LINEAR__ACTIVITY_INTERVAL_SECONDS": "0.2",
    "EDGE_WORKER_CODEGEN__POLL_INTERVAL_SECONDS": "0.1",
    "EDGE_WORKER_LOG_LEVEL": "info",
}
END_TIMEOUT = 300.0
WORKFLOWS_SQL = "SELECT workflow_uuid, status, executor_id, queue_name FROM workflow_status"
LAST_STEPS_SQL = (
    "SELECT workflow_uuid, function_id, function_name, completed_at_epoch_ms "
    "FROM operation_outputs ORDER BY started_at_epoch_ms DESC LIMIT 12"
)


class E2E:
    """One world and the daemon working against it (restartable on the same state)."""

    def __init__(self, world: SandboxWorld, state_dir: Path, **env: str) -> None:
        self.world = world
        self.state_dir = state_dir
        self.env = world.daemon_env(**{**FAST_ENV, **env})
        self.daemon = Daemon(state_dir, **self.env)

    # -- the daemon ------------------------------------------------------------------------

    def start(self) -> E2E:
        self.daemon.start()
        return self

    def crash(self) -> None:
        """SIGKILL the daemon (no clean-up at all)."""
        self.daemon.kill()

    def restart(self) -> None:
        """Start a new daemon process on the same state directory, port and stand-ins; one
        still running is stopped first (else it would outlive the test, holding the port)."""
        old = self.daemon
        if old.proc is not None and old.proc.poll() is None:
            old.stop()
        self.daemon = Daemon(self.state_dir, **self.env)
        self.daemon.port, self.daemon.url = old.port, old.url
        self.daemon.start()

    def stop(self) -> None:
        self.daemon.stop()

    def log(self) -> str:
        return self.daemon.log_text()

    # -- acting as Linear ------------------------------------------------------------------

    def send(self, delivery: WebhookDelivery) -> httpx.Response:
        response = send_webhook(self.daemon.url + "/webhooks/linear", WEBHOOK_SECRET, delivery)
        assert response.status_code == 200, response.text
        return response

    def assign(self, issue_id: str, field: str = "assigneeId") -> httpx.Response:
        return self.send(self.world.linear.issue_assigned(issue_id, field=field))

    def unassign(self, issue_id: str) -> httpx.Response:
        """The ``Issue`` update Linear sends when the human takes the issue back."""
        store = self.world.linear.store
        issue = store.find_issue(issue_id)
        issue.assignee_id = store.human.id
        team = store.teams[issue.team_id]
        payload = payloads.issue_unassigned(
            issue.id,
            store.agent.id,
            actor_id=store.human.id,
            identifier=issue.identifier,
            title=issue.title,
            description=issue.description,
            assignee_id=store.human.id,
            team_payload=payloads.team(team.id, team.key, team.name),
        )
        return self.send(WebhookDelivery("Issue", payload))

    # -- observing the daemon --------------------------------------------------------------

    @property
    def dbos_sqlite_path(self) -> Path:
        """Where DBOS keeps its tables: a file of its own beside the daemon's (or, with an
        older layout, the daemon's own file)."""
        own = self.state_dir / "edge-worker-dbos.sqlite"
        return own if own.exists() else self.daemon.sqlite_path

    def query(self, sql: str, *params: Any, dbos: bool = False) -> list[tuple[Any, ...]]:
        """Rows from the daemon's SQLite database (``dbos=True``: DBOS's), read-only
        (``[]`` before it exists)."""
        path = self.dbos_sqlite_path if dbos else self.daemon.sqlite_path
        if not path.exists():
            return []
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
                return list(conn.execute(sql, params))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def work_state(self, issue_id: str) -> str | None:
        rows = self.query("SELECT state FROM ew_work_items WHERE issue_id = ?", issue_id)
        return str(rows[0][0]) if rows else None

    def wait_end(self, issue_id: str, timeout: float = END_TIMEOUT) -> str:
        """The issue's terminal work state, once the daemon reaches one."""
        try:
            state = wait_until(
                lambda: (s := self.work_state(issue_id)) in TERMINAL_STATES and s, timeout
            )
        except AssertionError:
            raise AssertionError(
                f"issue did not end within {timeout}s (state {self.work_state(issue_id)}); "
                f"workflows: {self._dbos_rows(WORKFLOWS_SQL)}\n"
                f"last steps: {self._dbos_rows(LAST_STEPS_SQL)}\n"
                f"daemon log tail:\n{self.log()[-6000:]}"
            ) from None
        return str(state)

    def _dbos_rows(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self.query(sql, dbos=True)
        except sqlite3.Error as exc:
            return [("unreadable", str(exc))]

    def workflows(self, prefix: str = "") -> list[tuple[str, str]]:
        """``(workflow_uuid, status)`` of DBOS workflows whose id starts with ``prefix``."""
        return [
            (str(w), str(s))
            for w, s in self.query(
                "SELECT workflow_uuid, status FROM workflow_status WHERE workflow_uuid LIKE ?",
                prefix + "%",
                dbos=True,
            )
        ]

    def completed_steps(self, function_name: str, workflow_prefix: str = "") -> int:
        """How many steps named ``function_name`` completed (DBOS checkpoints), in workflows
        whose id starts with ``workflow_prefix``."""
        rows = self.query(
            "SELECT COUNT(*) FROM operation_outputs WHERE function_name = ? "
            "AND workflow_uuid LIKE ? AND completed_at_epoch_ms IS NOT NULL",
            function_name,
            workflow_prefix + "%",
            dbos=True,
        )
        return int(rows[0][0]) if rows else 0

    def ledger(self, issue_id: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT entry_id, subtask_key, kind, executor, attempt, usd_micros "
            "FROM cost_entries WHERE issue_id = ? ORDER BY entry_id",
            issue_id,
        )
        keys = ("entry_id", "subtask_key", "kind", "executor", "attempt", "usd_micros")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def subtask_rows(self, issue_id: str) -> dict[str, tuple[str, str | None]]:
        """``{key: (state, executor)}`` from the daemon's sub-task table."""
        rows = self.query(
            "SELECT key, state, executor FROM ew_subtasks WHERE issue_id = ?", issue_id
        )
        return {str(k): (str(s), e) for k, s, e in rows}

    def metrics(self) -> str:
        return httpx.get(self.daemon.url + "/metrics", timeout=10).text

    # -- observing Linear ------------------------------------------------------------------

    def report_comments(self, issue_id: str) -> list[Comment]:
        wanted = marker("report", issue_id)
        return [c for c in self.world.linear.store.comments_on(issue_id) if wanted in c.body]

    def report(self, issue_id: str) -> str:
        """The body of the issue's one report comment (fails when there is not exactly one)."""
        found = self.report_comments(issue_id)
        assert len(found) == 1, f"expected one report comment, found {len(found)}"
        return found[0].body

    def children(self, issue_id: str) -> dict[str, Issue]:
        """The issue's sub-issues by sub-task key (read from their title order)."""
        return {c.title: c for c in self.world.linear.store.children_of(issue_id)}

    def state_name(self, issue: Issue) -> str:
        return self.world.linear.store.states[
            self.world.linear.store.find_issue(issue.id).state_id
        ].name

    def result_comment(self, sub_issue_id: str) -> str:
        wanted = marker("result", sub_issue_id)
        found = [c for c in self.world.linear.store.comments_on(sub_issue_id) if wanted in c.body]
        assert len(found) == 1, f"expected one result comment, found {len(found)}"
        return found[0].body

    def agent_calls(self, issue_identifier: str, key: str) -> list[dict[str, Any]]:
        return self.world.agent_calls(issue_identifier, key)


def wait_until(predicate: Callable[[], Any], timeout: float = 120.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; ``AssertionError`` on timeout
    (:func:`~edge_worker.sandbox.daemon.wait_for` with the end-to-end tests' defaults)."""
    return wait_for(predicate, timeout, interval)


@contextmanager
def running(world: SandboxWorld, state_dir: Path, **env: str) -> Iterator[E2E]:
    """A started :class:`E2E`, stopped (SIGTERM, then SIGKILL) at the end of the block."""
    e2e = E2E(world, state_dir, **env).start()
    try:
        yield e2e
    finally:
        proc = e2e.daemon.proc
        if proc is not None and proc.poll() is None:
            try:
                e2e.stop()
            except Exception:  # a daemon that does not stop in time is killed
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)


def row_of(report: str, identifier: str) -> list[str]:
    """The cells of the report table's row for sub-issue ``identifier``."""
    for line in report.splitlines():
        if line.startswith("| [") and f"[{identifier} " in line:
            return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
    raise AssertionError(f"no row for {identifier} in the report:\n{report}")


def agents_starting_or_running(daemon_pid: int | None, state_dir: Path) -> list[int]:
    """Processes of agent runs the daemon on ``state_dir`` has begun, seen from ``/proc``
    as an operator could: each one carrying the run marker (not a verification's) in a
    working directory under ``state_dir``, and any child of the daemon still between fork
    and exec (it runs the daemon's own command line until it becomes the agent).

    A fake agent records its call only once its interpreter has started, a fraction of a
    second after the spawn; this sees the run from the spawn on.
    """
    daemon_cmdline = _proc_read(daemon_pid, "cmdline") if daemon_pid else None
    root = str(state_dir.resolve())
    found = []
    for pid in all_pids():
        if not alive(pid):
            continue
        tag = run_marker(pid)
        if tag is not None and not tag.startswith("verify:"):
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if cwd == root or cwd.startswith(root + "/"):
                found.append(pid)
        elif (
            daemon_cmdline
            and _parent_of(pid) == daemon_pid
            and _proc_read(pid, "cmdline") == daemon_cmdline
        ):
            found.append(pid)
    return found


def _proc_read(pid: int, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def _parent_of(pid: int) -> int | None:
    stat = proc_stat(pid)
    return None if stat is None else stat.ppid


def alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = proc_stat(pid)
    return stat is not None and stat.alive
