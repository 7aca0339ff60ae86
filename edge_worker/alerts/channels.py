"""Alert channels: the request each one needs (sans-I/O) and the send over httpx.

Contract:
- :func:`build_request` returns the method-less POST (URL, headers, JSON body bytes) a
  channel expects: Slack incoming webhook ``{"text"}``, Telegram Bot API ``sendMessage``
  ``{"chat_id", "text"}`` at ``<api>/bot<token>/sendMessage``, or the generic webhook's
  JSON event signed with HMAC-SHA256 (:func:`signature`) over ``"<timestamp>.<body>"``.
- :func:`send` posts it; any failure raises :class:`ChannelError` whose message names the
  channel and an HTTP status or error class only, never the URL (Slack's URL and
  Telegram's path are credentials) nor a body.
- A channel's ``repr`` never shows its URL, token or secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Literal

import httpx

from edge_worker.alerts.events import SOURCE, AlertMessage

ChannelKind = Literal["slack", "telegram", "webhook"]

SIGNATURE_HEADER = "X-Edge-Worker-Signature"
TIMESTAMP_HEADER = "X-Edge-Worker-Timestamp"
KEY_HEADER = "X-Edge-Worker-Alert-Key"


class ChannelError(Exception):
    """A send that did not succeed; ``retryable`` when a later attempt may."""

    def __init__(self, channel: str, reason: str, *, retryable: bool) -> None:
        super().__init__(f"alert channel {channel}: {reason}")
        self.retryable = retryable


@dataclass(frozen=True)
class Channel:
    """One configured destination. ``url`` and ``secret`` are credentials."""

    name: str
    kind: ChannelKind
    url: str = field(repr=False)
    chat_id: str | None = None
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OutgoingRequest:
    url: str = field(repr=False)
    headers: dict[str, str]
    body: bytes


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signature_matches(secret: str, timestamp: str, body: bytes, given: str) -> bool:
    """Constant-time check of a received signature."""
    return hmac.compare_digest(signature(secret, timestamp, body), given)


def _json(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def build_request(channel: Channel, message: AlertMessage, timestamp: int) -> OutgoingRequest:
    """The POST ``channel`` expects for ``message`` (``timestamp``: Unix seconds)."""
    headers = {"Content-Type": "application/json"}
    if channel.kind == "slack":
        return OutgoingRequest(channel.url, headers, _json({"text": message.plain()}))
    if channel.kind == "telegram":
        body = _json(
            {"chat_id": channel.chat_id, "text": message.plain(), "disable_web_page_preview": True}
        )
        return OutgoingRequest(channel.url.rstrip("/") + "/sendMessage", headers, body)
    body = _json(
        {
            "source": SOURCE,
            "key": message.key,
            "kind": message.kind,
            "title": message.title,
            "text": message.text,
            "link": message.link,
            "timestamp": timestamp,
        }
    )
    stamp = str(timestamp)
    headers |= {TIMESTAMP_HEADER: stamp, KEY_HEADER: message.key}
    if channel.secret:
        headers[SIGNATURE_HEADER] = signature(channel.secret, stamp, body)
    return OutgoingRequest(channel.url, headers, body)


async def send(client: httpx.AsyncClient, channel: Channel, request: OutgoingRequest) -> None:
    """POST ``request``; raise :class:`ChannelError` (secret-free) unless it is accepted."""
    try:
        response = await client.post(request.url, content=request.body, headers=request.headers)
    except httpx.HTTPError as exc:
        raise ChannelError(channel.name, type(exc).__name__, retryable=True) from None
    status = response.status_code
    if status < 300:
        return
    retryable = status == 429 or status >= 500
    raise ChannelError(channel.name, f"HTTP {status}", retryable=retryable)
