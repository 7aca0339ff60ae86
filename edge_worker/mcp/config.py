"""The MCP server's settings (``[mcp]`` in the TOML, ``EDGE_WORKER_MCP__*`` in the env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, SecretStr


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
        """The token callers must present, or ``None`` (the endpoint is off)."""
        if self.token_file is not None:
            text = self.token_file.expanduser().read_text().strip()
            return text or None
        if self.token is not None:
            return self.token.get_secret_value() or None
        return None
