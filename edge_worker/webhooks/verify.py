"""Webhook authenticity and freshness (sans-I/O).

Linear signs each delivery with ``Linear-Signature``: the hex HMAC-SHA256 of the raw
request body under the webhook's signing secret. ``webhookTimestamp`` in the body (ms
since the epoch) says when it was sent; a delivery more than the tolerance away from now
is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any


def sign(secret: bytes, body: bytes) -> str:
    """The ``Linear-Signature`` value for ``body``."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_matches(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body``; compared in constant time."""
    if not header:
        return False
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def event_timestamp_ms(payload: dict[str, Any], header: str | None) -> float | None:
    """The delivery's timestamp in ms: ``webhookTimestamp`` from the body, else the header.

    Returns ``None`` when neither is present or parseable.
    """
    candidate: Any = payload.get("webhookTimestamp")
    if candidate is None:
        candidate = header
    if isinstance(candidate, bool):
        return None
    try:
        return float(candidate) if candidate is not None else None
    except (TypeError, ValueError):
        return None


def freshness_problem(timestamp_ms: float | None, now_ms: float, tolerance_s: float) -> str | None:
    """Why a delivery is not fresh, or ``None`` when it is within the tolerance."""
    if timestamp_ms is None:
        return "missing webhookTimestamp"
    skew_s = (now_ms - timestamp_ms) / 1000.0
    if skew_s > tolerance_s:
        return f"stale by {skew_s:.0f}s"
    if -skew_s > tolerance_s:
        return f"from the future by {-skew_s:.0f}s"
    return None
