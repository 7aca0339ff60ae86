"""Who may see the console and who may act from it (sans-I/O apart from reading files).

Contract:
- The console is off unless an operator token is configured (``settings.console``):
  ``EDGE_WORKER_CONSOLE__TOKEN`` or ``EDGE_WORKER_CONSOLE__TOKEN_FILE`` (a file holding
  it, which wins). An optional read-only token, ``EDGE_WORKER_CONSOLE__VIEWER_TOKEN`` (or
  ``..._VIEWER_TOKEN_FILE``), lets people see every page but use no control. Tokens are
  at least :data:`MIN_TOKEN_LENGTH` characters.
- A request is let in with ``Authorization: Bearer <token>`` or the session cookie the
  login form sets: ``<role>.<HMAC of a fixed label under that role's token>``, so the
  cookie never contains a token and changing a token ends its sessions. A token in the
  URL is never accepted.
- Controls need the operator role and the CSRF value of the session (an HMAC under the
  operator token with another label) in the form; comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from edge_worker.settings import ConsoleSettings

Role = Literal["operator", "viewer"]

TOKEN_ENV = "EDGE_WORKER_CONSOLE__TOKEN"
TOKEN_FILE_ENV = "EDGE_WORKER_CONSOLE__TOKEN_FILE"
VIEWER_TOKEN_ENV = "EDGE_WORKER_CONSOLE__VIEWER_TOKEN"
VIEWER_TOKEN_FILE_ENV = "EDGE_WORKER_CONSOLE__VIEWER_TOKEN_FILE"
COOKIE_NAME = "ew_console"
SESSION_LABEL = b"edge-worker console session v1 "
CSRF_LABEL = b"edge-worker console csrf v1 "
MIN_TOKEN_LENGTH = 16


class ConsoleConfigError(ValueError):
    """A console token is configured but unusable."""


def _read(secret: SecretStr | None, path: Path | None, name: str, file_name: str) -> str | None:
    token = secret.get_secret_value() if secret is not None else None
    if path is not None:
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConsoleConfigError(f"{file_name}: cannot read {path} ({exc.strerror})") from None
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConsoleConfigError(
            f"{name}: a console token must be at least {MIN_TOKEN_LENGTH} characters"
        )
    return token


def _mac(key: str, label: bytes) -> str:
    return hmac.new(key.encode(), label, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Tokens:
    """The configured tokens: the operator's, and the viewers' when there is one."""

    operator: str
    viewer: str | None = None

    def __post_init__(self) -> None:
        if self.viewer is not None and _same(self.viewer, self.operator):
            raise ConsoleConfigError("the viewer token must differ from the operator token")

    def _by_role(self) -> list[tuple[Role, str]]:
        pairs: list[tuple[Role, str]] = [("operator", self.operator)]
        if self.viewer is not None:
            pairs.append(("viewer", self.viewer))
        return pairs

    def role_of_token(self, candidate: str) -> Role | None:
        """The role ``candidate`` (a token typed or sent) grants, if any."""
        found: Role | None = None
        for role, token in self._by_role():  # no early exit: same work for every answer
            if _same(candidate.strip(), token):
                found = role
        return found

    def role_of_bearer(self, header: str | None) -> Role | None:
        """The role of an ``Authorization: Bearer <token>`` header, if any."""
        if not header or not header.lower().startswith("bearer "):
            return None
        return self.role_of_token(header[7:])

    def cookie_for(self, role: Role) -> str:
        """The session cookie's value for ``role``."""
        token = dict(self._by_role())[role]
        return f"{role}.{_mac(token, SESSION_LABEL + role.encode())}"

    def role_of_cookie(self, value: str | None) -> Role | None:
        """The role of a session cookie, if it is a valid one."""
        if not value or "." not in value:
            return None
        claimed = value.split(".", 1)[0]
        for role, _token in self._by_role():
            if role == claimed and _same(value, self.cookie_for(role)):
                return role
        return None

    def csrf(self) -> str:
        """The value a control's form must carry (only operators get forms)."""
        return _mac(self.operator, CSRF_LABEL)

    def csrf_ok(self, value: str | None) -> bool:
        """True when ``value`` is the CSRF value."""
        return bool(value) and _same(str(value), self.csrf())


def load_tokens(settings: ConsoleSettings) -> Tokens | None:
    """The configured tokens, or ``None`` when the console is off.

    Raises :class:`ConsoleConfigError` for an unreadable token file, a short token, a
    viewer token without an operator token, or the same token for both roles.
    """
    operator = _read(settings.token, settings.token_file, TOKEN_ENV, TOKEN_FILE_ENV)
    viewer = _read(
        settings.viewer_token, settings.viewer_token_file, VIEWER_TOKEN_ENV, VIEWER_TOKEN_FILE_ENV
    )
    if operator is None:
        if viewer is not None:
            raise ConsoleConfigError(f"{VIEWER_TOKEN_ENV} needs {TOKEN_ENV} as well")
        return None
    return Tokens(operator, viewer)
