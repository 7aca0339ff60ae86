"""The MCP tools' I/O: reads of the daemon's database and durable writes to its outbox.

Contract: every write is an outbox row (``ew_webhook_events``) the daemon's dispatcher
turns into a DBOS workflow, exactly like a webhook's; so the stdio server (its own
process, no daemon inside) and the ``/mcp`` endpoint (inside the daemon, which is woken
at once) behave alike, and a daemon restart after the row is committed loses nothing.
A request that cannot be carried out raises :class:`Refused` with the caller-facing
reason before anything is written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edge_worker.console import queries
from edge_worker.console.dbos_reader import WorkflowReader
from edge_worker.console.records import IssueRecord, RunRecord
from edge_worker.executors.base import VerificationCommand
from edge_worker.linear.client import LinearClient
from edge_worker.linear.errors import LinearError, LinearRequestError
from edge_worker.mcp import requests, texts
from edge_worker.mcp.errors import Refused
from edge_worker.mcp.verify import SCRATCH_DIR, TIMEOUT_SECONDS, verify_branch
from edge_worker.settings import Settings
from edge_worker.storage.events import EventRecord, webhook_events
from edge_worker.storage.work import ACTIVE_STATES


class Backend:
    """What the tools act on: the settings, the database, Linear and DBOS's records."""

    def __init__(
        self,
        settings: Settings,
        engine: sa.Engine,
        linear: LinearClient,
        *,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.linear = linear
        self.reader = WorkflowReader(settings)
        self._wake = wake

    def close(self) -> None:
        self.reader.close()

    # -- writes ------------------------------------------------------------------------

    async def create_work(
        self,
        *,
        description: str | None,
        issue: str | None,
        repository: str | None,
        strategy: str | None,
        title: str | None,
        request_id: str | None,
    ) -> dict[str, Any]:
        """Start work on ``issue``, or on a new issue made from ``description``."""
        problem = requests.check_source(description, issue) or requests.check_repository(
            self.settings, repository
        )
        if problem:
            raise Refused(problem)
        request = request_id or uuid.uuid4().hex
        if issue is not None:
            found = await self._linear_issue(issue.strip())
            issue_id, identifier, url = found.id, found.identifier, found.url
            team_id, team_key = found.team.id, found.team.key
        else:
            assert description is not None
            team_id = self.settings.mcp.team_id or ""
            if not team_id:
                raise Refused(texts.NO_TEAM)
            team_key = team_id
            created = await self._create_issue(request, team_id, description, title)
            issue_id, identifier, url = created.id, created.identifier, created.url
        if problem := requests.check_team(self.settings, identifier, team_id, team_key):
            raise Refused(problem)
        record = requests.start_record(
            request_id=request,
            issue_id=issue_id,
            identifier=identifier,
            team_id=team_id,
            repository=repository,
            strategy=strategy,
        )
        outcome = await self._store(record)
        return {
            "issue_id": issue_id,
            "identifier": identifier,
            "url": url,
            "request_id": request,
            "outcome": outcome,
            "message": texts.STARTED.format(identifier=identifier),
        }

    async def send_feedback(
        self, ref: str, text: str, subtask: str | None, request_id: str | None
    ) -> dict[str, Any]:
        """Send a follow-up to the issue's running work (about ``subtask`` if given)."""
        if not text.strip():
            raise Refused(texts.EMPTY_TEXT.format(field="feedback"))
        found = await self._in_flight(ref, "send_feedback")
        record = requests.control_record(
            request_id=request_id or uuid.uuid4().hex,
            kind="follow_up",
            issue_id=found.issue_id,
            identifier=found.identifier,
            text=requests.feedback_text(text.strip(), subtask),
        )
        return {"identifier": found.identifier, "outcome": await self._store(record)}

    async def stop(self, ref: str, request_id: str | None) -> dict[str, Any]:
        """Stop the issue's running work the way Linear's stop signal does."""
        found = await self._in_flight(ref, "stop")
        record = requests.control_record(
            request_id=request_id or uuid.uuid4().hex,
            kind="stop",
            issue_id=found.issue_id,
            identifier=found.identifier,
        )
        return {"identifier": found.identifier, "outcome": await self._store(record)}

    # -- reads -------------------------------------------------------------------------

    async def status(self, ref: str) -> dict[str, Any]:
        """The issue's state, sub-tasks by state, spend; ``queued`` before it is picked up."""
        record = await asyncio.to_thread(self._record, ref)
        if record is None:
            if await asyncio.to_thread(self._queued, ref):
                return {"issue": ref, "state": "queued", "subtasks": {}, "spend": None}
            raise Refused(texts.NO_WORK.format(ref=ref))
        return _status_json(record)

    async def result(self, ref: str) -> dict[str, Any]:
        """The status with each sub-task run's outcome, its evidence and the cost."""
        record = await asyncio.to_thread(self._record, ref)
        if record is None:
            raise Refused(texts.NO_WORK.format(ref=ref))
        runs = await asyncio.to_thread(self.reader.runs, record.workflow_id)
        return {**_status_json(record), "runs": [_run_json(run) for run in runs]}

    async def plan(self, ref: str) -> dict[str, Any]:
        """The issue's plan as the planner wrote it (empty before planning)."""
        record = await asyncio.to_thread(self._record, ref)
        if record is None:
            raise Refused(texts.NO_WORK.format(ref=ref))
        tasks = await asyncio.to_thread(self.reader.plan, record.workflow_id)
        return {"issue": record.identifier, "subtasks": [asdict(task) for task in tasks]}

    async def verify(self, ref: str, subtask: str, commands: list[str] | None) -> dict[str, Any]:
        """Run the sub-task's verification (or ``commands``, when allowed) on its branch."""
        if commands is not None and not self.settings.mcp.allow_commands:
            raise Refused(texts.COMMANDS_NOT_ALLOWED)
        record = await asyncio.to_thread(self._record, ref)
        if record is None:
            raise Refused(texts.NO_WORK.format(ref=ref))
        runs = await asyncio.to_thread(self.reader.runs, record.workflow_id)
        mine = [run for run in runs if run.key == subtask]
        if not mine:
            known = ", ".join(sorted({run.key for run in runs})) or "none yet"
            raise Refused(texts.NO_RUN.format(key=subtask, ref=ref, known=known))
        latest = mine[-1]
        branch = (latest.outcome or {}).get("branch")
        if not branch:
            raise Refused(texts.NO_BRANCH_OF_RUN.format(key=subtask, ref=ref))
        if commands is not None:
            checks = [VerificationCommand(command=command) for command in commands]
        else:
            checks = [
                VerificationCommand(command=e.command, expect_exit=e.expect_exit)
                for e in latest.evidence
            ]
        if not checks:
            raise Refused(texts.NO_COMMANDS.format(key=subtask))
        report = await verify_branch(
            self.settings.repositories,
            str(branch),
            checks,
            scratch_root=self.settings.resolved_state_dir / SCRATCH_DIR,
            timeout_seconds=TIMEOUT_SECONDS,
            pass_env=self.settings.claude.pass_env,
        )
        return {
            "issue": record.identifier,
            "subtask": subtask,
            "branch": branch,
            "passed": all(check.passed for check in report.checks),
            "checks": [
                {**check.model_dump(mode="json"), "passed": check.passed} for check in report.checks
            ],
        }

    # -- helpers -----------------------------------------------------------------------

    async def _linear_issue(self, ref: str) -> Any:
        try:
            return await self.linear.issue(ref)
        except LinearRequestError as exc:
            raise Refused(texts.ISSUE_NOT_FOUND.format(ref=ref)) from exc
        except LinearError as exc:
            raise Refused(texts.LINEAR_FAILED.format(error=type(exc).__name__)) from exc

    async def _create_issue(
        self, request: str, team_id: str, description: str, title: str | None
    ) -> Any:
        try:
            return await self.linear.create_issue(
                id=requests.new_issue_id(request),
                team_id=team_id,
                title=requests.title_of(description, title),
                description=description.strip(),
            )
        except LinearError as exc:
            raise Refused(texts.LINEAR_FAILED.format(error=type(exc).__name__)) from exc

    async def _in_flight(self, ref: str, action: str) -> IssueRecord:
        record = await asyncio.to_thread(self._record, ref)
        if record is None:
            raise Refused(texts.NO_WORK.format(ref=ref))
        if record.state not in ACTIVE_STATES:
            raise Refused(texts.NOT_IN_FLIGHT.format(ref=ref, state=record.state, action=action))
        return record

    def _record(self, ref: str) -> IssueRecord | None:
        with self.engine.connect() as conn:
            return queries.one_issue(conn, ref)

    def _queued(self, ref: str) -> bool:
        query = sa.select(webhook_events.c.seq).where(
            webhook_events.c.decision == "start",
            sa.or_(webhook_events.c.issue_id == ref, webhook_events.c.issue_identifier == ref),
        )
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    async def _store(self, record: EventRecord) -> str:
        try:
            outcome = await asyncio.to_thread(self._insert, record)
        except sa.exc.SQLAlchemyError as exc:
            raise Refused(texts.STORE_FAILED.format(error=type(exc).__name__)) from exc
        if outcome == "accepted" and self._wake is not None:
            self._wake()
        return outcome

    def _insert(self, record: EventRecord) -> str:
        values = dict(zip(_COLUMNS, record.row(datetime.now(UTC)), strict=True))
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(webhook_events).values(**values))
        except sa.exc.IntegrityError:  # the same request again (same delivery/dedupe key)
            return "duplicate"
        return "accepted"


