"""Layered agent configuration and the per-issue choice of agent and model (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_worker.agent_config import (
    AgentLayer,
    AgentPolicy,
    AgentProfile,
    McpServer,
    RoleAgent,
    for_role,
    issue_tags,
    resolve_agent,
)
from edge_worker.orchestration.agent_choice import forced_choice, profile_for, refusal
from edge_worker.settings import Repository, Settings

POLICY = AgentPolicy(
    executor="claude-code",
    model="claude-sonnet-4-5",
    allowed_executors=["claude", "codex", "gemini"],
    allowed_models=["claude-sonnet-4-5", "gpt-5-codex", "gemini-2.5-pro", "gemini-2.5-flash"],
    mcp_servers={"docs": McpServer(url="https://docs.example.com/mcp")},
    labels={"cheap": AgentProfile(executor="gemini", model="gemini-2.5-flash")},
)
REPO = AgentLayer(
    executor="codex",
    model="gpt-5-codex",
    mcp_servers={"db": McpServer(command="db-mcp", env=["DB_URL"])},
    roles={"reviewer": RoleAgent(executor="claude-code", model="claude-sonnet-4-5")},
)


def test_tags_are_read_from_the_description() -> None:
    assert issue_tags("Fix it.\n[agent=codex] and [ model = gpt-5-codex ]") == {
        "agent": "codex",
        "model": "gpt-5-codex",
    }
    assert issue_tags(None) == {} and issue_tags("[agent=]") == {}


def test_layers_apply_defaults_then_repository_then_labels_then_tags() -> None:
    base = resolve_agent(POLICY, REPO, labels=[], description="")
    assert (base.profile.executor, base.profile.model) == ("codex", "gpt-5-codex")
    assert set(base.profile.mcp_servers) == {"docs", "db"}  # merged by name

    labelled = resolve_agent(POLICY, REPO, labels=["Cheap"], description="")
    assert (labelled.profile.executor, labelled.profile.model) == ("gemini", "gemini-2.5-flash")

    tagged = resolve_agent(POLICY, REPO, labels=["cheap"], description="[model=gemini-2.5-pro]")
    assert (tagged.profile.executor, tagged.profile.model) == ("gemini", "gemini-2.5-pro")
    assert tagged.error is None

    aliased = resolve_agent(POLICY, None, labels=[], description="[agent=claude]")
    assert aliased.profile.executor == "claude-code"


def test_a_role_has_its_own_executor_and_model() -> None:
    profile = resolve_agent(POLICY, REPO, labels=[], description="").profile
    reviewer = for_role(profile, "reviewer")
    assert (reviewer.executor, reviewer.model) == ("claude-code", "claude-sonnet-4-5")
    assert for_role(profile, "builder").executor == "codex"


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("[agent=copilot]", "agent `copilot` (tag), which does not exist here"),
        ("[agent=codegen]", "agent `codegen` (tag), which is not allowed here"),
        ("[model=gpt-4o]", "model `gpt-4o` (tag), which is not allowed here"),
    ],
)
def test_an_unknown_or_disallowed_choice_is_refused_not_defaulted(
    description: str, expected: str
) -> None:
    resolved = resolve_agent(POLICY, REPO, labels=[], description=description)
    assert resolved.error is not None and expected in resolved.error
    assert "choose one of" in resolved.error
    assert resolved.profile == AgentProfile()  # nothing to run with


def test_a_label_mapped_to_a_disallowed_agent_is_refused_naming_the_label() -> None:
    policy = POLICY.model_copy(update={"labels": {"cloud": AgentProfile(executor="codegen")}})
    resolved = resolve_agent(policy, None, labels=["cloud"], description="")
    assert resolved.error is not None and "label “cloud”" in resolved.error


def test_an_mcp_server_needs_exactly_one_transport() -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        McpServer(command="x", url="http://localhost/mcp")
    with pytest.raises(ValidationError, match="exactly one of"):
        McpServer()


def settings_with_repo(tmp_path: Path) -> tuple[Settings, dict[str, object]]:
    settings = Settings(agents=POLICY, prompts_dir=tmp_path)
    repository = Repository(id="app", agents=REPO.model_copy(update={"prompt_template": "b.md"}))
    return settings, repository.model_dump(mode="json")


def test_the_orchestration_view_of_an_issue(tmp_path: Path) -> None:
    settings, repo = settings_with_repo(tmp_path)
    issue = {"description": "Do it [agent=gemini]", "labels": ["bug"]}
    assert refusal(settings, repo, issue) is None
    profile = profile_for(settings, repo, issue, "builder")
    assert profile is not None and profile.executor == "gemini"
    assert profile.prompt_template == str(tmp_path / "b.md")  # under prompts_dir
    reviewer = profile_for(settings, repo, issue, "reviewer")
    assert reviewer is not None and reviewer.executor == "claude-code"  # the role wins

    bad = {"description": "[agent=nope]", "labels": []}
    assert refusal(settings, repo, bad) is not None
    assert profile_for(Settings(), None, {"description": "", "labels": []}, "builder") is None


def test_a_chosen_executor_runs_or_fails_with_why_never_another() -> None:
    profile = AgentProfile(executor="gemini")
    chosen = forced_choice(profile, ["claude-code", "gemini"], {})
    assert chosen is not None and chosen.executor == "gemini"
    missing = forced_choice(
        profile, ["claude-code"], {"gemini": "its CLI is not installed on this host"}
    )
    assert missing is not None and missing.executor is None
    assert "gemini" in missing.reason and "not installed" in missing.reason
    assert forced_choice(AgentProfile(model="x"), ["codex"], {}) is None
    assert forced_choice(None, ["codex"], {}) is None


def test_a_configured_executor_must_exist_when_the_configuration_loads() -> None:
    with pytest.raises(ValidationError, match="unknown executor 'gemni'"):
        AgentPolicy(labels={"x": AgentProfile(executor="gemni")})
    with pytest.raises(ValidationError, match="unknown executor"):
        Repository(id="app", agents={"roles": {"reviewer": {"executor": "copilot"}}})
