"""The first activity of every agent session trigger, posted as early as possible.

Linear expects an agent to answer a ``created`` or ``prompted`` session within seconds.
Contract:
- :func:`first_activity` says what answers a trigger at once: a ``thought`` for a start or
  a prompt, the ``error`` naming the reason for a refused session, nothing for a stop
  (its one activity is the final one) or a trigger without a session.
- :class:`FirstAnswers` posts it with the id ``first_activity_id(trigger)``: ``start``
  begins the post in the background the moment the trigger is committed (the intake
  calls it after its commit, before the queue, the claim or any Linear read), and
  ``settle`` (the dispatcher, before enqueuing) waits for that post, or makes it when
  none was begun, and returns whether it went out. Every post is bounded by ``timeout``
  seconds; one that failed is the trigger workflow's to make durably (same id: said once).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from edge_worker.ids import stable_uuid4
from edge_worker.linear.activities import ActivitySink
from edge_worker.orchestration import texts

log = structlog.get_logger(__name__)


def first_activity_id(trigger: dict[str, Any]) -> str:
    """The id of a session trigger's first activity: one id wherever it is posted from."""
    return stable_uuid4(str(trigger["dedupe_key"]), "first-activity")


def first_activity(trigger: dict[str, Any]) -> tuple[str, str] | None:
    """The activity that answers a session trigger at once (kind, body), or ``None``."""
    if not trigger.get("session_id"):
        return None
    kind = trigger.get("kind")
    if kind == "start":
        return "thought", texts.ACK_THOUGHT
    if kind == "follow_up":
        return "thought", texts.PROMPT_ACK
    if kind == "refuse":
        return "error", texts.refusal(trigger.get("context") or {})
    return None


class FirstAnswers:
    """Posts first activities in the background; see the module contract."""

    def __init__(
        self, linear: ActivitySink, *, timeout: float = 6.0, concurrency: int = 100
    ) -> None:
        self._linear = linear
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._posts: dict[str, asyncio.Task[bool]] = {}

    def start(self, trigger: dict[str, Any]) -> None:
        """Begin posting ``trigger``'s first activity (once; nothing if it needs none)."""
        if first_activity(trigger) is None or trigger["dedupe_key"] in self._posts:
            return
        self._posts[trigger["dedupe_key"]] = asyncio.get_running_loop().create_task(
            self._post(trigger)
        )

    async def settle(self, trigger: dict[str, Any]) -> bool:
        """Wait for ``trigger``'s first activity (posting it if nobody began to); True
        when it went out, False when it needs none or could not be posted."""
        if first_activity(trigger) is None:
            return False
        task = self._posts.pop(trigger["dedupe_key"], None)
        if task is None:
            return await self._post(trigger)
        return await task

    async def aclose(self) -> None:
        """Abandon posts not finished (their trigger workflows post them)."""
        for task in self._posts.values():
            task.cancel()
        await asyncio.gather(*self._posts.values(), return_exceptions=True)
        self._posts.clear()

    async def _post(self, trigger: dict[str, Any]) -> bool:
        found = first_activity(trigger)
        assert found is not None
        kind, body = found
        async with self._slots:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._linear.create_activity(
                        session_id=str(trigger["session_id"]),
                        content={"type": kind, "body": body},
                        id=first_activity_id(trigger),
                    )
            except Exception as exc:  # the trigger's workflow posts it (same id) instead
                log.warning(
                    "first activity not posted; the workflow will",
                    session_id=trigger["session_id"],
                    error=type(exc).__name__,
                )
                return False
        return True
