"""``POST /webhooks/github``: verify, understand, store durably, then answer.

Contract (same durability rules as Linear's intake):
- Refusals: body over the cap 413; bad or missing ``X-Hub-Signature-256`` 401 (forged);
  missing ``X-GitHub-Delivery`` 400; not a JSON object 400. Each is logged once with the
  delivery id and the reason, never the secret or the body.
- Feedback (see :mod:`edge_worker.delivery.github_events`) on an issue the daemon worked on
  is stored in the webhook outbox as a ``follow_up`` to that issue's session, with
  ``github:<delivery>`` as both delivery id and dedupe key, and answered 200 only after the
  commit: a redelivery (replay) is a ``duplicate``, a store that cannot commit answers 503
  so GitHub retries. The dispatcher then hands it to the orchestration like a Linear
  prompt, which resumes that sub-task's session, verifies again and pushes again.
- Merged / closed: the :func:`~edge_worker.delivery.pull_request_closed.pull_request_closed`
  workflow is started under an id derived from the delivery (DBOS records it before this
  answers 200; a redelivery finds it and starts nothing), and the event is recorded.
- Anything else is recorded as ignored, with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import sqlalchemy as sa
import structlog
from dbos import DBOS, SetWorkflowID
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import JSONResponse

from edge_worker.delivery.github_events import PullRequestEvent, classify, signature_valid
from edge_worker.delivery.pull_request_closed import pull_request_closed, workflow_id
from edge_worker.storage.events import EventRecord, IntakeWriter, StoreUnavailable
from edge_worker.storage.work import work_items
from edge_worker.webhooks.intake import BodyTooLarge, read_capped

log = structlog.get_logger(__name__)

Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]
"""Issue identifier → ``{"issue_id", "session_id"}`` of the daemon's work on it, or None."""


def _refuse(status: int, delivery: str, reason: str) -> JSONResponse:
    log.warning("github webhook refused", delivery_id=delivery, status=status, reason=reason)
    return JSONResponse({"error": reason}, status_code=status)


class GitHubIntake:
    """The request handler for GitHub's webhooks."""

    def __init__(
        self,
        *,
        secret: bytes,
        writer: IntakeWriter,
        lookup: Lookup,
        own_logins: Collection[str],
        max_body_bytes: int,
    ) -> None:
        self._secret = secret
        self._writer = writer
        self._lookup = lookup
        self._own = tuple(own_logins)
        self._max_body = max_body_bytes

    async def __call__(self, request: Request) -> JSONResponse:
        delivery = request.headers.get("x-github-delivery", "")
        try:
            body = await read_capped(request, self._max_body)
        except BodyTooLarge:
            return _refuse(413, delivery, f"body larger than {self._max_body} bytes")
        if not signature_valid(self._secret, body, request.headers.get("x-hub-signature-256")):
            return _refuse(401, delivery, "bad or missing X-Hub-Signature-256")
        if not delivery:
            return _refuse(400, delivery, "missing X-GitHub-Delivery")
        try:
            payload = from_json(body)
        except ValueError:
            return _refuse(400, delivery, "body is not JSON")
        if not isinstance(payload, dict):
            return _refuse(400, delivery, "body is not a JSON object")
        name = request.headers.get("x-github-event", "")
        event = classify(name, payload, self._own)
        work = await self._lookup(event.issue_identifier) if event.issue_identifier else None
        if event.action != "ignore" and work is None:
            event = PullRequestEvent("ignore", "no work of the daemon on that issue")
        key = f"github:{delivery}"
        record = EventRecord(
            delivery_id=key,
            decision="follow_up" if event.action == "feedback" else "ignore",
            reason=event.reason,
            dedupe_key=key if event.action == "feedback" else None,
            event_type=f"github:{name}"[:100],
            action=str(payload.get("action"))[:100],
            issue_id=work["issue_id"] if work else None,
            issue_identifier=event.issue_identifier,
            detail=_detail(event, work) if event.action == "feedback" and work else None,
        )
        if event.action in ("merged", "closed") and work is not None:
            closed = {
                "issue_id": work["issue_id"],
                "key": event.key,
                "merged": event.action == "merged",
                "url": event.url,
                "number": event.number,
                "sub_issue_identifier": event.sub_issue_identifier,
            }
            with SetWorkflowID(workflow_id(delivery)):
                await DBOS.start_workflow_async(pull_request_closed, closed)
        try:
            outcome = await self._writer.submit(record)
        except StoreUnavailable as exc:
            return _refuse(503, delivery, f"store unavailable: {exc}")
        log.info(
            "github webhook stored",
            delivery_id=delivery,
            outcome=outcome,
            action=event.action,
            reason=event.reason,
            issue=event.issue_identifier,
        )
        return JSONResponse({"status": outcome, "action": event.action, "reason": event.reason})


def _detail(event: PullRequestEvent, work: dict[str, Any]) -> dict[str, Any]:
    return {
        "team_id": None,
        "session_id": work.get("session_id"),
        "actor_id": None,
        "actor_name": event.sender or "GitHub",
        "text": event.text,
        "context": {},
    }


def github_webhook(settings: Any, state: Any) -> Callable[[Request], Awaitable[JSONResponse]]:
    """The route handler, built on first use from the daemon's ``state`` (its engine and
    intake writer exist once the lifespan started); 503 while draining or starting."""
    secret = settings.github.webhook_secret
    handler: GitHubIntake | None = None

    async def lookup(identifier: str) -> dict[str, Any] | None:
        engine = state.engine

        def query() -> dict[str, Any] | None:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.select(work_items.c.issue_id, work_items.c.session_id).where(
                        work_items.c.issue_identifier == identifier
                    )
                ).first()
            return {"issue_id": row.issue_id, "session_id": row.session_id} if row else None

        return await asyncio.to_thread(query)

    async def receive(request: Request) -> JSONResponse:
        nonlocal handler
        if state.draining or state.writer is None or state.engine is None:
            response = _refuse(503, request.headers.get("x-github-delivery", ""), "not ready")
            response.headers["retry-after"] = "30"
            return response
        if handler is None:
            handler = GitHubIntake(
                secret=secret.get_secret_value().encode() if secret else b"",
                writer=state.writer,
                lookup=lookup,
                own_logins=settings.github.own_logins,
                max_body_bytes=settings.webhook.max_body_bytes,
            )
        return await handler(request)

    return receive
