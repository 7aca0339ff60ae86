"""Loopback stand-ins for the alert channels: Slack's incoming webhook, Telegram's Bot API
``sendMessage`` and a generic receiver that checks the HMAC signature.

Contract: :func:`alert_receivers_app` serves
- ``POST /slack/services/{path}``: Slack incoming webhook; a JSON ``{"text"}`` answers
  ``200 ok`` (anything else ``400 invalid_payload``, as Slack does);
- ``POST /telegram/bot{token}/sendMessage``: Telegram; the token must equal the configured
  one (else ``401``), ``chat_id`` and ``text`` required (else ``400``), answers
  ``{"ok": true, "result": {...}}``;
- ``POST /webhook``: checks ``X-Edge-Worker-Signature`` over timestamp and body with the
  configured secret (``401`` when it does not match).
Accepted messages are appended to :attr:`AlertInbox.received` as ``(channel, payload)``.
``AlertInbox.fail_next[channel]`` makes the next N requests of a channel answer 503.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from edge_worker.alerts.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches

_EMPTY_TEXT = "Bad Request: message text is empty"


@dataclass
class AlertInbox:
    """What the receivers accepted, and failures to script."""

    telegram_token: str
    webhook_secret: str
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for name, payload in self.received if name == channel]

    def _count(self, channel: str) -> bool:
        """Count a request; True when it is scripted to fail."""
        with self.lock:
            self.requests[channel] = self.requests.get(channel, 0) + 1
            if self.fail_next.get(channel, 0) > 0:
                self.fail_next[channel] -= 1
                return True
            return False

    def _accept(self, channel: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.received.append((channel, payload))


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        payload = json.loads(await request.body())
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def alert_receivers_app(inbox: AlertInbox) -> Starlette:
    """The three receivers over ``inbox``."""

    async def slack(request: Request) -> Response:
        if inbox._count("slack"):
            return PlainTextResponse("service_unavailable", status_code=503)
        payload = await _json_object(request)
        if payload is None or not isinstance(payload.get("text"), str):
            return PlainTextResponse("invalid_payload", status_code=400)
        inbox._accept("slack", payload)
        return PlainTextResponse("ok")

    async def telegram(request: Request) -> Response:
        if inbox._count("telegram"):
            return JSONResponse({"ok": False, "error_code": 503}, status_code=503)
        if request.path_params["token"] != inbox.telegram_token:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        payload = await _json_object(request)
        if payload is None or not payload.get("chat_id") or not payload.get("text"):
            return JSONResponse(
                {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: message text is empty",
                },
                status_code=400,
            )
        inbox._accept("telegram", payload)
        return JSONResponse(
            {
                "ok": True,
                "result": {"message_id": len(inbox.of("telegram")), "text": payload["text"]},
            }
        )

    async def webhook(request: Request) -> Response:
        if inbox._count("webhook"):
            return PlainTextResponse("unavailable", status_code=503)
        body = await request.body()
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not signature_matches(inbox.webhook_secret, stamp, body, given):
            return PlainTextResponse("bad signature", status_code=401)
        payload = await _json_object(request)
        if payload is None:
            return PlainTextResponse("not json", status_code=400)
        inbox._accept("webhook", payload)
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/slack/services/{path:path}", slack, methods=["POST"]),
            Route("/telegram/bot{token}/sendMessage", telegram, methods=["POST"]),
            Route("/webhook", webhook, methods=["POST"]),
        ]
    )
