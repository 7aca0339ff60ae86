"""What the console reads from DBOS's system tables (plans, runs, queues) and the one thing
it writes there: a control message to an orchestration (I/O).

Contract: :class:`WorkflowReader` uses DBOS's own client (``DBOSClient``, which runs no
migrations and no workflow code) on the daemon's system database, so it reads the same
tables from inside the daemon, from another daemon sharing the database, or from a test.
Before DBOS has created its tables every read returns nothing rather than failing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from dbos import DBOSClient

from edge_worker.console.records import CheckRecord, PlannedTask, QueueRecord, RunRecord
from edge_worker.runtime import APP_NAME, CLOUD_QUEUE, LOCAL_QUEUE, TRIGGER_QUEUE, dbos_url
from edge_worker.settings import Settings

log = structlog.get_logger(__name__)

PLAN_STEP_SUFFIX = "plan_step"
ACKNOWLEDGE_STEP_SUFFIX = "acknowledge_step"
VERIFY_STEP_SUFFIX = "verify_step"
OUTPUT_TAIL = 1500
RUN_WORKFLOW_SUFFIX = "run_subtask"
QUEUE_LABELS = {
    TRIGGER_QUEUE: "triggers",
    CLOUD_QUEUE: "cloud runs (Codegen)",
    LOCAL_QUEUE: "local runs (Claude Code, Codex)",
}


def queue_limits(settings: Settings) -> dict[str, str]:
    """Each queue's limits as ``runtime.launch`` registers them, in words."""
    local = max(1, settings.global_parallel // 2)
    return {
        TRIGGER_QUEUE: "8 per daemon",
        CLOUD_QUEUE: f"{settings.global_parallel} at once, "
        f"{settings.codegen.creates_per_minute} starts a minute",
        LOCAL_QUEUE: f"{local} per daemon",
    }


def _moment(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)


def plan_from_steps(steps: list[dict[str, Any]]) -> list[PlannedTask]:
    """The plan's sub-tasks from an orchestration's steps: the first plan, then the
    sub-tasks later follow-up rounds added (sans-I/O)."""
    tasks: dict[str, PlannedTask] = {}
    for step in steps:
        if not str(step.get("function_name", "")).endswith(PLAN_STEP_SUFFIX):
            continue
        output = step.get("output")
        if not isinstance(output, dict) or not isinstance(output.get("plan"), dict):
            continue
        for raw in output["plan"].get("subtasks", []):
            key = str(raw.get("key"))
            if key in tasks:
                continue
            tasks[key] = PlannedTask(
                key=key,
                title=str(raw.get("title", key)),
                role=str(raw.get("role", "")),
                executor_hint=str(raw.get("executor", "any")),
                depends_on=tuple(str(d) for d in raw.get("depends_on", [])),
            )
    return list(tasks.values())


def linear_url_from_steps(steps: list[dict[str, Any]]) -> str | None:
    """The issue's Linear URL from the issue the orchestration read when it started (its
    acknowledge step's output), or ``None`` (sans-I/O)."""
    for step in steps:
        if not str(step.get("function_name", "")).endswith(ACKNOWLEDGE_STEP_SUFFIX):
            continue
        output = step.get("output")
        issue = output.get("issue") if isinstance(output, dict) else None
        if isinstance(issue, dict) and isinstance(issue.get("url"), str):
            return str(issue["url"])
    return None


def evidence_from_steps(steps: list[dict[str, Any]]) -> tuple[tuple[CheckRecord, ...], int]:
    """The checks of a run's latest verification and how many verifications it had, from
    the run workflow's steps (sans-I/O)."""
    reports = [
        step["output"]
        for step in steps
        if str(step.get("function_name", "")).endswith(VERIFY_STEP_SUFFIX)
        and isinstance(step.get("output"), dict)
    ]
    if not reports:
        return (), 0
    checks = tuple(
        CheckRecord(
            command=str(check.get("command", "")),
            expect_exit=int(check.get("expect_exit", 0)),
            exit_code=check.get("exit_code"),
            reason=check.get("reason"),
            output_tail=str(check.get("output_tail") or "")[-OUTPUT_TAIL:],
        )
        for check in reports[-1].get("checks", [])
        if isinstance(check, dict)
    )
    return checks, len(reports)


def run_from_status(status: Any, orchestration_id: str) -> RunRecord | None:
    """A :class:`RunRecord` from a DBOS ``WorkflowStatus`` of ``run_subtask`` (sans-I/O)."""
    spec: dict[str, Any] = {}
    inputs = getattr(status, "input", None)
    if inputs and inputs.get("args"):
        first = inputs["args"][0]
        spec = first if isinstance(first, dict) else {}
    rest = str(status.workflow_id).removeprefix(orchestration_id + "-")
    key, _, attempt = rest.rpartition("-")
    output = status.output if isinstance(status.output, dict) else None
    if not key:
        return None
    state = str(output["status"]) if output and output.get("status") else str(status.status)
    return RunRecord(
        workflow_id=str(status.workflow_id),
        key=str(spec.get("key") or key),
        attempt=int(attempt) if attempt.isdigit() else 1,
        executor=str(spec.get("executor") or (output or {}).get("executor") or "?"),
        status=state,
        created_at=_moment(status.created_at),
        updated_at=_moment(status.updated_at),
        outcome=output,
    )


class WorkflowReader:
    """Reads plans, runs and queues from the system database of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: DBOSClient | None = None

    def _dbos(self) -> DBOSClient:
        if self._client is None:
            self._client = DBOSClient(
                system_database_url=dbos_url(self._settings),
                application_name=APP_NAME,
                lazy=True,
            )
        return self._client

    @contextlib.contextmanager
    def _tolerant(self, what: str) -> Iterator[None]:
        # A daemon that has not launched DBOS yet has no tables: nothing to show, not an error.
        try:
            yield
        except Exception as exc:
            log.info("console could not read workflows", what=what, error=type(exc).__name__)

    def plan(self, orchestration_id: str) -> list[PlannedTask]:
        """The plan of the orchestration ``orchestration_id`` (empty before planning)."""
        return self.plan_and_url(orchestration_id)[0]

    def plan_and_url(self, orchestration_id: str) -> tuple[list[PlannedTask], str | None]:
        """The orchestration's plan and the Linear URL of its issue (``None`` before the
        orchestration read the issue), from one read of its steps."""
        steps: list[dict[str, Any]] = []
        with self._tolerant("plan"):
            steps = [dict(s) for s in self._dbos().list_workflow_steps(orchestration_id)]
        return plan_from_steps(steps), linear_url_from_steps(steps)

    def runs(self, orchestration_id: str) -> list[RunRecord]:
        """Every sub-task run the orchestration dispatched, oldest first."""
        found: list[RunRecord] = []
        with self._tolerant("runs"):
            statuses = self._dbos().list_workflows(
                workflow_id_prefix=orchestration_id + "-", sort_desc=False
            )
            for status in statuses:
                if not str(status.name).endswith(RUN_WORKFLOW_SUFFIX):
                    continue
                record = run_from_status(status, orchestration_id)
                if record is not None:
                    steps = [dict(s) for s in self._dbos().list_workflow_steps(record.workflow_id)]
                    checks, count = evidence_from_steps(steps)
                    found.append(dataclasses.replace(record, evidence=checks, verifications=count))
        return found

    def queues(self) -> list[QueueRecord]:
        """Each of the daemon's queues: waiting, running, limits."""
        counts: dict[str, dict[str, int]] = {name: {} for name in QUEUE_LABELS}
        with self._tolerant("queues"):
            for status in self._dbos().list_queued_workflows(load_input=False):
                per = counts.setdefault(str(status.queue_name), {})
                per[str(status.status)] = per.get(str(status.status), 0) + 1
        limits = queue_limits(self._settings)
        return [
            QueueRecord(
                name=name,
                label=QUEUE_LABELS.get(name, name),
                waiting=per.get("ENQUEUED", 0) + per.get("DELAYED", 0),
                running=per.get("PENDING", 0),
                limit=limits.get(name, "-"),
            )
            for name, per in counts.items()
        ]

    def queued_run_ids(self) -> list[str]:
        """The ids of ``run_subtask`` workflows waiting for a queue slot."""
        ids: list[str] = []
        with self._tolerant("queued runs"):
            ids = [
                str(status.workflow_id)
                for status in self._dbos().list_queued_workflows(
                    status="ENQUEUED", load_input=False, queue_name=[CLOUD_QUEUE, LOCAL_QUEUE]
                )
            ]
        return ids

    def send(self, workflow_id: str, message: dict[str, Any], topic: str, key: str) -> None:
        """Send ``message`` to workflow ``workflow_id`` once per ``key`` (DBOS's idempotency
        key: the same key sends nothing twice). Raises when the database cannot take it."""
        self._dbos().send(workflow_id, message, topic, idempotency_key=key)

    def close(self) -> None:
        """Release the client's connections."""
        if self._client is not None:
            self._client.destroy()
            self._client = None
