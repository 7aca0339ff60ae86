"""Deterministic identifiers.

Linear accepts a client-chosen ``id`` "in UUID v4 format" on create mutations. Deriving it
from stable inputs (parent issue id + sub-task key, issue id + purpose) makes a retried
create idempotent: the second attempt names the same entity instead of making another.
"""

from __future__ import annotations

import hashlib
import uuid


def stable_uuid4(*parts: str) -> str:
    """A UUID with v4 version and variant bits whose other bits hash ``parts``.

    Same parts, same id; any change in any part gives a different id. Parts are joined
    with a separator that cannot occur in ordinary ids, so ``("ab", "c")`` and
    ``("a", "bc")`` differ.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def stable_key(*parts: str) -> str:
    """A short hex digest of ``parts`` for keys that need not look like UUIDs."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
