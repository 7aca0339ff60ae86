"""Durable workflows: a trigger becomes verified, reported work on an issue, exactly once.

- ``handle_trigger`` (id ``trigger-<hash of the dedupe key>``): a start claims the issue
  (single flight) and starts its orchestration; a follow-up or stop is sent to the issue's
  running orchestration with ``DBOS.send``.
- ``orchestrate_issue`` (id ``issue-<issue id>-<hash>``): acknowledge, plan, create
  sub-issues, dispatch sub-tasks in dependency order within the parallelism and budget
  limits, react to sub-task results, follow-ups and stop, and report.
- ``run_subtask`` (id ``<orchestration id>-<key>-<n>``): one sub-task on one executor:
  run, verify, feed the evidence back and verify again up to the bound, post the result.
  It tells its orchestration it finished by ``DBOS.send``.

Workflow code is deterministic: everything that reads the clock, the database or the
network happens in a step (``steps.py``), so a recovered workflow replays the recorded
results and continues where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker import services
from edge_worker.alerts import hooks as alerts
from edge_worker.costs.budget import (
    DAILY_BUDGET_REACHED,
    DAY_WARNING_TEXT,
    OVER_TASK_BUDGET_TEXT,
    BudgetLimits,
    IssueBudget,
    Threshold,
    decide_dispatch,
    is_continue_reply,
    threshold_of,
)
from edge_worker.costs.money import Total, format_usd
from edge_worker.delivery.issue_steps import deliver_issue
from edge_worker.delivery.steps import deliver_verified
from edge_worker.executors.base import Evidence, RunStatus, Task, TaskAttachment, TaskLimits
from edge_worker.executors.local_cli import INTERRUPTED_REASON
from edge_worker.ids import stable_key, stable_uuid4
from edge_worker.orchestration import (
    agent_choice,
    approval,
    approval_flow,
    edits,
    recovery_steps,
    review,
    review_steps,
    steps,
    texts,
)
from edge_worker.orchestration.answers import first_activity_id
from edge_worker.orchestration.attachment_steps import fetch_attachments_step
from edge_worker.orchestration.attachments import AttachmentRef
from edge_worker.orchestration.context import Comment as ContextComment
from edge_worker.orchestration.context import PlanningContext
from edge_worker.orchestration.existing import ExistingSubIssue, bindings, reuse_note
from edge_worker.orchestration.follow_ups import REOPENABLE, Named, named_subtasks
from edge_worker.orchestration.guidance import parse_guidance
from edge_worker.orchestration.plan import Plan, Subtask, dependencies_of
from edge_worker.orchestration.progress import (
    Progress,
    TaskRecord,
    blocked,
    overall_state,
    ready,
    report_model,
)
from edge_worker.orchestration.routing import repo_tags, route_repository
from edge_worker.orchestration.strategy import ExecutorEstimate, choose_executor
from edge_worker.queues import CLOUD_QUEUE, LOCAL_QUEUE
from edge_worker.reporting.report import ReportState, verification_summary
from edge_worker.settings import Settings
from edge_worker.storage import stops, work

log = structlog.get_logger(__name__)

CONTROL_TOPIC = "control"
POLL_SECONDS = 30.0
PROGRESS_UPDATE_SECONDS = 60.0
REPOSITORY_WAIT_SECONDS = 24 * 3600.0
BUDGET_WAIT_SECONDS = 24 * 3600.0
LOCAL_EXECUTORS = ("claude-code", "codex", "gemini")
INTERRUPTED_CONTINUES = 2
"""How many times a local run cut short by a restart is continued in the same session."""
ESTIMATES = {
    "codegen": ExecutorEstimate(expected_usd=None, success_rate=0.8),
    "claude-code": ExecutorEstimate(expected_usd=1.0, success_rate=0.8),
    "codex": ExecutorEstimate(expected_usd=0.5, success_rate=0.7),
    "gemini": ExecutorEstimate(expected_usd=0.6, success_rate=0.7),
}
DAY_WARNING_WORKFLOW = "budget-day-warning-{day}"
STATUS_WORDS = {
    "skipped": "was skipped",
    "cancelled": "was stopped",
    "over_budget": "is over its budget",
}
HANDLE_WAIT_SECONDS = 10.0
SESSION_WAIT_SECONDS = 5.0
DELEGATION_WINDOW_SECONDS = 60.0
"""A delegation's notification or ``delegateId`` update arriving this long after its
session's work ended is still part of that work, not a new start."""
"""How long work started by a delegation or inbox notification waits for the agent session
Linear opens for the same delegation, so the session carries it from the first word."""


def estimates_for(settings: Settings) -> dict[str, ExecutorEstimate]:
    """What each executor is expected to cost: Codegen at its configured price per run."""
    codegen = ESTIMATES["codegen"]
    return {
        **ESTIMATES,
        "codegen": ExecutorEstimate(settings.codegen.cost_per_run_usd, codegen.success_rate),
    }


def trigger_workflow_id(dedupe_key: str) -> str:
    """The workflow id for a stored trigger: same key, same workflow."""
    return f"trigger-{stable_key(dedupe_key)}"


def orchestration_workflow_id(issue_id: str, dedupe_key: str) -> str:
    """The workflow id for the orchestration a start trigger begins."""
    return f"issue-{issue_id}-{stable_key(dedupe_key)[:12]}"


# --- triggers ---------------------------------------------------------------------------


@DBOS.step()
async def claim_issue_step(
    issue_id: str, identifier: str | None, workflow_id: str, session_id: str | None
) -> str:
    """Claim the issue for ``workflow_id``; returns the owner after the claim."""

    def claim() -> str:
        with services.current().engine.begin() as conn:
            return work.claim(
                conn,
                issue_id=issue_id,
                identifier=identifier,
                workflow_id=workflow_id,
                session_id=session_id,
            )

    return await asyncio.to_thread(claim)


@DBOS.step()
async def active_workflow_step(issue_id: str) -> str | None:
    """The orchestration working on ``issue_id`` now, if any."""

    def query() -> str | None:
        with services.current().engine.connect() as conn:
            return work.active_workflow(conn, issue_id)

    return await asyncio.to_thread(query)


@DBOS.step()
async def session_of_step(issue_id: str) -> dict[str, Any] | None:
    """The issue's last work: its workflow, its session, whether it is still active."""

    def query() -> dict[str, Any] | None:
        with services.current().engine.connect() as conn:
            found = work.session_of(conn, issue_id)
        if found is None:
            return None
        workflow_id, session_id, active, finished_at = found
        ended = (datetime.now(UTC) - finished_at).total_seconds() if finished_at else None
        return {
            "workflow_id": workflow_id,
            "session_id": session_id,
            "active": active,
            "ended_seconds_ago": ended,
        }

    return await asyncio.to_thread(query)


@DBOS.step()
async def attach_session_step(issue_id: str, session_id: str) -> str | None:
    """Make ``session_id`` the session of the issue's active work if it has none yet;
    returns the session the active work carries (``None``: nothing is active)."""

    def attach() -> str | None:
        with services.current().engine.begin() as conn:
            return work.attach_session(conn, issue_id, session_id)

    return await asyncio.to_thread(attach)


@DBOS.step()
async def record_stop_step(trigger: dict[str, Any]) -> None:
    """Remember a stop before looking for the work it stops (see ``storage.stops``)."""
    seq = trigger.get("seq")
    if seq is None:
        return

    def record() -> None:
        with services.current().engine.begin() as conn:
            stops.record(
                conn,
                issue_id=trigger["issue_id"],
                seq=int(seq),
                dedupe_key=str(trigger["dedupe_key"]),
                session_id=trigger.get("session_id"),
                actor_name=trigger.get("actor_name"),
            )

    await asyncio.to_thread(record)


@DBOS.step()
async def stop_after_step(issue_id: str, seq: int | None) -> dict[str, Any] | None:
    """The stop received after the trigger with outbox ``seq``, if one was recorded."""

    def query() -> stops.Stop | None:
        with services.current().engine.connect() as conn:
            return stops.stop_after(conn, issue_id, seq)

    found = await asyncio.to_thread(query)
    return None if found is None else dataclasses.asdict(found)


async def _stopped_before_start(trigger: dict[str, Any], claimed: str | None) -> bool:
    """True when a stop received after ``trigger`` was recorded: its work must not start.

    With ``claimed`` (the work item this trigger just claimed), the item ends "stopped"
    and the stop's session gets its one final activity, under the id the stop's own
    handler answers with, so whichever of the two says it first is the only one.
    """
    stop = await stop_after_step(trigger["issue_id"], trigger.get("seq"))
    if stop is None:
        return False
    who = stop["actor_name"] or "a user"
    log.info("stopped before it started", stop_seq=stop["seq"])
    if claimed is not None:
        await steps.set_state_step(
            trigger["issue_id"], claimed, "stopped", detail="stopped before it started"
        )
        if stop["session_id"]:
            await steps.say_step(
                trigger["issue_id"],
                stop["session_id"],
                "response",
                texts.STOPPED.format(who=who),
                first_activity_id({"dedupe_key": stop["dedupe_key"]}),
                final=True,
            )
    return True


