"""The MCP server's settings (``[mcp]`` in the TOML, ``EDGE_WORKER_MCP__*`` in the env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, SecretStr

MIN_TOKEN_LENGTH = 16
TOKEN_ENV = "EDGE_WORKER_MCP__TOKEN"
TOKEN_FILE_ENV = "EDGE_WORKER_MCP__TOKEN_FILE"


class McpConfigError(ValueError):
    """The MCP token cannot be used; ``str()`` names the setting and what is wrong."""


class McpSettings(BaseModel):
    """The ``/mcp`` endpoint is off unless a bearer token is set (directly or as a file
    holding it; the file wins). ``team_id`` is the Linear team (its id) an issue is created
    in for work given as a bare description; ``repositories`` limits the repositories a
    caller may name (empty: every configured repository; in the env a JSON list);
    ``allow_commands`` lets the ``verify`` tool run commands the caller gives, not only the
    sub-task's own verification (they run on the daemon's machine: off by default)."""

    token: SecretStr | None = None
    token_file: Path | None = None
    team_id: str | None = None
    repositories: list[str] = []
    allow_commands: bool = False

    def bearer_token(self) -> str | None:
        """The token callers must present, or ``None`` (the endpoint is off); raises
        :class:`McpConfigError` for an unreadable file or a token shorter than 16."""
        name, token = TOKEN_ENV, None
        if self.token_file is not None:
            name = TOKEN_FILE_ENV
            try:
                token = self.token_file.expanduser().read_text().strip()
            except OSError as exc:
                raise McpConfigError(
                    f"{name}: cannot read {self.token_file}: {exc.strerror}"
                ) from None
        elif self.token is not None:
            token = self.token.get_secret_value().strip()
        if token is None:
            return None
        if len(token) < MIN_TOKEN_LENGTH:
            raise McpConfigError(
                f"{name}: the token must be at least {MIN_TOKEN_LENGTH} characters"
            )
        return token
