"""``POST /webhooks/linear``: verify, classify, store durably, then answer.

Order of checks (each refusal logged once with the delivery id and the reason, never the
secret or the body): draining 503; body over the cap 413 (without reading the rest);
signature 401; not a JSON object 400; missing, stale or future ``webhookTimestamp`` in the
signed body 401 (the unsigned ``Linear-Timestamp`` header is never read). Then the event is
classified and committed, and only then answered 200 with ``accepted``, ``duplicate`` or
``ignored``; a store that cannot commit answers 503 so Linear retries. An accepted event is
handed to ``on_accepted`` (as the trigger it becomes) right after its commit: that is how
an agent session gets its first activity before anything else happens.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from pydantic_core import from_json
from starlette.requests import Request
from starlette.responses import JSONResponse

from edge_worker.storage.events import EventRecord, IntakeWriter, StoreUnavailable
from edge_worker.webhooks.decisions import Decision, Kind, Rules
from edge_worker.webhooks.lifecycle import issue_team_id
from edge_worker.webhooks.triggers import classify
from edge_worker.webhooks.verify import body_freshness_problem, signature_matches

log = structlog.get_logger(__name__)


class BodyTooLarge(Exception):
    """The request body exceeds the cap."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, delivery: str, reason: str, **known: str | None) -> JSONResponse:
    log.warning("webhook refused", delivery_id=delivery, status=status, reason=reason, **known)
    return JSONResponse({"error": reason}, status_code=status)


class WebhookIntake:
    """The request handler, holding what it needs: secret, rules, writer, limits."""

    def __init__(
        self,
        *,
        secret: bytes,
        rules: Rules,
        writer: IntakeWriter,
        max_body_bytes: int,
        tolerance_seconds: float,
        is_active: Callable[[str], Any],
        is_draining: Callable[[], bool],
        clock: Callable[[], float] = time.time,
        on_result: Callable[[str, float], None] | None = None,
        on_accepted: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._secret = secret
        self._rules = rules
        self._writer = writer
        self._max_body = max_body_bytes
        self._tolerance = tolerance_seconds
        self._is_active = is_active
        self._is_draining = is_draining
        self._clock = clock
        self._on_result = on_result
        self._on_accepted = on_accepted

    async def __call__(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        response, result = await self._handle(request)
        if self._on_result is not None:
            self._on_result(result, time.perf_counter() - started)
        return response

    async def _handle(self, request: Request) -> tuple[JSONResponse, str]:
        """The answer, and the result it is counted under (an outcome or the status)."""
        delivery = request.headers.get("linear-delivery", "")
        if self._is_draining():
            response = _refuse(503, delivery, "draining: shutting down")
            response.headers["retry-after"] = "30"
            return response, "503"
        try:
            body = await read_capped(request, self._max_body)
        except BodyTooLarge:
            return _refuse(413, delivery, f"body larger than {self._max_body} bytes"), "413"
        if not signature_matches(self._secret, body, request.headers.get("linear-signature")):
            return _refuse(401, delivery, "bad or missing Linear-Signature"), "401"
        try:
            payload = from_json(body)  # pydantic's parser: half the time of json.loads here
        except ValueError:
            return _refuse(400, delivery, "body is not JSON"), "400"
        if not isinstance(payload, dict):
            return _refuse(400, delivery, "body is not a JSON object"), "400"
        if problem := body_freshness_problem(payload, self._clock() * 1000.0, self._tolerance):
            return _refuse(401, delivery, problem), "401"
        if not delivery:
            delivery = "sha256:" + hashlib.sha256(body).hexdigest()
        decision = classify(payload, self._rules)
        if (
            decision.only_if_active
            and decision.issue_id
            and not await self._is_active(decision.issue_id)
        ):
            decision = Decision(
                Kind.IGNORE,
                "not an issue we work on",
                issue_id=decision.issue_id,
                issue_identifier=decision.issue_identifier,
            )
        return await self._store(delivery, payload, decision)

    async def _store(
        self, delivery: str, payload: dict[str, Any], decision: Decision
    ) -> tuple[JSONResponse, str]:
        record = EventRecord(
            delivery_id=delivery,
            decision=decision.kind.value,
            reason=decision.reason,
            dedupe_key=decision.dedupe_key if decision.acts else None,
            event_type=str(payload.get("type"))[:100],
            action=str(payload.get("action"))[:100],
            issue_id=decision.issue_id,
            issue_identifier=decision.issue_identifier,
            detail=_detail(decision, payload) if decision.acts else None,
        )
        # The delivery id and issue are passed to the two lines below, not bound with
        # contextvars: binding cost more than the rest of the logging at load.
        issue = decision.issue_identifier or decision.issue_id
        try:
            outcome = await self._writer.submit(record)
        except StoreUnavailable as exc:
            refusal = _refuse(503, delivery, f"store unavailable: {exc}", issue=issue)
            return refusal, "store_unavailable"
        if outcome == "accepted" and self._on_accepted is not None and record.detail:
            self._on_accepted(
                {
                    "kind": record.decision,
                    "dedupe_key": record.dedupe_key,
                    "issue_id": record.issue_id,
                    **record.detail,
                }
            )
        log.info(
            "webhook stored",
            delivery_id=delivery,
            issue=issue,
            outcome=outcome,
            decision=decision.kind.value,
            reason=decision.reason,
        )
        response = JSONResponse(
            {"status": outcome, "decision": decision.kind.value, "reason": decision.reason}
        )
        return response, outcome


def _detail(decision: Decision, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        # The issue's team: a PermissionChange that removes the team stops its work.
        "team_id": issue_team_id(payload),
        "session_id": decision.session_id,
        "actor_id": decision.actor_id,
        "actor_name": decision.actor_name,
        "text": decision.text,
        "context": decision.context,
    }
