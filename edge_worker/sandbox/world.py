"""A whole world on loopback for the demo and the end-to-end tests.

``SandboxWorld`` starts the stand-ins of Linear, the Anthropic Messages API and Codegen,
seeds Linear with a team, a human, the agent and an issue, creates the demo repository,
writes the fake agents' scenario, and gives the environment a daemon needs to work
against all of it (``daemon_env()``). Nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_worker.sandbox.anthropic import AnthropicStandIn, ToolAnswer
from edge_worker.sandbox.codegen import CodegenStandIn, VerificationScript
from edge_worker.sandbox.demo_plan import (
    DEMO_ISSUE_DESCRIPTION,
    DEMO_ISSUE_TITLE,
    DEMO_SOLUTIONS,
    add_origin,
    demo_plan,
    init_demo_repository,
    push_branch,
)
from edge_worker.sandbox.fake_agents import install_fake_agents
from edge_worker.sandbox.linear import DEFAULT_API_KEY, LinearStandIn
from edge_worker.sandbox.server import serve_in_thread

SANDBOX_DIR = Path(__file__).resolve().parent
WEBHOOK_SECRET = "sandbox-webhook-secret"
ANTHROPIC_KEY = "sk-ant-sandbox"
CODEGEN_TOKEN = "codegen-sandbox-token"
CODEGEN_ORG = 1
PASS_ENV = "FAKE_AGENT_SCENARIO,FAKE_AGENT_STATE_ROOT"


def shared_schema() -> Path | None:
    """Linear's schema from ``EDGE_WORKER_SHARED_DIR`` when that is set (only there), else
    from ``../shared``; ``None`` when absent."""
    base = os.environ.get("EDGE_WORKER_SHARED_DIR")
    candidates = [Path(base)] if base else [SANDBOX_DIR.parent.parent.parent / "shared"]
    for directory in candidates:
        path = directory / "linear" / "schema.graphql"
        if path.is_file():
            return path
    return None


def solved_runs(key: str, *, failures_first: int = 0) -> dict[str, Any]:
    """A fake-agent script that solves sub-task ``key`` (after some failed attempts)."""
    files = DEMO_SOLUTIONS.get(key, {})
    edits = [{"path": p, "content": c} for p, c in files.items()]
    runs: list[dict[str, Any]] = [
        {"text": f"Tried {key}, not done yet.", "cost_usd": 0.05} for _ in range(failures_first)
    ]
    runs.append({"text": f"Done: {key}.", "edits": edits, "cost_usd": 0.12})
    return {"runs": runs}


@dataclass
class SandboxWorld:
    """The stand-ins and fixtures of one end-to-end run."""

    root: Path
    plan: dict[str, Any] = field(default_factory=lambda: demo_plan(sys.executable))
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    linear: LinearStandIn = field(init=False)
    anthropic: AnthropicStandIn = field(init=False)
    codegen: CodegenStandIn = field(init=False)
    urls: dict[str, str] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __post_init__(self) -> None:
        self.linear = LinearStandIn(schema_path=shared_schema())
        self.anthropic = AnthropicStandIn(api_key=ANTHROPIC_KEY, default=ToolAnswer(self.plan))
        self.codegen = CodegenStandIn(api_token=CODEGEN_TOKEN, org_id=CODEGEN_ORG)
        for subtask in self.plan["subtasks"]:
            self.tasks.setdefault(subtask["key"], solved_runs(subtask["key"]))
        self.script_cloud_passes()

    def script_cloud_passes(self, plan: dict[str, Any] | None = None) -> None:
        """Codegen answers every verification of ``plan`` (default: the world's) with the
        exit code each check expects, as a cloud agent that did the work would."""
        for subtask in (plan or self.plan)["subtasks"]:
            codes = {c["command"]: int(c.get("expect_exit", 0)) for c in subtask["verification"]}
            self.codegen.script_verification(subtask["key"], VerificationScript(exit_codes=codes))

    def __enter__(self) -> SandboxWorld:
        self.urls["linear"] = self._stack.enter_context(serve_in_thread(self.linear.app))
        self.urls["anthropic"] = self._stack.enter_context(serve_in_thread(self.anthropic.app))
        self.urls["codegen"] = self._stack.enter_context(serve_in_thread(self.codegen.app))
        self.repository = init_demo_repository(self.root / "repo")
        # Codegen's pull requests become real branches on the repository's remote, with the
        # sub-task's solution committed, so local sub-tasks that depend on them fetch them.
        self.origin = add_origin(self.repository, self.root / "origin.git")
        self.codegen.on_pull_request = lambda key, branch: push_branch(
            self.origin, branch, DEMO_SOLUTIONS.get(key, {})
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def agent_id(self) -> str:
        return self.linear.store.agent.id

    def new_issue(
        self, title: str = DEMO_ISSUE_TITLE, description: str = DEMO_ISSUE_DESCRIPTION
    ) -> str:
        """Create an issue in the stand-in; returns its id."""
        return self.linear.store.add_issue(title, description).id

    def upload(self, content: bytes, media_type: str) -> str:
        """Upload a file to the Linear stand-in; returns its URL (which needs the token)."""
        return self.urls["linear"] + self.linear.store.add_upload(content, media_type)

    def scenario_path(self) -> Path:
        """Write the fake agents' scenario (one script per sub-task key) and return its path.

        The fakes read it at every invocation: call it again after changing :attr:`tasks`.
        """
        path = self.root / "scenario.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"tasks": self.tasks}))
        temporary.replace(path)
        return path

    @property
    def agent_state_root(self) -> Path:
        """Where the fake agents keep their state, one directory per worktree."""
        return self.root / "agent-state"

    def agent_calls(self, issue_identifier: str, key: str) -> list[dict[str, Any]]:
        """Every invocation of a fake agent CLI for one sub-task, oldest first.

        Each call records ``argv``, ``prompt``, ``resume`` (the session resumed, or
        ``None`` for a fresh run), ``session_id`` and ``pid``; the state outlives the
        worktree, so calls of a sub-task whose worktree was removed are still counted.
        """
        directory = self.agent_state_root / f"{issue_identifier}-{key}"
        calls: list[dict[str, Any]] = []
        for name in ("fake-claude-state.json", "fake-codex-state.json", "fake-gemini-state.json"):
            path = directory / name
            if path.is_file():
                calls.extend(json.loads(path.read_text())["calls"])
        return calls

    def daemon_env(self, **overrides: str) -> dict[str, str]:
        """The environment of a daemon wired to this world's stand-ins."""
        fakes = install_fake_agents(self.root / "bin")
        config = self.root / "edge-worker.toml"
        config.write_text(
            "[[repositories]]\n"
            f'id = "demo"\npath = "{self.repository}"\nbase_branch = "main"\n'
            f'codegen_repo_id = 42\nteam_keys = ["ENG"]\n'
        )
        env = {
            "EDGE_WORKER_CONFIG": str(config),
            "EDGE_WORKER_LINEAR__API_URL": self.urls["linear"] + "/graphql",
            "EDGE_WORKER_LINEAR__API_KEY": DEFAULT_API_KEY,
            "EDGE_WORKER_LINEAR__WEBHOOK_SECRET": WEBHOOK_SECRET,
            "EDGE_WORKER_LINEAR__AGENT_USER_ID": self.agent_id,
            "EDGE_WORKER_LINEAR__ACTIVITY_INTERVAL_SECONDS": "2",
            "EDGE_WORKER_PLANNER": "anthropic",
            "EDGE_WORKER_ANTHROPIC__BASE_URL": self.urls["anthropic"],
            "EDGE_WORKER_ANTHROPIC__API_KEY": ANTHROPIC_KEY,
            "EDGE_WORKER_CODEGEN__BASE_URL": self.urls["codegen"],
            "EDGE_WORKER_CODEGEN__ORG_ID": str(CODEGEN_ORG),
            "EDGE_WORKER_CODEGEN__API_TOKEN": CODEGEN_TOKEN,
            "EDGE_WORKER_CODEGEN__POLL_INTERVAL_SECONDS": "0.2",
            "EDGE_WORKER_CLAUDE__BINARY": str(fakes.claude),
            "EDGE_WORKER_CLAUDE__PASS_ENV": PASS_ENV,
            "EDGE_WORKER_CODEX__BINARY": str(fakes.codex),
            "EDGE_WORKER_CODEX__PASS_ENV": PASS_ENV,
            "EDGE_WORKER_GEMINI__BINARY": str(fakes.gemini),
            "EDGE_WORKER_GEMINI__PASS_ENV": PASS_ENV,
            "EDGE_WORKER_STRATEGY": "local-only",
            "EDGE_WORKER_ATTACHMENTS__UPLOAD_HOSTS": self.urls["linear"].split("://", 1)[1],
            "FAKE_AGENT_SCENARIO": str(self.scenario_path()),
            "FAKE_AGENT_STATE_ROOT": str(self.agent_state_root),
        }
        env.update(overrides)
        return env


@contextlib.contextmanager
def sandbox_world(root: Path, **kwargs: Any) -> Iterator[SandboxWorld]:
    """A started :class:`SandboxWorld` for the duration of the block."""
    with SandboxWorld(root, **kwargs) as world:
        yield world
