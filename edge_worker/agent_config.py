"""Which agent runs an issue's sub-tasks, and how: layered configuration and per-issue choice
(sans-I/O; no imports from the rest of the project, so :mod:`edge_worker.settings` can use it).

Contract:
- :class:`AgentProfile` is one layer: every field optional (``None``: not said here).
  Layers apply in order defaults (``[agents]``) → repository (``[repositories.agents]``) →
  labels the issue carries (``[agents.labels."<label>"]``, then the repository's) → the
  issue's own tags; a later layer's fields win, ``mcp_servers`` and ``roles`` merge by name.
- :func:`issue_tags` reads ``[agent=NAME]`` and ``[model=NAME]`` from a description.
- :func:`resolve_agent` returns the merged :class:`AgentProfile`, or a user-facing
  ``error`` (one line, fit for the issue) when a label or tag names an executor that does
  not exist or is not allowed (``allowed_executors``), or a model not allowed
  (``allowed_models``). It never falls back to the default silently.
- :func:`for_role` narrows a profile to one role (``roles.<role>.executor/model`` win).
- MCP server secrets are never values here: ``env`` and ``headers`` name the daemon's
  environment variables the server needs; each CLI's config refers to them by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, model_validator

EXECUTOR_NAMES = ("claude-code", "codex", "gemini", "codegen")
EXECUTOR_ALIASES = {"claude": "claude-code", "claude-code": "claude-code", "codex": "codex"}
EXECUTOR_ALIASES |= {"gemini": "gemini", "codegen": "codegen"}
_TAG = re.compile(r"\[\s*(agent|model)\s*=\s*([^\]\s]+)\s*\]", re.IGNORECASE)

UNKNOWN_AGENT = (
    "This issue asks for agent `{name}` ({source}), which does not exist here; "
    "choose one of {choices}."
)
AGENT_NOT_ALLOWED = (
    "This issue asks for agent `{name}` ({source}), which is not allowed here; "
    "choose one of {choices}."
)
MODEL_NOT_ALLOWED = (
    "This issue asks for model `{name}` ({source}), which is not allowed here; "
    "choose one of {choices}."
)


class McpServer(BaseModel):
    """An MCP server given to the agent CLI: a local command (stdio) or a URL (HTTP)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = []
    url: str | None = None
    env: list[str] = []
    """Names of the daemon's environment variables the server gets (values never written)."""
    headers: dict[str, str] = {}
    """HTTP header -> name of the environment variable holding its value."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of `command` or `url`")
        return self

    @property
    def env_names(self) -> list[str]:
        """Every environment variable name this server needs from the daemon."""
        return list(dict.fromkeys([*self.env, *self.headers.values()]))


class RoleAgent(BaseModel):
    """The executor and model for one role (``scoper``, ``builder``, ``reviewer``...)."""

    model_config = ConfigDict(extra="forbid")

    executor: str | None = None
    model: str | None = None


class AgentProfile(BaseModel):
    """One layer of agent configuration; ``None`` fields leave earlier layers' values."""

    model_config = ConfigDict(extra="forbid")

    executor: str | None = None
    model: str | None = None
    roles: dict[str, RoleAgent] = {}
    allowed_tools: list[str] | None = None
    disallowed_tools: list[str] | None = None
    prompt_template: str | None = None
    """A file (absolute, or relative to ``prompts_dir``) replacing the role prompt."""
    append_instruction: str | None = None
    permission_mode: str | None = None
    """Claude Code ``--permission-mode``, Codex ``--sandbox``, Gemini ``--approval-mode``."""
    pass_env: list[str] | None = None
    """More of the daemon's environment variable names the CLI gets."""
    mcp_servers: dict[str, McpServer] = {}
    repository_mcp_json: bool | None = None
    """Whether the repository's own ``.mcp.json`` servers are given to the CLI too."""

    def over(self, base: AgentProfile) -> AgentProfile:
        """``base`` with this layer's said fields on top."""
        said = self.model_dump(exclude_unset=True, exclude_none=True)
        merged = base.model_copy(update=said)
        merged.mcp_servers = {**base.mcp_servers, **self.mcp_servers}
        roles = dict(base.roles)
        for role, agent in self.roles.items():
            roles[role] = RoleAgent(
                executor=agent.executor or roles.get(role, RoleAgent()).executor,
                model=agent.model or roles.get(role, RoleAgent()).model,
            )
        merged.roles = roles
        return merged


