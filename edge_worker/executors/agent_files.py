"""MCP servers and per-run files for the local agent CLIs, in each CLI's own format.

Contract:
- :func:`mcp_servers_for` gives the servers a run gets: the task profile's, plus, when the
  profile allows (``repository_mcp_json``), those of the repository's own ``.mcp.json``
  (``{"mcpServers": {name: {command, args, env} | {url, headers}}}``) not named by the
  profile. A repository's file cannot reach the daemon's environment: the variable names
  it refers to (``"${NAME}"`` values) are honoured only when the profile's ``pass_env``
  names them; other entries of its ``env`` and ``headers`` are dropped.
- Renderers (pure) never hold a secret: they refer to environment variables by name, and
  :func:`env_names_for` lists the names the CLI's environment must carry:
  :func:`claude_mcp_config` (``--mcp-config`` file; ``${NAME}`` expansion),
  :func:`gemini_mcp_servers` (settings ``mcpServers``; ``$NAME`` expansion),
  :func:`codex_config_toml` (``[mcp_servers.<name>]`` with ``env_vars`` and
  ``env_http_headers``).
- :func:`write_private` writes a file mode 0600 under a directory the caller keeps outside
  the worktree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from edge_worker.agent_config import AgentProfile, McpServer
from edge_worker.executors.base import ExecutorUnavailable

log = structlog.get_logger(__name__)

REPOSITORY_MCP_FILE = ".mcp.json"
_REFERENCE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")


def mcp_servers_for(profile: AgentProfile | None, workdir: Path) -> dict[str, McpServer]:
    """The MCP servers of a run in ``workdir`` under ``profile``."""
    if profile is None:
        return {}
    servers = dict(profile.mcp_servers)
    if profile.repository_mcp_json:
        passable = set(profile.pass_env or [])
        for name, server in _repository_servers(workdir / REPOSITORY_MCP_FILE, passable).items():
            servers.setdefault(name, server)
    return servers


def env_names_for(profile: AgentProfile | None, servers: Mapping[str, McpServer]) -> list[str]:
    """Environment variable names the CLI gets: the profile's ``pass_env`` and what the
    servers need."""
    names = list((profile.pass_env or []) if profile else [])
    for server in servers.values():
        names += server.env_names
    return list(dict.fromkeys(names))


def claude_mcp_config(servers: Mapping[str, McpServer]) -> dict[str, Any]:
    """Claude Code's ``--mcp-config`` JSON."""
    rendered: dict[str, Any] = {}
    for name, server in servers.items():
        if server.url is not None:
            rendered[name] = {
                "type": "http",
                "url": server.url,
                "headers": {h: f"${{{var}}}" for h, var in server.headers.items()},
            }
        else:
            rendered[name] = {
                "command": server.command,
                "args": server.args,
                "env": {var: f"${{{var}}}" for var in server.env},
            }
    return {"mcpServers": rendered}


def gemini_mcp_servers(servers: Mapping[str, McpServer]) -> dict[str, Any]:
    """The Gemini CLI's settings ``mcpServers``."""
    rendered: dict[str, Any] = {}
    for name, server in servers.items():
        if server.url is not None:
            rendered[name] = {
                "httpUrl": server.url,
                "headers": {h: f"${var}" for h, var in server.headers.items()},
            }
        else:
            rendered[name] = {
                "command": server.command,
                "args": server.args,
                "env": {var: f"${var}" for var in server.env},
            }
    return rendered


def codex_config_toml(servers: Mapping[str, McpServer]) -> str:
    """Codex's ``config.toml`` with one ``[mcp_servers.<name>]`` table per server."""
    lines: list[str] = []
    for name, server in servers.items():
        lines.append(f"[mcp_servers.{_toml_key(name)}]")
        if server.url is not None:
            lines.append(f"url = {_toml_str(server.url)}")
            if server.headers:
                pairs = ", ".join(
                    f"{_toml_str(h)} = {_toml_str(var)}" for h, var in server.headers.items()
                )
                lines.append(f"env_http_headers = {{ {pairs} }}")
        else:
            lines.append(f"command = {_toml_str(server.command or '')}")
            lines.append("args = [" + ", ".join(_toml_str(a) for a in server.args) + "]")
            if server.env:
                lines.append("env_vars = [" + ", ".join(_toml_str(v) for v in server.env) + "]")
        lines.append("")
    return "\n".join(lines)


SettingsT = TypeVar("SettingsT", bound=BaseModel)


def with_profile(
    settings: SettingsT, profile: AgentProfile | None, *, permission_field: str | None = None
) -> SettingsT:
    """``settings`` with what ``profile`` says of model, tools and permission mode (only
    the fields ``settings`` has)."""
    if profile is None:
        return settings
    fields = type(settings).model_fields
    wanted: dict[str, Any] = {
        "model": profile.model,
        "allowed_tools": profile.allowed_tools,
        "disallowed_tools": profile.disallowed_tools,
    }
    if permission_field:
        wanted[permission_field] = profile.permission_mode
    update = {k: v for k, v in wanted.items() if v is not None and k in fields}
    if not update:
        return settings
    try:
        return type(settings).model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        fields_named = _fields_of(exc).replace(permission_field or "\0", "permission_mode")
        raise ExecutorUnavailable(UNSUITABLE_PROFILE.format(fields=fields_named)) from exc


UNSUITABLE_PROFILE = "the agent configuration's {fields} does not suit this CLI"


def _fields_of(error: ValidationError) -> str:
    names = [str(item["loc"][0]) for item in error.errors() if item.get("loc")]
    return ", ".join(dict.fromkeys(names)) or "settings"


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by the owner only; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _repository_servers(path: Path, passable: set[str]) -> dict[str, McpServer]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("agent_files.bad_repository_mcp_json", error=str(exc))
        return {}
    entries = data.get("mcpServers") if isinstance(data, dict) else None
    servers: dict[str, McpServer] = {}
    for name, entry in (entries or {}).items():
        if not isinstance(entry, dict):
            continue
        env = [var for value in (entry.get("env") or {}).values() if (var := _ref(value, passable))]
        headers = {
            str(header): var
            for header, value in (entry.get("headers") or {}).items()
            if (var := _ref(value, passable))
        }
        try:
            servers[str(name)] = McpServer(
                command=entry.get("command"),
                args=[str(a) for a in entry.get("args") or []],
                url=entry.get("url") or entry.get("httpUrl"),
                env=env,
                headers=headers,
            )
        except ValueError as exc:
            log.warning("agent_files.skipped_repository_server", server=name, error=str(exc))
    return servers


def _ref(value: Any, passable: set[str]) -> str | None:
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return match.group(1) if match and match.group(1) in passable else None


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_str(name)
