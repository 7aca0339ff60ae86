"""The ``handle_trigger`` workflow: one stored trigger becomes work on an issue, exactly once.

Contract:
- ``handle_trigger`` (id ``trigger-<hash of the dedupe key>``, see
  :func:`trigger_workflow_id`) answers the trigger's first activity unless the dispatcher
  did; a start claims the issue (single flight, ``storage.work``) and starts
  ``orchestrate_issue`` with :func:`orchestration_workflow_id`; a follow-up or stop is sent
  to the issue's running orchestration on ``CONTROL_TOPIC``; a prompt to a session whose
  work ended continues that work; a refusal is answered and ends there.
- A stop is recorded before looking for the work it stops, so a start that claims the
  issue after it sees it and does not start (``storage.stops``).
- In app mode a session arriving while the work runs without one becomes its session.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker import services
from edge_worker.ids import stable_key, stable_uuid4
from edge_worker.orchestration import steps, texts
from edge_worker.orchestration.answers import first_activity_id
from edge_worker.orchestration.issue_run import orchestrate_issue
from edge_worker.orchestration.workflow_config import (
    CONTROL_TOPIC,
    DELEGATION_WINDOW_SECONDS,
    OWNER_POLL_SECONDS,
    OWNER_WAIT_SECONDS,
)
from edge_worker.storage import stops, work

log = structlog.get_logger(__name__)


def trigger_workflow_id(dedupe_key: str) -> str:
    """The workflow id for a stored trigger: same key, same workflow."""
    return f"trigger-{stable_key(dedupe_key)}"


def orchestration_workflow_id(issue_id: str, dedupe_key: str) -> str:
    """The workflow id for the orchestration a start trigger begins."""
    return f"issue-{issue_id}-{stable_key(dedupe_key)[:12]}"


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
