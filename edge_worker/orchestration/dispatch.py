"""The outbox dispatcher: committed triggers become DBOS workflows.

The intake commits an event and answers Linear; this task, running beside it, enqueues a
``handle_trigger`` workflow for each committed acting event (``handle_lifecycle`` for a
team-access removal or the app's revocation) and stamps the row. The workflow id derives
from the event's dedupe key, so enqueuing twice (after a crash between enqueue and stamp,
or from two daemons sharing a database) is a no-op.

Every ``created`` and ``prompted`` agent session is answered here first, before the
queue, the claim or any Linear read: a ``thought`` (or, for a refused session, the
``error`` saying why), posted with the id ``first_activity_id(trigger)`` for the whole
batch at once, each bounded by ``first_activity_timeout`` seconds. The trigger then says
``acked``; when the post failed it does not, and its workflow posts the same activity
(same id: said once) durably. A stop signal gets nothing here: its one activity is the
final one.

Triggers are taken in delivery order. Reaching an ``OAuthApp`` revoked trigger records
the revocation (``storage/access.py``); from then on every other trigger is refused with
a log line and stamped as refused instead of dispatched: kept for ``edge-worker
reinstate``, never dropped (and no session is answered: the app can no longer post).

While an operator has paused intake (``storage/intake_pause.py``), a trigger that would
start work is held (stamped as held, requeued on resume) and every other one passes, so
running work can still be stopped or steered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker.alerts.hooks import app_revoked_event
from edge_worker.alerts.steps import send_alert
from edge_worker.orchestration.answers import FirstAnswers, first_activity
from edge_worker.orchestration.lifecycle import handle_lifecycle
from edge_worker.orchestration.workflows import handle_trigger, trigger_workflow_id
from edge_worker.queues import TRIGGER_QUEUE
from edge_worker.storage import access, intake_pause
from edge_worker.storage.access import REFUSED_WORKFLOW_ID
from edge_worker.storage.events import mark_dispatched, pending_dispatch
from edge_worker.webhooks.lifecycle import SCOPE_APP_REVOKED, lifecycle_scope

log = structlog.get_logger(__name__)

APP_REVOKED_LOG = (
    "Linear revoked the app: all work stops and new work is refused; stored triggers are "
    "kept. Reinstall the app in Linear, then run `edge-worker reinstate`."
)
TRIGGER_REFUSED_LOG = (
    "trigger refused: the Linear app is revoked; it is kept and runs after `edge-worker reinstate`"
)
TRIGGER_HELD_LOG = "new work held: intake is paused; it starts when intake is resumed"


def trigger_of(row: sa.Row[Any]) -> dict[str, Any]:
    """The workflow input for an outbox row."""
    detail = json.loads(row.detail) if row.detail else {}
    return {
        "kind": row.decision,
        "reason": row.reason,
        "delivery_id": row.delivery_id,
        "dedupe_key": row.dedupe_key or row.delivery_id,
        "issue_id": row.issue_id,
        "issue_identifier": row.issue_identifier,
        "seq": row.seq,
        **detail,
    }


class Dispatcher:
    """Drains the outbox when woken, and every ``poll_seconds`` regardless.

    Answering Linear comes first: after a wake-up the dispatcher waits until intake has
    been quiet for ``quiet_seconds`` (at most ``max_delay_seconds``), so a burst of
    deliveries is committed and answered before workflow start-up competes with it for
    the CPU and the database; the burst is then dispatched in one pass.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        answers: FirstAnswers | None = None,
        poll_seconds: float = 5.0,
        quiet_seconds: float = 0.05,
        max_delay_seconds: float = 2.0,
    ) -> None:
        self._engine = engine
        self._answers = answers
        self._poll_seconds = poll_seconds
        self._quiet = quiet_seconds
        self._max_delay = max_delay_seconds
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-dispatcher")

    async def stop(self) -> None:
        """End the loop and wait until it has ended; a cancellation of the caller still
        reaches the caller (only the loop's own is expected)."""
        if self._task is None:
            return
        self._stopping = True  # ends the loop even if something below swallows the cancel
        self._task.cancel()
        await asyncio.wait([self._task])

    async def drain_once(self) -> int:
        """Dispatch every pending event; returns how many were dispatched."""
        total = 0
        while True:
            rows = await asyncio.to_thread(self._pending)
            if not rows:
                return total
            queue = await DBOS.retrieve_queue_async(TRIGGER_QUEUE)
            assert queue is not None, "trigger queue not registered"
            triggers = [trigger_of(row) for row in rows]
            revoked = await asyncio.to_thread(self._revoked)
            held = await asyncio.to_thread(self._paused)
            if not revoked:
                await self._answer_sessions(triggers)
            stamps: list[tuple[int, str]] = []
            for row, trigger in zip(rows, triggers, strict=True):
                scope = lifecycle_scope(trigger.get("context"))
                if scope == SCOPE_APP_REVOKED and not revoked:
                    # Decided before the revocation is recorded: a crash in between alerts
                    # again under the same key, which the outbox turns into one alert.
                    await send_alert(app_revoked_event("linear", row.delivery_id))
                    await asyncio.to_thread(self._mark_revoked, trigger)
                    revoked = True
                    log.error(APP_REVOKED_LOG, delivery_id=row.delivery_id)
                if scope is None and revoked:
                    # Kept, not lost: ``edge-worker reinstate`` puts it back in the outbox.
                    log.warning(
                        TRIGGER_REFUSED_LOG,
                        issue=row.issue_identifier or row.issue_id,
                        kind=row.decision,
                        delivery_id=row.delivery_id,
                    )
                    stamps.append((row.seq, REFUSED_WORKFLOW_ID))
                    continue
                if held and scope is None and trigger["kind"] == "start":
                    log.info(
                        TRIGGER_HELD_LOG,
                        issue=row.issue_identifier or row.issue_id,
                        delivery_id=row.delivery_id,
                    )
                    stamps.append((row.seq, intake_pause.HELD_WORKFLOW_ID))
                    continue
                workflow_id = trigger_workflow_id(trigger["dedupe_key"])
                with SetWorkflowID(workflow_id):
                    if scope is None:
                        await queue.enqueue_async(handle_trigger, trigger)
                    else:
                        await queue.enqueue_async(handle_lifecycle, trigger)
                stamps.append((row.seq, workflow_id))
            # One transaction for the batch: each stamp is a write on the file intake
            # commits to. A crash before it only means enqueuing again, which is a no-op.
            await asyncio.to_thread(self._stamp, stamps)
            total += len(stamps)

    async def _answer_sessions(self, triggers: list[dict[str, Any]]) -> None:
        """Make sure each session trigger's first activity went out; mark those that did."""
        if self._answers is None:
            return
        wanted = [t for t in triggers if first_activity(t) is not None]
        posted = await asyncio.gather(*(self._answers.settle(t) for t in wanted))
        for trigger, went_out in zip(wanted, posted, strict=True):
            if went_out:
                trigger["acked"] = True

    def _pending(self) -> list[sa.Row[Any]]:
        with self._engine.connect() as conn:
            return pending_dispatch(conn)

    def _paused(self) -> bool:
        with self._engine.connect() as conn:
            return intake_pause.paused(conn) is not None

    def _revoked(self) -> bool:
        with self._engine.connect() as conn:
            return access.is_revoked(conn)

    def _mark_revoked(self, trigger: dict[str, Any]) -> None:
        context = trigger.get("context") or {}
        with self._engine.begin() as conn:
            access.mark_revoked(
                conn,
                reason=str(trigger.get("reason") or "the Linear app was revoked"),
                oauth_client_id=context.get("oauth_client_id"),
            )

    def _stamp(self, stamps: list[tuple[int, str]]) -> None:
        with self._engine.begin() as conn:
            for seq, workflow_id in stamps:
                mark_dispatched(conn, seq, workflow_id)

    async def _settle(self) -> None:
        """Wait until no wake-up came for ``quiet_seconds``, or ``max_delay_seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_delay
        while loop.time() < deadline:
            self.wake.clear()
            try:
                async with asyncio.timeout(self._quiet):
                    await self.wake.wait()
            except TimeoutError:
                return

    async def _loop(self) -> None:
        while not self._stopping:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
            # arrives as the wake-up fires, and stop() then waits for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self.wake.wait()
            await self._settle()
            self.wake.clear()
            try:
                count = await self.drain_once()
                if count:
                    log.debug("dispatched triggers", count=count)
            except Exception as exc:  # keep the loop alive; the rows stay in the outbox
                log.error("dispatch failed; will retry", error=repr(exc))
                await asyncio.sleep(1.0)