async def _answer_first(trigger: dict[str, Any], kind: str, body: str) -> None:
    """Post the trigger's first activity unless the dispatcher already did."""
    if trigger.get("session_id") and not trigger.get("acked"):
        await steps.say_step(
            trigger.get("issue_id") or "",
            trigger["session_id"],
            kind,
            body,
            first_activity_id(trigger),
        )


@DBOS.workflow()
async def handle_trigger(trigger: dict[str, Any]) -> str:
    """Turn one stored trigger into work; returns what it did, for the record.

    App mode: a session arriving while the issue's work runs without one becomes that
    work's session (never "already working"); a start that expects a session (delegation,
    inbox notification) finding work that has one is part of the same delegation and
    attaches to it silently. A prompt to a session whose work ended continues that work.
    """
    kind, issue_id = trigger["kind"], trigger["issue_id"]
    session_id = trigger.get("session_id")
    structlog.contextvars.bind_contextvars(issue=trigger.get("issue_identifier") or issue_id)
    if kind == "follow_up":
        await _answer_first(trigger, "thought", texts.PROMPT_ACK)
    if kind == "refuse":
        log.info("session refused", reason=trigger.get("reason"))
        await _answer_first(trigger, "error", texts.refusal(trigger.get("context") or {}))
        return f"refused: {trigger.get('reason')}"
    if kind == "start":
        return await _start(trigger)
    if kind == "stop":  # recorded first: a start that claims after this looks for it
        await record_stop_step(trigger)
    active = await active_workflow_step(issue_id)
    if active is None:
        if kind == "follow_up" and session_id:
            return await _continue_work(trigger)
        return await _nothing_active(trigger)
    if kind == "follow_up" and not session_id:  # a comment: acknowledge in the work's session
        found = await session_of_step(issue_id)
        if found and found["session_id"]:
            await steps.say_step(
                issue_id,
                found["session_id"],
                "thought",
                texts.FOLLOW_UP_ACK,
                first_activity_id(trigger),
            )
    if not await _send_to(active, trigger, issue_id):
        return await _nothing_active(trigger)
    return f"sent {kind} to {active}"


async def _nothing_active(trigger: dict[str, Any]) -> str:
    """No work to send ``trigger`` to: a session's stop still gets its final answer."""
    if trigger["kind"] == "stop" and trigger.get("session_id"):
        await _answer_first(trigger, "response", texts.NOTHING_TO_STOP)
    log.info("no active work for this issue", kind=trigger["kind"])
    return "no active work"


OWNER_WAIT_SECONDS = 60.0
OWNER_POLL_SECONDS = 0.5


async def _send_to(workflow_id: str, message: dict[str, Any], issue_id: str) -> bool:
    """Send a control message to an orchestration, waiting for it to exist: the issue is
    claimed for it a moment before the trigger that claimed it starts it. Returns False,
    sending nothing, when the claim ended without the orchestration ever starting (a stop
    received after its start came first)."""
    waited = 0.0
    while await DBOS.get_workflow_status_async(workflow_id) is None:
        if await active_workflow_step(issue_id) != workflow_id:
            return False
        if waited >= OWNER_WAIT_SECONDS:
            break  # the send below says what is wrong
        await DBOS.sleep_async(OWNER_POLL_SECONDS)
        waited += OWNER_POLL_SECONDS
    await DBOS.send_async(workflow_id, message, topic=CONTROL_TOPIC)
    return True


async def _start(trigger: dict[str, Any]) -> str:
    issue_id, session_id = trigger["issue_id"], trigger.get("session_id")
    context = trigger.get("context") or {}
    if await _stopped_before_start(trigger, None):
        return "stopped before it started"
    await _answer_first(trigger, "thought", texts.ACK_THOUGHT)
    if not session_id and context.get("expects_session"):
        # The same delegation's session started the work, which may even have ended
        # already (refused at once): this trigger is part of it, not new work.
        found = await session_of_step(issue_id)
        if found and found["session_id"]:
            ago = found["ended_seconds_ago"]
            if found["active"] or (ago is not None and ago < DELEGATION_WINDOW_SECONDS):
                log.info("delegation part of its session's work", owner=found["workflow_id"])
                return f"attached: {found['workflow_id']}"
    ours = orchestration_workflow_id(issue_id, trigger["dedupe_key"])
    for _ in range(3):  # the owner may end between the claim and the attach: claim again
        owner = await claim_issue_step(issue_id, trigger.get("issue_identifier"), ours, session_id)
        if owner == ours:
            if await _stopped_before_start(trigger, ours):
                return "stopped before it started"
            with SetWorkflowID(ours):
                await DBOS.start_workflow_async(orchestrate_issue, trigger)
            return f"started: {ours}"
        if not session_id:
            log.info("issue already being worked on", owner=owner)
            return f"attached: {owner}"
        carried = await attach_session_step(issue_id, session_id)
        if carried == session_id:
            log.info("session attached to the work in progress", owner=owner)
            message = {
                "kind": "session",
                "session_id": session_id,
                "context": context,
                "actor_name": trigger.get("actor_name"),
            }
            if not await _send_to(owner, message, issue_id):
                return f"owner never started: {owner}"
            return f"session attached: {owner}"
        if carried is not None:  # a second session while another carries the work
            log.info("issue already carried by another session", owner=owner)
            await steps.say_step(
                issue_id,
                session_id,
                "response",
                texts.OTHER_SESSION,
                stable_uuid4(str(DBOS.workflow_id), "other-session"),
            )
            return f"other session: {owner}"
    return "claim contended"


async def _continue_work(trigger: dict[str, Any]) -> str:
    """A prompt to a session whose work ended: new work that starts from that work's
    history (its plan and results) with the prompt as a follow-up."""
    issue_id = trigger["issue_id"]
    previous = await session_of_step(issue_id)
    ours = orchestration_workflow_id(issue_id, trigger["dedupe_key"])
    owner = await claim_issue_step(
        issue_id, trigger.get("issue_identifier"), ours, trigger.get("session_id")
    )
    if owner != ours:  # something started meanwhile: the prompt steers it
        if not await _send_to(owner, trigger, issue_id):
            return f"owner never started: {owner}"
        return f"sent follow_up to {owner}"
    if await _stopped_before_start(trigger, ours):
        return "stopped before it started"
    continued = {**trigger, "continue_from": previous["workflow_id"] if previous else None}
    with SetWorkflowID(ours):
        await DBOS.start_workflow_async(orchestrate_issue, continued)
    return f"continued: {ours}"


# --- one sub-task -----------------------------------------------------------------------


def _feedback(report: dict[str, Any], result: dict[str, Any]) -> str:
    lines = ["Independent verification of your work failed. Fix it, then stop.", ""]
    if result.get("error"):
        lines.append(f"Your run ended with an error: {result['error']}")
    for check in report["checks"]:
        evidence = Evidence.model_validate(check)
        if evidence.passed:
            continue
        lines.append(
            f"- `{evidence.command}` exited {evidence.exit_code} (expected "
            f"{evidence.expect_exit}){': ' + evidence.reason if evidence.reason else ''}"
        )
        if evidence.output_tail:
            lines.append(
                "  ```\n  " + evidence.output_tail[-1500:].replace("\n", "\n  ") + "\n  ```"
            )
    return "\n".join(lines)


def _cost_json(total: Total) -> dict[str, int]:
    return steps.total_json(total)


