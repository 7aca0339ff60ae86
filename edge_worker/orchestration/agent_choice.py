"""The agent configuration of an issue's sub-tasks, from the settings and the issue (pure).

Contract:
- :func:`refusal` is the one-line reply for an issue whose labels or tags choose an
  executor or model that does not exist or is not allowed (``None``: nothing to refuse).
  The orchestration ends the issue with it before planning: nothing runs on a default the
  issue did not ask for.
- :func:`profile_for` is the :class:`~edge_worker.agent_config.AgentProfile` a sub-task of
  ``role`` runs with (its role's executor and model, a relative ``prompt_template`` made
  absolute under ``prompts_dir``); ``None`` when the configuration says nothing.
- :func:`forced_choice` turns the profile's executor into the sub-task's
  :class:`~edge_worker.orchestration.strategy.Choice` (``None``: the strategy chooses). A
  chosen executor that cannot run here fails the sub-task with the reason; no silent
  fallback to another agent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from edge_worker.agent_config import (
    AgentLayer,
    AgentProfile,
    Resolution,
    for_role,
    resolve_agent,
)
from edge_worker.orchestration.strategy import Choice
from edge_worker.settings import Repository, Settings

CHOSEN = "chosen by this issue's agent configuration: {executor}"
CHOSEN_UNAVAILABLE = (
    "this issue's agent configuration chooses {executor}, which cannot run here{detail}"
)


def resolution(
    settings: Settings, repository: Mapping[str, Any] | None, issue: Mapping[str, Any]
) -> Resolution:
    """The merged agent configuration for ``issue`` routed to ``repository``."""
    layer: AgentLayer | None = None
    if repository:
        layer = Repository.model_validate(repository).agents
    return resolve_agent(
        settings.agents,
        layer,
        labels=_label_names(issue.get("labels")),
        description=issue.get("description"),
    )


def refusal(
    settings: Settings, repository: Mapping[str, Any] | None, issue: Mapping[str, Any]
) -> str | None:
    """Why the issue's own choice of agent cannot be honoured, or ``None``."""
    return resolution(settings, repository, issue).error


def profile_for(
    settings: Settings,
    repository: Mapping[str, Any] | None,
    issue: Mapping[str, Any],
    role: str,
) -> AgentProfile | None:
    """The profile a sub-task of ``role`` runs with; ``None`` when nothing is configured."""
    resolved = resolution(settings, repository, issue)
    if resolved.error is not None:
        return None
    profile = for_role(resolved.profile, role)
    if profile == AgentProfile():
        return None
    template = profile.prompt_template
    if template and not Path(template).is_absolute():
        profile = profile.model_copy(
            update={"prompt_template": str(settings.prompts_dir / template)}
        )
    return profile


def forced_choice(
    profile: AgentProfile | None, available: Collection[str], reasons: Mapping[str, str]
) -> Choice | None:
    """The sub-task's executor when the configuration names one; ``None`` otherwise."""
    executor = profile.executor if profile is not None else None
    if not executor:
        return None
    if executor in available:
        return Choice(executor, CHOSEN.format(executor=executor))
    reason = reasons.get(executor)
    detail = f" ({reason})" if reason else ""
    return Choice(None, CHOSEN_UNAVAILABLE.format(executor=executor, detail=detail))


def _label_names(labels: Any) -> list[str]:
    names: list[str] = []
    for label in labels or []:
        if isinstance(label, str):
            names.append(label)
        elif isinstance(label, Mapping) and isinstance(label.get("name"), str):
            names.append(label["name"])
    return names
