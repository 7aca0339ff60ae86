"""Errors the Linear client raises.

Contract: every failure the client cannot recover from is a :class:`LinearError` whose
``str()`` is a one-line message fit for a log or a comment and never contains a secret.
"""

from __future__ import annotations

from typing import Any


class LinearError(Exception):
    """Base class for Linear client failures."""


class LinearAuthError(LinearError):
    """Credentials are missing, were refused, or could not be exchanged for a token."""


class LinearRequestError(LinearError):
    """Linear refused the request (a GraphQL or 4xx error); retrying will not help.

    ``message`` is Linear's own (``userPresentableMessage`` when given), ``code`` its
    ``extensions.code`` (e.g. ``INVALID_INPUT``), ``status`` the HTTP status.
    """

    def __init__(
        self,
        operation: str,
        message: str,
        *,
        status: int,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"Linear {operation} failed ({status}): {message}")
        self.operation = operation
        self.message = message
        self.status = status
        self.code = code
        self.errors = errors or []


class LinearUnavailable(LinearError):
    """Linear kept failing (network errors, 5xx, or rate limits) past the retry bounds."""