class _SubtaskRun:
    """One sub-task on one executor: run, verify, iterate (state rebuilt on replay)."""

    def __init__(self, spec: dict[str, Any], workflow_id: str) -> None:
        self.spec = spec
        self.workflow_id = workflow_id
        self.key: str = spec["key"]
        self.executor: str = spec["executor"]
        self.issue_id: str = spec["issue_id"]
        self.identifier: str = spec["issue_identifier"]
        self.task: dict[str, Any] = dict(spec["task"])
        self.limits = BudgetLimits.from_settings(services.current().settings.budget)
        self.handle: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.report: dict[str, Any] = {"checks": []}
        self.iterations = 0
        self.before = int(spec.get("iterations_before") or 0)
        self.continues = 0
        self.note: str | None = spec.get("note")
        self.review: dict[str, Any] | None = None
        self.recoveries: list[dict[str, Any]] = []
        self.switch_reason: str | None = None
        self.escalated = False

    def cost(self, step: str, attempt: int, kind: str) -> dict[str, Any]:
        return steps.cost_fields(
            self.workflow_id,
            step,
            attempt,
            self.issue_id,
            self.identifier,
            self.key,
            kind,  # type: ignore[arg-type]
        )

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        await steps.track_subtask_step(
            self.issue_id, self.key, self.workflow_id, "running", self.executor
        )
        if spec.get("started_state_id") and spec.get("sub_issue_id"):
            await steps.move_issue_step(spec["sub_issue_id"], spec["started_state_id"])
        started_at = await steps.now_step()
        if spec.get("resume_from"):  # a follow-up reopened this sub-task: same session
            feedback = texts.SUBTASK_FEEDBACK.format(feedback=spec.get("feedback") or "")
            started = {
                "handle": await steps.resume_run_step(
                    self.executor, spec["resume_from"], self.task, feedback
                )
            }
        else:
            started = await steps.start_run_step(self.executor, self.task)
        if "unavailable" in started:
            await steps.track_subtask_step(
                self.issue_id, self.key, self.workflow_id, "unavailable", self.executor
            )
            return {"key": self.key, "status": "unavailable", "reason": started["unavailable"]}
        await self._set_handle(started["handle"])
        web_url = (self.handle.get("extra") or {}).get("web_url")
        if web_url:
            await self._link(texts.RUN_LINK_LABEL.format(name=self._name()), str(web_url))
        self.iterations = 1
        await self._follow("run", "run")
        if self.switch_reason is not None:
            return await self._switch()
        status = await self._judge()
        while (
            status == "failed"
            and self.iterations <= spec["max_iterations"]
            and _resumable(self.result)
            and not self.escalated
        ):
            blocked_by = await self._budget_block()
            if blocked_by is not None:
                status, self.note = "over_budget", _join(self.note, blocked_by)
                break
            self.handle = await steps.resume_run_step(
                self.executor,
                self.handle,
                self.task,
                _feedback(self.report, self.result) + await _issue_edits(),
            )
            await DBOS.set_event_async("handle", self.handle)
            self.iterations += 1
            await self._follow("resume", "resume")
            if self.switch_reason is not None:
                return await self._switch()
            status = await self._judge()
        status = await review_steps.peer_review(self, status)
        finished_at = await steps.now_step()
        return await self._finish(status, finished_at - started_at)

    def _name(self) -> str:
        return str(self.spec.get("sub_issue_identifier") or self.key)

    async def feedback_iteration(self, feedback: str) -> str:
        """One more iteration of the author's session with ``feedback`` (a peer review's
        concerns); returns the status after verifying it again."""
        self.handle = await steps.resume_run_step(self.executor, self.handle, self.task, feedback)
        await DBOS.set_event_async("handle", self.handle)
        self.iterations += 1
        await self._follow("resume", "resume")
        return await self._judge()

    async def budget_block(self) -> str | None:
        """Why no further iteration may start, or ``None`` (see ``_budget_block``)."""
        return await self._budget_block()

    async def _link(self, label: str, url: str) -> None:
        """Add a link to the session (Codegen's run page, a pull request)."""
        if self.spec.get("session_id"):
            await steps.add_session_links_step(
                self.spec["session_id"], [{"label": label, "url": url}]
            )

    async def _set_handle(self, handle: dict[str, Any]) -> None:
        self.handle = handle
        await DBOS.set_event_async("handle", handle)

    async def _follow(self, step: str, kind: str) -> None:
        """Follow the current run; a run the daemon's restart interrupted is continued in
        the same session (not counted as an iteration: nothing was verified yet)."""
        self.result = await steps.follow_run_step(
            self.executor,
            self.handle,
            self.spec.get("session_id"),
            self.cost(step, self.iterations, kind),
        )
        while _interrupted(self.result) and self.continues < INTERRUPTED_CONTINUES:
            self.continues += 1
            log.info("continuing a run interrupted by a restart", attempt=self.continues)
            await self._set_handle(
                await steps.resume_run_step(
                    self.executor, self.handle, self.task, texts.CONTINUE_AFTER_RESTART
                )
            )
            self.result = await steps.follow_run_step(
                self.executor,
                self.handle,
                self.spec.get("session_id"),
                self.cost("continue", self.continues, "resume"),
            )
        session = self.result.get("session_id")
        if session and session != self.handle.get("session_id"):
            # The handle outlives the worktree (and the transcript in it): keep the session
            # on it, so feedback after the sub-task ended can still resume that session.
            await self._set_handle({**self.handle, "session_id": session})
        await recovery_steps.recover(self)

    async def _switch(self) -> dict[str, Any]:
        """A recovery moved the sub-task to another executor: report this one unavailable."""
        await steps.release_run_step(self.executor, self.handle, False)
        await steps.track_subtask_step(
            self.issue_id, self.key, self.workflow_id, "unavailable", self.executor
        )
        return {"key": self.key, "status": "unavailable", "reason": self.switch_reason}

    async def _judge(self) -> str:
        """The sub-task's status after the current run: over its budget, or verified."""
        over = await self._over_task_budget()
        if over is not None:
            self.note = _join(self.note, over)
            return "over_budget"
        self.report = await steps.verify_step(
            self.executor,
            self.handle,
            self.task["verification"],
            self.cost("verify", self.iterations, "verification"),
        )
        return _status(self.result, self.report)

    async def _over_task_budget(self) -> str | None:
        """Why the sub-task is over its per-task limit (every attempt counted), if it is.

        Claude Code stops itself at ``--max-budget-usd``; Codex and Codegen cannot, so
        their spend is checked after each run and a run over the limit is not resumed.
        """
        if self.limits.per_task is None:
            return None
        spent = Total(**await steps.subtask_total_step(self.issue_id, self.key))
        if spent.usd < self.limits.per_task:
            return None
        return OVER_TASK_BUDGET_TEXT.format(
            spent=format_usd(spent.usd), limit=format_usd(self.limits.per_task)
        )

    async def _budget_block(self) -> str | None:
        """Why no further iteration may start (per task, issue or day), or ``None``.

        When one may, Claude Code's ``--max-budget-usd`` becomes what is left of the
        sub-task's limit, so every attempt together stays within it.
        """
        spent = Total(**await steps.subtask_total_step(self.issue_id, self.key))
        if self.limits.per_task is not None:
            if spent.usd >= self.limits.per_task:
                return OVER_TASK_BUDGET_TEXT.format(
                    spent=format_usd(spent.usd), limit=format_usd(self.limits.per_task)
                )
            limits = dict(self.task.get("limits") or {})
            limits["max_usd"] = float(self.limits.per_task - spent.usd)
            self.task["limits"] = limits
        money = await steps.money_step(self.issue_id)
        issue_limit = self.spec.get("issue_limit")
        decision = decide_dispatch(
            self.limits,
            issue_spent=Total(**money["issue"]).usd,
            day_spent=Total(**money["day"]).usd,
            issue_budget=IssueBudget(limit=Decimal(issue_limit) if issue_limit else None),
        )
        if decision.may_dispatch:
            return None
        return texts.ITERATION_BLOCKED.format(reason=decision.reason)

    async def _finish(self, status: str, duration: float) -> dict[str, Any]:
        spec, result = self.spec, self.result
        spent = Total(**await steps.subtask_total_step(self.issue_id, self.key))
        checks = self.report["checks"]
        if status == "passed":  # delivery: verified work becomes a linked pull request
            branch = result.get("branch") or self.handle.get("branch")
            iterations, cost = self.before + self.iterations, format_usd(spent.usd)
            reviewed = review.pull_request_section({"review": self.review})
            result = await deliver_verified(
                spec, branch, result, checks, iterations, cost, review=reviewed
            )
            self.note = _join(self.note, result.get("delivery_note"))
            if result.get("delivered") and spec.get("review_state_id"):
                spec = {**spec, "done_state_id": spec["review_state_id"]}  # done once merged
        evidence = [Evidence.model_validate(c) for c in checks]
        outcome = {
            "key": self.key,
            "status": status,
            "executor": self.executor,
            "iterations": self.before + self.iterations,
            "cost": _cost_json(spent),
            "duration_seconds": duration,
            "pr_url": (result.get("pr_urls") or [None])[0],
            "branch": result.get("branch") or self.handle.get("branch"),
            "verification": verification_summary(evidence),
            "checks": [{"command": c["command"], "exit_code": c.get("exit_code")} for c in checks],
            "summary": result.get("summary") or result.get("error") or "",
            "note": _join(self.note, review.report_cell(self.review) or None),
            "review": self.review,
            "recoveries": self.recoveries,
        }
        if spec.get("sub_issue_id"):
            await steps.finish_subissue_step(
                spec["sub_issue_id"],
                {
                    "status": status,
                    "summary": outcome["summary"],
                    "cost": outcome["cost"],
                    "iterations": outcome["iterations"],
                    "checks": checks,
                    "pr_urls": result.get("pr_urls") or [],
                    "branch": outcome["branch"],
                    "executor": self.executor,
                    "duration_seconds": duration,
                    "note": self.note,
                    **({"review": review.review_markdown(self.review)} if self.review else {}),
                },
                _end_state(spec, status),
            )
        for url in result.get("pr_urls") or []:
            await self._link(texts.PR_LINK_LABEL.format(name=self._name()), str(url))
        if status == "failed":
            await alerts.subtask_escalated(self._name(), self.workflow_id, self.note)
        await steps.release_run_step(self.executor, self.handle, status == "passed")
        await steps.track_subtask_step(
            self.issue_id, self.key, self.workflow_id, status, self.executor
        )
        return outcome


