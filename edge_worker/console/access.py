"""Who may see the console (sans-I/O apart from reading the token file).

Contract:
- The console is off unless a token is configured: ``EDGE_WORKER_CONSOLE__TOKEN``, or
  ``EDGE_WORKER_CONSOLE__TOKEN_FILE`` naming a file that holds it (:func:`load_token`).
- A request is let in when it carries ``Authorization: Bearer <token>`` or the session
  cookie the login form sets: an HMAC of a fixed label under the token, so the cookie
  never contains the token and changing the token ends every session. A token in the URL
  is never accepted.
- Comparisons are constant-time; refusals are logged by the caller without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

TOKEN_ENV = "EDGE_WORKER_CONSOLE__TOKEN"
TOKEN_FILE_ENV = "EDGE_WORKER_CONSOLE__TOKEN_FILE"
COOKIE_NAME = "ew_console"
SESSION_LABEL = b"edge-worker console session v1"
MIN_TOKEN_LENGTH = 16


class ConsoleConfigError(ValueError):
    """The console's token is configured but unusable."""


def load_token(environ: dict[str, str] | None = None) -> str | None:
    """The console token, or ``None`` when the console is not configured (off).

    Raises :class:`ConsoleConfigError` for a token file that cannot be read or a token
    shorter than :data:`MIN_TOKEN_LENGTH` characters.
    """
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV)
    path = env.get(TOKEN_FILE_ENV)
    if not token and path:
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ConsoleConfigError(
                f"{TOKEN_FILE_ENV}: cannot read {path} ({exc.strerror})"
            ) from None
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConsoleConfigError(
            f"the console token must be at least {MIN_TOKEN_LENGTH} characters"
        )
    return token


def session_value(token: str) -> str:
    """The session cookie's value for ``token``."""
    return hmac.new(token.encode(), SESSION_LABEL, hashlib.sha256).hexdigest()


def bearer_ok(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>``."""
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def cookie_ok(value: str | None, token: str) -> bool:
    """True when ``value`` is the session cookie for ``token``."""
    return bool(value) and hmac.compare_digest(str(value).encode(), session_value(token).encode())


def token_ok(candidate: str, token: str) -> bool:
    """True when the login form's ``candidate`` is the token."""
    return hmac.compare_digest(candidate.strip().encode(), token.encode())
