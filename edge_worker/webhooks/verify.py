"""Webhook authenticity and freshness (sans-I/O).

Linear signs each delivery with ``Linear-Signature``: the hex HMAC-SHA256 of the raw
request body under the webhook's signing secret. ``webhookTimestamp`` in the body (ms
since the epoch) says when it was sent; a delivery more than the tolerance away from now
is refused, so a captured request cannot be replayed later.

Freshness is read from the signed body only: the ``Linear-Timestamp`` header is not
covered by the signature, so anyone replaying a captured body could set it to "now". A
body without ``webhookTimestamp`` is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import math
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


MISSING_TIMESTAMP = "missing webhookTimestamp in the signed body"
BAD_TIMESTAMP = "webhookTimestamp is not a number of milliseconds"


def event_timestamp_ms(payload: dict[str, Any]) -> float | None:
    """The signed body's ``webhookTimestamp`` in ms, or ``None`` when absent or unusable."""
    candidate: Any = payload.get("webhookTimestamp")
    if isinstance(candidate, bool) or not isinstance(candidate, int | float):
        return None
    value = float(candidate)
    return value if math.isfinite(value) else None


def body_freshness_problem(
    payload: dict[str, Any], now_ms: float, tolerance_s: float
) -> str | None:
    """Why the signed body ``payload`` is not fresh, or ``None`` when it is.

    Missing, non-numeric, stale or future ``webhookTimestamp`` values each have their own
    one-line reason (the answer's ``error``).
    """
    if "webhookTimestamp" not in payload or payload["webhookTimestamp"] is None:
        return MISSING_TIMESTAMP
    stamp = event_timestamp_ms(payload)
    if stamp is None:
        return BAD_TIMESTAMP
    return freshness_problem(stamp, now_ms, tolerance_s)


def freshness_problem(timestamp_ms: float | None, now_ms: float, tolerance_s: float) -> str | None:
    """Why a delivery is not fresh, or ``None`` when it is within the tolerance."""
    if timestamp_ms is None:
        return MISSING_TIMESTAMP
    skew_s = (now_ms - timestamp_ms) / 1000.0
    if skew_s > tolerance_s:
        return f"stale by {skew_s:.0f}s"
    if -skew_s > tolerance_s:
        return f"from the future by {-skew_s:.0f}s"
    return None