async def _subtask_error(spec: dict[str, Any], workflow_id: str, exc: Exception) -> dict[str, Any]:
    """The outcome of a sub-task whose run could not go on (an error no step recovered)."""
    key, issue_id = spec["key"], spec["issue_id"]
    summary = texts.SUBTASK_ERROR
    spent = Total()
    with contextlib.suppress(Exception):
        spent = Total(**await steps.subtask_total_step(issue_id, key))
    outcome = {
        "key": key,
        "status": "failed",
        "executor": spec["executor"],
        "iterations": int(spec.get("iterations_before") or 0),
        "cost": _cost_json(spent),
        "duration_seconds": None,
        "pr_url": None,
        "branch": None,
        "verification": verification_summary([]),
        "summary": summary,
        "note": _join(spec.get("note"), summary),
    }
    if spec.get("sub_issue_id"):
        with contextlib.suppress(Exception):
            await steps.finish_subissue_step(
                spec["sub_issue_id"],
                {
                    "status": "failed",
                    "summary": summary,
                    "cost": outcome["cost"],
                    "iterations": 0,
                    "checks": [],
                    "executor": spec["executor"],
                    "note": spec.get("note"),
                },
                spec.get("reset_state_id"),
            )
    with contextlib.suppress(Exception):
        await steps.track_subtask_step(issue_id, key, workflow_id, "failed", spec["executor"])
    return outcome


@DBOS.workflow()
async def run_subtask(spec: dict[str, Any]) -> dict[str, Any]:
    """Run, verify and iterate one sub-task; returns its outcome (also sent to the parent).

    Whatever happens, the parent hears the outcome: an error that ends the sub-task is a
    ``failed`` outcome saying what went wrong, never silence. (A cancelled workflow raises
    DBOS's cancellation, a ``BaseException``, and says nothing: its parent cancelled it.)
    """
    workflow_id = str(DBOS.workflow_id)
    structlog.contextvars.bind_contextvars(issue=spec["issue_identifier"], subtask=spec["key"])
    try:
        outcome = await _SubtaskRun(spec, workflow_id).run()
    except Exception as exc:
        log.error("sub-task ended with an error", error=repr(exc))
        outcome = await _subtask_error(spec, workflow_id, exc)
    await DBOS.send_async(spec["parent"], {"type": "subtask_done", **outcome}, CONTROL_TOPIC)
    return outcome


async def _issue_edits() -> str:
    """Edits of the issue sent to this sub-task since its last run, as feedback text."""
    found = []
    while (message := await DBOS.recv_async(edits.EDIT_TOPIC, timeout_seconds=0)) is not None:
        found.append(str(message.get("text") or ""))
    return "".join(f"\n\n{text}" for text in found if text)


def _end_state(spec: dict[str, Any], status: str) -> str | None:
    """Where a sub-issue goes when its sub-task ends: done when it passed; back to the
    unstarted (or configured) state when it failed or could not go on, so boards do not
    show it moving; left alone when the work was stopped."""
    if status == "passed":
        return spec.get("done_state_id")
    if status in ("failed", "timed_out", "over_budget"):
        return spec.get("reset_state_id")
    return None


def _join(first: str | None, second: str | None) -> str | None:
    parts = [p for p in (first, second) if p]
    return "; ".join(parts) if parts else None


def _status(result: dict[str, Any], report: dict[str, Any]) -> str:
    run = RunStatus(result["status"])
    if run is RunStatus.OVER_BUDGET:
        return "over_budget"
    if run is RunStatus.TIMED_OUT:
        return "timed_out"
    if run is RunStatus.CANCELLED:
        return "cancelled"
    checks = report["checks"]
    if not checks:  # only a non-code task: plan validation gives every code task its checks
        return "passed" if run is RunStatus.SUCCEEDED else "failed"
    if all(Evidence.model_validate(c).passed for c in checks):
        return "passed"
    return "failed"


def _resumable(result: dict[str, Any]) -> bool:
    return RunStatus(result["status"]) in (RunStatus.SUCCEEDED, RunStatus.FAILED)


def _interrupted(result: dict[str, Any]) -> bool:
    """A local run cut short by the daemon's own restart: its session goes on, or (when it
    died before announcing one) a new session starts in the same worktree."""
    return result.get("error") == INTERRUPTED_REASON


# --- one issue --------------------------------------------------------------------------


class _Orchestration:
    """The state an orchestration carries between its steps (rebuilt on replay)."""

    def __init__(self, trigger: dict[str, Any], workflow_id: str) -> None:
        self.trigger = trigger
        self.workflow_id = workflow_id
        self.issue_id: str = trigger["issue_id"]
        self.identifier: str = trigger.get("issue_identifier") or self.issue_id
        self.session_id: str | None = trigger.get("session_id")
        self.settings = services.current().settings
        self.limits = BudgetLimits.from_settings(self.settings.budget)
        self.budget = IssueBudget.initial(self.limits)
        self.progress: Progress | None = None
        self.notes: list[str] = []
        self.follow_ups: list[ContextComment] = []
        self.unavailable: dict[str, str] = {}
        self.dispatches: dict[str, int] = {}
        self.stopped_by: str | None = None
        self.last_progress_update = 0.0
        self.snapshot: dict[str, Any] = {}
        self.planning_cost: Total | None = None
        self.said = 0
        self.day_warned: set[str] = set()
        self.report_linked = False

    def note(self, text: str) -> None:
        """Add a note to the report (once: a repeated message is not repeated)."""
        if text not in self.notes:
            self.notes.append(text)

    # ids for things the orchestration says, stable across replays
    def say_id(self) -> str:
        self.said += 1
        return stable_uuid4(self.workflow_id, "say", str(self.said))

    @property
    def team_id(self) -> str:
        return str(self.snapshot["issue"]["team"]["id"])

    def state_id(self, *, type_: str | None = None, name: str | None = None) -> str | None:
        for state in sorted(self.snapshot.get("states", []), key=lambda s: s["position"]):
            if (type_ and state["type"] == type_) or (name and state["name"] == name):
                return str(state["id"])
        return None

    async def report(self, state: ReportState) -> None:
        money = await steps.money_step(self.issue_id)
        model = report_model(
            self.progress,
            issue_id=self.issue_id,
            issue_identifier=self.identifier,
            state=state,
            total=Total(**money["issue"]),
            today=Total(**money["day"]),
            daily_limit=self.limits.per_day,
            planning_cost=self.planning_cost,
            notes=self.notes,
            stopped_by=self.stopped_by,
        )
        data = {
            "issue_id": model.issue_id,
            "issue_identifier": model.issue_identifier,
            "state": model.state,
            "rows": [{**row.__dict__, "cost": steps.total_json(row.cost)} for row in model.rows],
            "total": steps.total_json(model.total),
            "today_spend": steps.total_json(model.today_spend),
            "daily_limit": str(model.daily_limit) if model.daily_limit is not None else None,
            "stopped_by": model.stopped_by,
            "notes": list(model.notes),
            "planning_cost": steps.total_json(model.planning_cost)
            if model.planning_cost is not None
            else None,
        }
        await steps.post_report_step(data)

    async def say(
        self, kind: str, body: str, *, options: list[str] | None = None, final: bool = False
    ) -> None:
        """Say something in the session (a comment in user mode); ``options`` make an
        elicitation a ``select``; ``final`` drops progress not yet sent (after a stop)."""
        await steps.say_step(
            self.issue_id,
            self.session_id,
            kind,
            body,
            self.say_id(),
            options=options,
            final=final,
        )

    async def link_report(self) -> None:
        """Show the report comment among the session's links (once)."""
        if self.session_id and self.snapshot and not self.report_linked:
            self.report_linked = True
            url = report_url(self.snapshot["issue"]["url"], self.issue_id)
            await steps.add_session_links_step(
                self.session_id, [{"label": texts.REPORT_LINK_LABEL, "url": url}]
            )


def report_url(issue_url: str, issue_id: str) -> str:
    """The Linear URL of the issue's report comment (its id is chosen by the daemon)."""
    comment_id = stable_uuid4(issue_id, steps.REPORT_PURPOSE)
    return f"{issue_url}#comment-{comment_id[:8]}"


async def _recv(o: _Orchestration, timeout: float) -> dict[str, Any] | None:
    """The next control message within ``timeout`` seconds; a session arriving for this
    work (``kind: session``) is adopted on the way and not returned."""
    while True:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=timeout)
        if message is None or message.get("kind") != "session":
            return dict(message) if message is not None else None
        await _adopt_session(o, message)


async def _adopt_session(o: _Orchestration, message: dict[str, Any]) -> None:
    """Make the session that arrived after the work started carry it: from now on the
    plan, the activities, the links and the final response go there."""
    if o.session_id is not None:
        return
    o.session_id = str(message["session_id"])
    log.info("agent session now carries the work", session=o.session_id)
    context = message.get("context") or {}
    own = o.trigger.get("context") or {}
    if not own.get("prompt_context") and context.get("prompt_context"):
        o.trigger["context"] = {**own, **context}
    await o.link_report()
    await _publish_plan(o)