_COLUMNS = (
    "delivery_id",
    "dedupe_key",
    "event_type",
    "action",
    "decision",
    "reason",
    "issue_id",
    "issue_identifier",
    "detail",
    "received_at",
)


def _status_json(record: IssueRecord) -> dict[str, Any]:
    return {
        "issue": record.identifier,
        "issue_id": record.issue_id,
        "state": record.state,
        "in_flight": record.state in ACTIVE_STATES,
        "subtasks_total": record.subtasks_total,
        "subtasks": record.subtask_states,
        "running_on": list(record.running_on),
        "spend": {
            "usd": str(record.spend.usd),
            "text": record.spend.format(),
            "unpriced_parts": record.spend.unpriced,
        },
        "detail": record.detail,
    }


def _run_json(run: RunRecord) -> dict[str, Any]:
    outcome = run.outcome or {}
    return {
        "subtask": run.key,
        "attempt": run.attempt,
        "executor": run.executor,
        "status": run.status,
        "cost": outcome.get("cost"),
        "pr_url": outcome.get("pr_url"),
        "branch": outcome.get("branch"),
        "evidence": [
            {
                "command": check.command,
                "expected_exit": check.expect_exit,
                "exit_code": check.exit_code,
                "passed": check.passed,
                "reason": check.reason,
                "output_tail": check.output_tail,
            }
            for check in run.evidence
        ],
    }