class AgentLayer(AgentProfile):
    """A layer that also maps Linear labels to layers of their own (configuration: an
    executor name it uses must exist, checked when the configuration loads)."""

    labels: dict[str, AgentProfile] = {}

    @model_validator(mode="after")
    def _known_executors(self) -> AgentLayer:
        for layer in [self, *self.labels.values()]:
            for name in [layer.executor, *(role.executor for role in layer.roles.values())]:
                if name and name.lower() not in EXECUTOR_ALIASES:
                    raise ValueError(
                        f"unknown executor {name!r}; expected one of {', '.join(EXECUTOR_NAMES)}"
                    )
        return self


class AgentPolicy(AgentLayer):
    """The defaults (``[agents]``) and what labels and tags may choose from."""

    allowed_executors: list[str] = []
    """Executors a label or tag may choose (empty: any that exists)."""
    allowed_models: list[str] = []
    """Models a label or tag may choose (empty: any)."""


class Resolution(BaseModel):
    """The merged profile for an issue, or why the issue's choice cannot be honoured."""

    profile: AgentProfile = AgentProfile()
    error: str | None = None


def issue_tags(description: str | None) -> dict[str, str]:
    """``{"agent": ..., "model": ...}`` from ``[agent=...]`` / ``[model=...]`` tags (last
    one wins)."""
    return {kind.lower(): value for kind, value in _TAG.findall(description or "")}


def resolve_agent(
    policy: AgentPolicy,
    repository: AgentLayer | None,
    *,
    labels: Iterable[str],
    description: str | None,
) -> Resolution:
    """The profile for an issue; see the module docstring."""
    layers: list[tuple[AgentProfile, str]] = [(_plain(policy), "defaults")]
    if repository is not None:
        layers.append((_plain(repository), "repository"))
    wanted = {label.strip().lower() for label in labels}
    for owner in (policy, repository):
        for label, layer in (owner.labels if owner is not None else {}).items():
            if label.strip().lower() in wanted:
                layers.append((layer, f"label “{label}”"))
    tags = issue_tags(description)
    if tags:
        layers.append((AgentProfile(executor=tags.get("agent"), model=tags.get("model")), "tag"))
    profile = AgentProfile()
    for layer, source in layers:
        chosen_by_user = source != "defaults" and source != "repository"
        if chosen_by_user:
            error = _check(policy, layer, source)
            if error:
                return Resolution(error=error)
        profile = layer.over(profile)
    if profile.executor:
        profile.executor = EXECUTOR_ALIASES.get(profile.executor.lower(), profile.executor)
    return Resolution(profile=profile)


def for_role(profile: AgentProfile, role: str) -> AgentProfile:
    """``profile`` with the role's own executor and model, when it names them."""
    agent = profile.roles.get(role)
    if agent is None:
        return profile
    executor = EXECUTOR_ALIASES.get((agent.executor or "").lower(), agent.executor)
    return profile.model_copy(
        update={"executor": executor or profile.executor, "model": agent.model or profile.model}
    )


def _plain(layer: AgentProfile) -> AgentProfile:
    return AgentProfile.model_validate(
        layer.model_dump(
            exclude={"labels", "allowed_executors", "allowed_models"}, exclude_unset=True
        )
    )


def _check(policy: AgentPolicy, layer: AgentProfile, source: str) -> str | None:
    allowed = [EXECUTOR_ALIASES.get(name.lower(), name) for name in policy.allowed_executors]
    for name in [layer.executor, *(role.executor for role in layer.roles.values())]:
        if not name:
            continue
        canonical = EXECUTOR_ALIASES.get(name.lower())
        choices = _choices(allowed or EXECUTOR_NAMES)
        if canonical is None:
            return UNKNOWN_AGENT.format(name=name, source=source, choices=choices)
        if allowed and canonical not in allowed:
            return AGENT_NOT_ALLOWED.format(name=name, source=source, choices=choices)
    if policy.allowed_models:
        for model in [layer.model, *(role.model for role in layer.roles.values())]:
            if model and model not in policy.allowed_models:
                return MODEL_NOT_ALLOWED.format(
                    name=model, source=source, choices=_choices(policy.allowed_models)
                )
    return None


def _choices(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)