def _context(o: _Orchestration) -> PlanningContext:
    issue = o.snapshot["issue"]
    context = o.trigger.get("context") or {}
    guidance = context.get("guidance") or []
    repo = o.trigger.get("_repository") or {}
    known_comments = {c.get("id") for c in issue.get("comments", [])}
    return PlanningContext(
        issue_id=issue["id"],
        issue_identifier=issue["identifier"],
        title=issue["title"],
        description=issue.get("description"),
        labels=issue.get("labels", []),
        project=issue.get("project"),
        team_key=issue["team"]["key"],
        comments=[
            ContextComment(author=c.get("user_id") or "integration", body=c["body"])
            for c in issue.get("comments", [])
        ],
        previous_comments=[  # the thread's comments the issue's own list does not hold
            ContextComment(author=c.get("userId") or "integration", body=c["body"])
            for c in context.get("previous_comments") or []
            if c.get("id") not in known_comments
        ],
        existing_subissues=_existing(o),
        attachments=[AttachmentRef.model_validate(a) for a in o.trigger.get("_attachments") or []],
        prompt_context=context.get("prompt_context"),
        guidance_rules=parse_guidance(guidance),
        repository_id=repo.get("id"),
        repository_path=str(repo["path"]) if repo.get("path") else None,
        base_branch=repo.get("base_branch"),
        follow_ups=o.follow_ups,
        work_so_far=_work_so_far(o),
    )


def _work_so_far(o: _Orchestration) -> list[str]:
    """The sub-tasks already planned, a line each, for a follow-up's planning."""
    if o.progress is None:
        return []
    return [
        f"`{r.key}` {r.title}: {r.status}; verification {r.verification}"
        + (f"; {r.note}" if r.note else "")
        + (f"; branch {r.branch}" if r.branch else "")
        + (f"; pull request {r.pr_url}" if r.pr_url else "")
        for r in o.progress.tasks.values()
    ]


def _existing(o: _Orchestration) -> list[ExistingSubIssue]:
    """The sub-issues the issue had when the work started."""
    return [ExistingSubIssue.from_snapshot(c) for c in o.snapshot["issue"].get("children", [])]


async def _drain_messages(o: _Orchestration) -> dict[str, Any] | None:
    """Take queued control messages without waiting; returns a stop if one came."""
    while True:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=0)
        if message is None:
            return None
        if message.get("kind") == "stop":
            return dict(message)
        if (edit := edits.edit_of(message)) is not None:  # planning has not started yet
            edits.apply_to_snapshot(o.snapshot["issue"], edit)
            await o.say("thought", edits.acknowledgement(edit))
            continue
        if message.get("kind") == "session":
            await _adopt_session(o, message)
        elif message.get("kind") == "follow_up" and message.get("text"):
            o.follow_ups.append(
                ContextComment(author=message.get("actor_name") or "user", body=message["text"])
            )


async def _finish(o: _Orchestration, state: ReportState, message: str | None = None) -> str:
    if message:
        o.note(message)
    if state == "failed":
        await alerts.issue_failed(o.identifier or o.issue_id, o.workflow_id, message)
    # After a stop the session gets one final activity and Linear nothing else (Linear's
    # stop signal); in user mode the report is the only place that says it stopped.
    quiet = state == "stopped" and o.session_id is not None
    if state == "done":  # a per-issue policy delivers the whole issue as one pull request
        issue = o.snapshot.get("issue") or {}
        repository = o.trigger.get("_repository")
        undelivered = await deliver_issue(o.progress, repository, issue, o.issue_id, o.identifier)
        if undelivered:
            o.note(undelivered)
    if not quiet:
        await o.report(state)
    if state == "done" and _may_move(o):
        review = o.state_id(name=o.settings.review_state)
        if review:
            await steps.move_issue_step(o.issue_id, review)
    await DBOS.set_event_async("history", _history(o))
    if o.session_id is None:  # a session that came just now still gets the final word
        while (late := await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=0)) is not None:
            if late.get("kind") == "session":
                await _adopt_session(o, late)
    if o.session_id:
        if not quiet:
            await _publish_plan(o)  # the session's plan shows where every sub-task ended
        passed = sum(
            1 for t in (o.progress.tasks.values() if o.progress else []) if t.status == "passed"
        )
        total = len(o.progress.tasks) if o.progress else 0
        money = await steps.money_step(o.issue_id)
        body = texts.FINAL_RESPONSE.format(
            state=state.replace("_", " ").capitalize(),
            passed=passed,
            total=total,
            total_cost=Total(**money["issue"]).format(),
        )
        if message:
            body += "\n\n" + message
        if o.trigger.get("continue_from"):  # what became of the prompt that continued it
            said = [n for n in o.notes if n != message]
            if said:
                body += "\n\n" + "\n".join(f"- {n}" for n in said)
        await o.say("response" if state in ("done", "stopped") else "error", body, final=quiet)
    await steps.set_state_step(o.issue_id, o.workflow_id, state)
    return state


def _may_move(o: _Orchestration) -> bool:
    """Whether the issue may be moved: never out of completed or canceled (Linear's agent
    guidelines), as it stood when the work started."""
    state = (o.snapshot.get("issue") or {}).get("state") or {}
    return state.get("type") not in ("completed", "canceled")


def _history(o: _Orchestration) -> dict[str, Any]:
    """What a later prompt to the session continues from: the plan with every sub-task's
    result, the repository and the follow-ups so far."""
    return {
        "progress": o.progress.model_dump(mode="json") if o.progress else None,
        "repository": o.trigger.get("_repository"),
        "follow_ups": [c.model_dump(mode="json") for c in o.follow_ups],
    }


@DBOS.workflow()
async def orchestrate_issue(trigger: dict[str, Any]) -> str:
    """The work on one issue, from acknowledgement to the final report; returns its end state."""
    workflow_id = str(DBOS.workflow_id)
    o = _Orchestration(trigger, workflow_id)
    structlog.contextvars.bind_contextvars(issue=o.identifier)
    try:
        return await _orchestrate(o)
    except Exception as exc:  # every run ends with a terminal update, never "working"
        if o.stopped_by is not None:
            # Stopped as asked; only the last words could not reach Linear (an issue
            # deleted, or the app revoked, refuses them). Nothing more to say there.
            log.warning("stopped; the final report could not be written", error=repr(exc))
            await steps.set_state_step(o.issue_id, workflow_id, "stopped", detail=repr(exc)[:500])
            return "stopped"
        log.error("orchestration failed", error=repr(exc))
        await steps.set_state_step(o.issue_id, workflow_id, "failed", detail=repr(exc)[:500])
        text = texts.CRASHED
        o.notes.append(text)
        with contextlib.suppress(Exception):
            if o.snapshot:
                await o.report("failed")
        if o.session_id or not o.snapshot:
            with contextlib.suppress(Exception):
                await o.say("error", text)
        return "failed"


async def _await_session(o: _Orchestration) -> dict[str, Any] | None:
    """Wait briefly for the session of the delegation that started this work; returns a
    stop that came meanwhile (follow-ups are kept for the planner)."""
    while True:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=SESSION_WAIT_SECONDS)
        if message is None:
            return None
        if message.get("kind") == "session":
            await _adopt_session(o, message)
            return None
        if message.get("kind") == "stop":
            return dict(message)
        if message.get("kind") == "follow_up" and message.get("text"):
            author = message.get("actor_name") or "user"
            o.follow_ups.append(ContextComment(author=author, body=message["text"]))


async def _orchestrate(o: _Orchestration) -> str:
    workflow_id = o.workflow_id
    early_stop = None
    if (o.trigger.get("context") or {}).get("expects_session") and not o.session_id:
        early_stop = await _await_session(o)
    money = await steps.money_step(o.issue_id)
    day_spent = Total(**money["day"]).usd
    refused = o.limits.per_day is not None and day_spent >= o.limits.per_day
    o.snapshot = await steps.acknowledge_step(
        o.issue_id,
        o.session_id,
        workflow_id,
        start=not refused,
        delegate_to=o.settings.linear.agent_user_id if o.session_id else None,
    )
    o.identifier = o.snapshot["issue"]["identifier"]
    await o.link_report()
    started_at = await steps.now_step()
    deadline = started_at + o.settings.issue_timeout_seconds
    await steps.set_state_step(o.issue_id, workflow_id, "planning")
    if refused and o.limits.per_day is not None:
        log.warning("daily budget reached: not starting a new issue", spent=str(day_spent))
        text = texts.DAY_BLOCKED_NEW_ISSUE.format(
            spent=format_usd(day_spent), limit=format_usd(o.limits.per_day)
        )
        await alerts.day_budget(str(money["today"]), text, exhausted=True)
        return await _finish(o, "over_budget", text)
    if early_stop is not None:
        o.stopped_by = early_stop.get("actor_name") or "a user"
        return await _finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
    if o.trigger.get("continue_from"):
        history = await DBOS.get_event_async(
            o.trigger["continue_from"], "history", timeout_seconds=0
        )
        if isinstance(history, dict) and history.get("progress"):
            return await _continue(o, history, deadline)
        author = o.trigger.get("actor_name") or "user"  # nothing to continue: plan anew
        o.follow_ups.append(ContextComment(author=author, body=o.trigger.get("text") or ""))
    if not o.session_id:
        await o.report("planning")

    # Route to a repository; without one, ask and wait for a reply naming it.
    issue = o.snapshot["issue"]
    asked = o.trigger.get("repository")  # named by an MCP caller, checked when it asked
    route = route_repository(
        o.settings.repositories,
        description=f"[repo={asked}]" if asked else issue.get("description"),
        labels=issue.get("labels", []),
        team_key=issue["team"]["key"],
    )
    if route.repository is None and o.settings.repositories:
        options = await steps.rank_repositories_step(o.issue_id, o.session_id)
        choices = ", ".join(f"`{r}`" for r in options)
        await o.say(
            "elicitation",
            texts.NO_REPOSITORY.format(reason=route.reason, choices=choices),
            options=options,
        )
        await steps.set_state_step(o.issue_id, workflow_id, "waiting")
        reply = await _recv(o, REPOSITORY_WAIT_SECONDS)
        while reply is not None and (edit := edits.edit_of(reply)) is not None:
            edits.apply_to_snapshot(o.snapshot["issue"], edit)  # an edit is not the answer
            reply = await _recv(o, REPOSITORY_WAIT_SECONDS)
        if reply is None or reply.get("kind") == "stop":
            if reply is not None:
                o.stopped_by = reply.get("actor_name") or "a user"
                return await _finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
            return await _finish(o, "failed", texts.NO_REPOSITORY_GAVE_UP)
        route = route_repository(
            o.settings.repositories,
            description=_repository_reply(
                reply.get("text") or "", [r.id for r in o.settings.repositories]
            ),
        )
        if route.repository is None:
            return await _finish(o, "failed", texts.NO_REPOSITORY_GAVE_UP)
    if route.repository is not None:
        o.trigger["_repository"] = route.repository.model_dump(mode="json")
    no_agent = agent_choice.refusal(o.settings, o.trigger.get("_repository"), o.snapshot["issue"])
    if no_agent is not None:  # the issue chose an agent it cannot have: say so, run nothing
        return await _finish(o, "failed", no_agent)

    fetched = await fetch_attachments_step(o.issue_id, o.snapshot["issue"])
    o.trigger["_attachments"] = fetched["attachments"]
    for text in fetched["notes"]:
        o.note(text)

    stop = await _drain_messages(o)
    if stop is not None:
        o.stopped_by = stop.get("actor_name") or "a user"
        return await _finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))

    # Plan (the planner re-asks once on an invalid plan; a second failure ends here).
    planned = await steps.plan_step(
        _context(o).model_dump(mode="json"), workflow_id, o.issue_id, o.identifier, 0
    )
    if "error" in planned:
        template = texts.PLANNER_UNAVAILABLE if planned.get("unavailable") else texts.PLAN_FAILED
        key = "reason" if planned.get("unavailable") else "problems"
        log.warning("no plan", error=planned["error"])
        error = (
            texts.for_linear(planned["error"]) if planned.get("unavailable") else planned["error"]
        )
        return await _finish(o, "failed", template.format(**{key: error}))
    plan = Plan.model_validate(planned["plan"])
    o.planning_cost = Total.of(planned.get("cost_usd"))
    approved = await _approve(o, plan)
    if isinstance(approved, str):
        return approved
    plan = approved
    await _warn_day_once(o)
    o.progress = Progress.start(plan)
    if note := reuse_note(plan, _existing(o), o.issue_id):
        o.note(note)
    await _create_subissues(o, plan.subtasks)
    await _publish_plan(o)
    await steps.set_state_step(
        o.issue_id, workflow_id, "working", subtasks_total=len(o.progress.tasks)
    )
    await o.report("working")
    return await _execute(o, deadline)


async def _approve(o: _Orchestration, plan: Plan) -> Plan | str:
    """The plan to carry out once approved (when the policy asks for approval), or the
    orchestration's end state when it was cancelled, stopped or could not be re-planned."""

    async def replan(author: str, text: str) -> dict[str, Any]:
        o.follow_ups.append(ContextComment(author=author, body=text))
        context = _context(o).model_dump(mode="json")
        return await steps.plan_step(
            context, o.workflow_id, o.issue_id, o.identifier, len(o.follow_ups)
        )

    outcome = await approval_flow.seek_approval(
        o,
        plan,
        recv=_recv,
        replan=replan,
        available=_available(o),
        estimates=estimates_for(o.settings),
    )
    for cost in outcome.planning_costs:
        o.planning_cost = (o.planning_cost or Total()) + Total.of(cost)
    if outcome.stopped_by is not None:
        o.stopped_by = outcome.stopped_by
        return await _finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
    if outcome.cancelled_by is not None:
        o.stopped_by = outcome.cancelled_by
        return await _finish(o, "stopped", approval.CANCELLED_NOTE.format(author=o.stopped_by))
    if outcome.plan is None:
        return await _finish(o, "failed", texts.PLAN_FAILED.format(problems=outcome.error))
    return outcome.plan


def _repository_reply(text: str, known: list[str]) -> str:
    """A reply to the repository question as ``route_repository`` reads it: a selected
    option, or a reply naming exactly one configured id (``"demo please"``), becomes a
    ``[repo=<id>]`` tag; a bare unknown word becomes one too, so the answer says so."""
    if repo_tags(text):
        return text
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9._/-]*", text)
    named = list(dict.fromkeys(w for w in words if w in known))
    if len(named) == 1:
        return f"[repo={named[0]}]"
    return f"[repo={words[0]}]" if len(words) == 1 else text


async def _continue(o: _Orchestration, history: dict[str, Any], deadline: float) -> str:
    """Continue finished work with a prompt: answer it, re-open the sub-tasks it names, or
    plan the new work it asks for, then carry on as before."""
    o.progress = Progress.model_validate(history["progress"])
    if history.get("repository"):
        o.trigger["_repository"] = history["repository"]
    o.follow_ups = [ContextComment.model_validate(c) for c in history.get("follow_ups") or []]
    log.info("continuing finished work", previous=o.trigger.get("continue_from"))
    await steps.set_state_step(
        o.issue_id, o.workflow_id, "working", subtasks_total=len(o.progress.tasks)
    )
    budget_reason = await _follow_up(o, o.trigger, None)
    await _publish_plan(o)
    await o.report("working")
    if budget_reason is not None:
        return await _finish(o, "over_budget", texts.BUDGET_BLOCKED.format(reason=budget_reason))
    return await _execute(o, deadline)


async def _create_subissues(o: _Orchestration, subtasks: list[Subtask]) -> None:
    assert o.progress is not None
    unstarted = o.state_id(type_="unstarted")
    reused = bindings(subtasks, _existing(o), o.issue_id)
    taken = {r.sub_issue_id for r in o.progress.tasks.values() if r.sub_issue_id}
    for subtask in subtasks:
        existing = reused.get(subtask.key)
        if existing is not None and existing.id not in taken:  # bound, not created
            taken.add(existing.id)
            ref = {"id": existing.id, "identifier": existing.identifier, "url": existing.url}
        else:
            ref = await steps.create_subissue_step(
                o.issue_id,
                o.team_id,
                unstarted,
                subtask.model_dump(mode="json"),
                parent_url=o.snapshot["issue"].get("url"),
                report_url=report_url(o.snapshot["issue"]["url"], o.issue_id)
                if o.snapshot["issue"].get("url")
                else None,
            )
        record = o.progress.tasks[subtask.key]
        record.sub_issue_id, record.identifier, record.url = (
            ref["id"],
            ref["identifier"],
            ref["url"],
        )


async def _publish_plan(o: _Orchestration) -> None:
    if not o.session_id or o.progress is None:
        return
    status_map = {"pending": "pending", "running": "inProgress", "passed": "completed"}
    plan_steps = [
        {
            "content": f"{t.identifier or t.key}: {t.title}",
            "status": status_map.get(t.status, "canceled"),
        }
        for t in o.progress.tasks.values()
    ]
    await steps.publish_session_plan_step(o.session_id, plan_steps)


def _available(o: _Orchestration) -> list[str]:
    names = list(LOCAL_EXECUTORS)
    if o.settings.codegen.org_id is not None and o.settings.codegen.api_token is not None:
        names.append("codegen")
    return [n for n in names if n not in o.unavailable]


async def _dispatch(o: _Orchestration, subtask: Subtask) -> str | None:
    """Start ``subtask`` on its executor; returns why not when the budget forbids it."""
    assert o.progress is not None
    money = await steps.money_step(o.issue_id)
    issue_spent = Total(**money["issue"]).usd
    decision = decide_dispatch(
        o.limits,
        issue_spent=issue_spent,
        day_spent=Total(**money["day"]).usd,
        issue_running=len(o.progress.running()),
        # this issue's children may not have marked themselves running yet
        day_running=max(int(money["day_running"]), len(o.progress.running())),
        issue_budget=o.budget,
    )
    if not decision.may_dispatch:
        return decision.reason or "budget reached"
    record = o.progress.tasks[subtask.key]
    repo = o.trigger.get("_repository") or {}
    agent = agent_choice.profile_for(o.settings, repo, o.snapshot["issue"], subtask.role)
    resume_from = record.resume_from
    if resume_from is not None and resume_from.get("executor") in _available(o):
        executor = str(resume_from["executor"])  # the session that did the work goes on
    else:
        resume_from = None
        remaining = float(o.budget.limit - issue_spent) if o.budget.limit is not None else None
        choice = agent_choice.forced_choice(agent, _available(o), o.unavailable) or choose_executor(
            o.trigger.get("strategy") or o.settings.strategy,
            subtask,
            available=_available(o),
            remaining_budget_usd=remaining,
            estimates=estimates_for(o.settings),
            fallback_to_local=o.settings.fallback_to_local,
            unavailable_reasons=o.unavailable,
        )
        if choice.executor is None:
            record.status, record.note = "failed", choice.reason
            return None
        if choice.fell_back:
            record.note = choice.reason
        executor = choice.executor
    feedback = "\n\n".join(record.feedback) or None
    n = o.dispatches.get(subtask.key, 0) + 1
    o.dispatches[subtask.key] = n
    child_id = f"{o.workflow_id}-{subtask.key}-{n}"
    role_prompt = await steps.role_prompt_step(subtask.role)
    ancestors = [o.progress.tasks[d.key] for d in dependencies_of(o.progress.plan, subtask.key)]
    task = Task(
        issue_id=o.issue_id,
        issue_identifier=o.identifier,
        key=subtask.key,
        title=subtask.title,
        description=subtask.description
        + (
            texts.FEEDBACK_SECTION.format(feedback=feedback) if feedback and not resume_from else ""
        ),
        role=subtask.role,
        verification=subtask.verification_commands(),
        repository_id=repo.get("id"),
        repository_path=str(repo["path"]) if repo.get("path") else None,
        codegen_repo_id=repo.get("codegen_repo_id"),
        base_branch=repo.get("base_branch") or "main",
        # A local dependency's branch is in the repository; a cloud dependency's work is
        # its pull request's branch on the remote, fetched when the worktree is made. All
        # ancestors, not only direct ones: a cloud run starts from the base branch, so its
        # pull request does not carry the work it depended on.
        merge_branches=[
            branch
            for dep in ancestors
            if dep.executor in LOCAL_EXECUTORS and (branch := dep.branch) is not None
        ],
        fetch_branches=[
            branch
            for dep in ancestors
            if dep.executor not in LOCAL_EXECUTORS and (branch := dep.branch) is not None
        ],
        remote=repo.get("remote") or "origin",
        role_prompt=role_prompt,
        attachments=[
            TaskAttachment(name=a.name, path=a.path, media_type=a.media_type, url=a.url)
            for a in (AttachmentRef.model_validate(r) for r in o.trigger.get("_attachments") or [])
            if a.path is not None
        ],
        limits=TaskLimits(
            wall_clock_seconds=o.settings.claude.timeout_seconds,
            max_turns=o.settings.claude.max_turns,
            max_usd=float(o.limits.per_task) if o.limits.per_task is not None else None,
        ),
        attempt=n,
        agent=agent,
    )
    spec = {
        "parent": o.workflow_id,
        "key": subtask.key,
        "executor": executor,
        "issue_id": o.issue_id,
        "issue_identifier": o.identifier,
        "session_id": o.session_id,
        "sub_issue_id": record.sub_issue_id,
        "sub_issue_identifier": record.identifier,
        "started_state_id": o.state_id(type_="started"),
        "done_state_id": o.state_id(type_="completed"),
        "review_state_id": o.state_id(name=o.settings.review_state),  # delivered: until merged
        "reset_state_id": (
            o.state_id(name=o.settings.failed_subtask_state)
            if o.settings.failed_subtask_state
            else None
        )
        or o.state_id(type_="unstarted"),
        "task": task.model_dump(mode="json"),
        "max_iterations": o.settings.max_iterations,
        "issue_limit": str(o.budget.limit) if o.budget.limit is not None else None,
        "note": record.note,
        "feedback": feedback,
        "resume_from": resume_from,
        "iterations_before": record.iterations,
        "issue_labels": list(o.snapshot["issue"].get("labels") or []),
    }
    queue_name = CLOUD_QUEUE if executor == "codegen" else LOCAL_QUEUE
    queue = await DBOS.retrieve_queue_async(queue_name)
    assert queue is not None, f"queue {queue_name} not registered"
    with SetWorkflowID(child_id):
        await queue.enqueue_async(run_subtask, spec)
    record.status, record.executor, record.workflow_id = "running", executor, child_id
    record.feedback, record.resume_from = [], None
    return None


def _apply_outcome(o: _Orchestration, message: dict[str, Any]) -> TaskRecord | None:
    """Record a sub-task's outcome; returns its record (``None`` for a late message)."""
    assert o.progress is not None
    record = o.progress.tasks.get(message["key"])
    if record is None or record.status != "running":
        return None  # a late message from a run this orchestration already gave up on
    if message["status"] == "unavailable":
        executor = record.executor or "codegen"
        log.warning("executor unavailable", executor=executor, reason=message["reason"])
        reason = texts.for_linear(message["reason"])
        o.unavailable[executor] = reason
        record.status, record.note = "pending", f"{executor} unavailable: {reason}"
        record.resume_from = None
        return record
    cost = message["cost"]
    record.status = message["status"]
    record.iterations = message["iterations"]
    record.cost_micros, record.priced_parts, record.unpriced_parts = (
        cost["micros"],
        cost["priced"],
        cost["unpriced"],
    )
    record.uncertain_parts = cost.get("uncertain", 0)
    record.duration_seconds = message["duration_seconds"]
    record.pr_url, record.branch = message.get("pr_url"), message.get("branch")
    record.verification = message["verification"]
    record.checks = message.get("checks") or []
    if message.get("note"):
        record.note = message["note"]
    return record


async def _reopen(o: _Orchestration, record: TaskRecord) -> None:
    """Make a finished sub-task pending again so its feedback reaches a new run, which
    resumes the finished run's session. Sub-tasks skipped behind it become pending too
    (the scheduler skips again whatever is still blocked)."""
    assert o.progress is not None
    handle = None
    if record.workflow_id is not None:
        handle = await DBOS.get_event_async(record.workflow_id, "handle", timeout_seconds=0)
    record.resume_from = handle if isinstance(handle, dict) else None
    record.status = "pending"
    for other in o.progress.tasks.values():
        if other.status == "skipped":
            other.status, other.note = "pending", None


async def _feedback_to_subtasks(o: _Orchestration, keys: list[str], author: str, text: str) -> None:
    """Give a follow-up to the sub-tasks it names: a finished one runs again with it, a
    running one gets it when its run ends, a pending one when it starts."""
    assert o.progress is not None
    for key in keys:
        record = o.progress.tasks[key]
        record.feedback.append(texts.FOLLOW_UP_ENTRY.format(author=author, text=text))
        name = f"`{record.identifier or key}`"
        if record.status in REOPENABLE:
            await _reopen(o, record)
            o.note(texts.FOLLOW_UP_RERUN.format(author=author, name=name))
        elif record.status == "running":
            o.note(texts.FOLLOW_UP_AFTER_RUN.format(author=author, name=name))
        elif record.status == "pending":
            o.note(texts.FOLLOW_UP_AT_START.format(author=author, name=name))
        else:
            status = STATUS_WORDS.get(record.status, record.status)
            o.note(texts.FOLLOW_UP_KEPT.format(author=author, name=name, status=status))


async def _stop_children(o: _Orchestration, status: str) -> None:
    """Cancel every running sub-task: its process killed (local) or its run abandoned
    and recorded (Codegen), its workflow cancelled; pending sub-tasks take ``status``."""
    assert o.progress is not None
    for record in o.progress.running():
        child = record.workflow_id
        assert child is not None and record.executor is not None
        found = await DBOS.get_workflow_status_async(child)
        started = found is not None and found.status == "PENDING"
        # A child that has begun may be spawning its run right now: wait for its handle
        # (published right after the spawn) so the run is stopped, not orphaned.
        handle = await DBOS.get_event_async(
            child, "handle", timeout_seconds=HANDLE_WAIT_SECONDS if started else 0
        )
        await DBOS.cancel_workflow_async(child)
        if handle:
            await steps.cancel_run_step(record.executor, handle)
        await steps.track_subtask_step(o.issue_id, record.key, child, status, record.executor)
        record.status = status  # type: ignore[assignment]
        if record.executor == "codegen":
            record.note = _join(record.note, "remote run abandoned (recorded)")
    for record in o.progress.tasks.values():
        if record.status == "pending":
            record.status = status  # type: ignore[assignment]


@DBOS.workflow()
async def warn_day_budget(issue_id: str, day: str, text: str) -> None:
    """Say that today's spend reached the warning ratio: one log line and one comment.

    Started with the id ``budget-day-warning-<day>`` by every orchestration that sees the
    threshold crossed; DBOS runs a workflow id once, so the day is warned about once,
    across issues and restarts.
    """
    log.warning("daily budget warning", day=day, message=text)
    await steps.comment_step(issue_id, stable_uuid4("budget-day-warning", day), text)
    await alerts.day_budget(day, text, exhausted=False)


async def _warn_day_once(o: _Orchestration) -> None:
    """Warn (once per day, whichever issue gets there first) when today's spend reaches
    the warning ratio of the daily limit."""
    if o.limits.per_day is None:
        return
    money = await steps.money_step(o.issue_id)
    day, spent = str(money["today"]), Total(**money["day"]).usd
    if day in o.day_warned:
        return
    if threshold_of(spent, o.limits.per_day, o.limits.warn_ratio) < Threshold.WARNING:
        return
    o.day_warned.add(day)
    text = DAY_WARNING_TEXT.format(
        spent=format_usd(spent),
        limit=format_usd(o.limits.per_day),
        percent=int(spent * 100 / o.limits.per_day),
    )
    with SetWorkflowID(DAY_WARNING_WORKFLOW.format(day=day)):
        await DBOS.start_workflow_async(warn_day_budget, o.issue_id, day, text)


async def _follow_up(
    o: _Orchestration,
    message: dict[str, Any],
    budget_reason: str | None,
    *,
    replan_only: bool = False,
) -> str | None:
    """Handle a follow-up during execution; returns the budget block that remains.

    ``replan_only``: the text is for the planner only (an edit of the issue), never a
    ``continue`` reply nor feedback to the sub-tasks it happens to name.
    """
    assert o.progress is not None
    text = message.get("text") or ""
    author = message.get("actor_name") or "a user"
    if budget_reason and not replan_only and is_continue_reply(text):
        if o.budget.raised or o.budget.limit is None:
            o.notes.append(texts.BUDGET_ALREADY_RAISED.format(author=author))
            return budget_reason  # raised once already: the issue ends over budget
        o.budget = o.budget.continue_once(o.limits)
        blocked = texts.BUDGET_BLOCKED.format(reason=budget_reason)
        o.notes = [n for n in o.notes if n != blocked]
        limit = format_usd(o.budget.limit) if o.budget.limit is not None else "none"
        o.notes.append(texts.BUDGET_RAISED.format(author=author, limit=limit))
        return None
    tasks = [Named(t.key, t.identifier) for t in o.progress.tasks.values()]
    named = [] if replan_only else named_subtasks(text, tasks)
    if named:  # feedback to those sub-tasks, not a request to re-plan
        await _feedback_to_subtasks(o, named, author, text)
        if budget_reason:
            o.note(texts.FOLLOW_UP_WHILE_BLOCKED.format(author=author))
        return budget_reason
    o.follow_ups.append(ContextComment(author=author, body=text))
    if budget_reason:  # planning again would spend money the budget does not allow
        o.notes.append(texts.FOLLOW_UP_WHILE_BLOCKED.format(author=author))
        return budget_reason
    round_ = len(o.follow_ups)
    planned = await steps.plan_step(
        _context(o).model_dump(mode="json"), o.workflow_id, o.issue_id, o.identifier, round_
    )
    if "error" in planned:
        log.warning("follow-up not planned", error=planned["error"])
        reason = texts.for_linear(planned["error"])
        o.notes.append(f"Follow-up from {author} could not be planned: {reason}")
        return budget_reason
    new_plan = Plan.model_validate(planned["plan"])
    if new_plan.answer:  # a question: answered now, and again in the final response
        answer = texts.FOLLOW_UP_ANSWERED.format(author=author, answer=new_plan.answer)
        await o.say("thought", answer)
        o.notes.append(answer)
    known = set(o.progress.tasks)
    fresh = [s for s in new_plan.subtasks if s.key not in known]
    keys = known | {s.key for s in fresh}
    fresh = [
        s.model_copy(update={"depends_on": [d for d in s.depends_on if d in keys]}) for s in fresh
    ]
    fresh = fresh[: max(0, o.settings.max_subtasks * 2 - len(known))]  # bounded fan-out
    added = o.progress.add(fresh)
    if added:
        await _create_subissues(o, added)
        o.notes.append(
            texts.FOLLOW_UP_ADDED.format(
                author=author, count=len(added), keys=", ".join(f"`{s.key}`" for s in added)
            )
        )
        await _publish_plan(o)
    elif not new_plan.answer:
        o.notes.append(texts.FOLLOW_UP_NOTED.format(author=author))
    return budget_reason


async def _issue_edited(
    o: _Orchestration, edit: edits.IssueEdit, message: dict[str, Any], budget_reason: str | None
) -> str | None:
    """An edit of the issue during execution: say it was seen, tell the running sub-tasks
    (for their next iteration) and the pending ones, and re-plan what remains."""
    assert o.progress is not None
    edits.apply_to_snapshot(o.snapshot["issue"], edit)
    author = message.get("actor_name") or "a user"
    await o.say("thought", edits.acknowledgement(edit))
    o.note(edits.EDIT_NOTE.format(fields=edit.fields_text, author=author))
    text = edits.feedback(edit)
    for record in o.progress.tasks.values():
        if record.status == "running" and record.workflow_id is not None:
            await DBOS.send_async(record.workflow_id, {"text": text}, topic=edits.EDIT_TOPIC)
        elif record.status == "pending":
            record.feedback.append(text)
    return await _follow_up(o, {**message, "text": text}, budget_reason, replan_only=True)


async def _show_progress(o: _Orchestration) -> None:
    """Update the report and the session plan after a sub-task ended, sparingly.

    Each sub-issue already carries its own result, so the parent's report is edited when a
    wave of parallel work has ended (nothing left running) or when the last edit is older
    than ``PROGRESS_UPDATE_SECONDS``; the final report follows the last sub-task anyway.
    This is what keeps a five-sub-issue issue within its Linear request budget.
    """
    assert o.progress is not None
    if o.progress.finished():
        return
    now = await steps.now_step()
    if o.progress.running() and now - o.last_progress_update < PROGRESS_UPDATE_SECONDS:
        return
    o.last_progress_update = now
    await o.report("working")
    await _publish_plan(o)


async def _execute(o: _Orchestration, deadline: float) -> str:
    assert o.progress is not None
    budget_reason: str | None = None
    asked_budget = False
    while True:
        for subtask, reason in blocked(o.progress):
            record = o.progress.tasks[subtask.key]
            record.status, record.note = "skipped", reason
        if budget_reason is None:
            for subtask in ready(o.progress):
                if len(o.progress.running()) >= o.settings.max_parallel:
                    break
                budget_reason = await _dispatch(o, subtask)
                if budget_reason is not None:
                    break
        if o.progress.finished():
            break
        if budget_reason == DAILY_BUDGET_REACHED and not o.progress.running():
            for record in o.progress.tasks.values():
                if record.status == "pending":
                    record.status, record.note = "over_budget", DAILY_BUDGET_REACHED
            today = str((await steps.money_step(o.issue_id))["today"])
            await alerts.day_budget(today, texts.DAY_BLOCKED, exhausted=True)
            return await _finish(o, "over_budget", texts.DAY_BLOCKED)
        if budget_reason is not None and not o.progress.running():
            if asked_budget:
                for record in o.progress.tasks.values():
                    if record.status == "pending":
                        record.status = "over_budget"
                return await _finish(
                    o, "over_budget", texts.BUDGET_BLOCKED.format(reason=budget_reason)
                )
            asked_budget = True
            o.note(texts.BUDGET_BLOCKED.format(reason=budget_reason))
            await o.report("over_budget")
            await o.say(
                "elicitation",
                texts.BUDGET_ELICITATION.format(reason=budget_reason),
                options=list(texts.BUDGET_OPTIONS),
            )
            message = await _recv(o, BUDGET_WAIT_SECONDS)
        else:
            now = await steps.now_step()
            if now >= deadline:
                await _stop_children(o, "timed_out")
                limit = f"{o.settings.issue_timeout_seconds:.0f}s"
                return await _finish(o, "timed_out", texts.TIMED_OUT.format(limit=limit))
            message = await _recv(o, min(POLL_SECONDS, max(1.0, deadline - now)))
        if message is None:
            continue
        if message.get("type") == "subtask_done":
            ended = _apply_outcome(o, message)
            if ended is not None and ended.feedback and ended.status in REOPENABLE:
                await _reopen(o, ended)  # a follow-up came while it ran
            await _show_progress(o)
            await _warn_day_once(o)
        elif message.get("kind") == "stop":
            o.stopped_by = message.get("actor_name") or "a user"
            await _stop_children(o, "cancelled")
            return await _finish(o, "stopped", texts.STOPPED.format(who=o.stopped_by))
        elif (edit := edits.edit_of(message)) is not None:
            budget_reason = await _issue_edited(o, edit, message, budget_reason)
            asked_budget = False  # an edit is no answer to a budget question: ask again
        elif (
            message.get("kind") == "follow_up"
            and budget_reason is not None
            and (message.get("text") or "").strip().strip("`").lower() == texts.BUDGET_OPTIONS[1]
        ):  # "stop" chosen at the budget question: end over budget, as a second refusal does
            for record in o.progress.tasks.values():
                if record.status == "pending":
                    record.status = "over_budget"
            return await _finish(
                o, "over_budget", texts.BUDGET_BLOCKED.format(reason=budget_reason)
            )
        elif message.get("kind") == "follow_up":
            was_blocked = budget_reason is not None
            budget_reason = await _follow_up(o, message, budget_reason)
            if budget_reason is None or not is_continue_reply(message.get("text") or ""):
                asked_budget = False  # ask again rather than end on an unrelated reply
            elif was_blocked:
                asked_budget = True
    state = overall_state(o.progress)
    failed = [t for t in o.progress.tasks.values() if t.status == "failed"]
    message_text = None
    if failed:
        names = ", ".join(t.identifier or t.key for t in failed)
        message_text = texts.ASK_HUMAN.format(failed=len(failed), names=names)
    return await _finish(o, state, message_text)
