"""Build the adapters the workflows use from the settings, once per process.

Contract: ``build_adapters(settings, engine)`` returns :class:`Adapters` holding the Linear
client (sharing its client-credentials token through ``engine``), the activity coalescer,
the planner, every configured executor (Codegen only when its org id and token are set;
the local CLIs always, since a missing binary is reported per run), the cost ledger and
the price table. ``aclose()`` releases network clients. ``build_planner(settings)`` is where
the planner back end is chosen (``EDGE_WORKER_PLANNER``): the back ends import
:mod:`.planner`, which imports none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edge_worker import services
from edge_worker.alerts.outages import OutageTracker, outage_reporter
from edge_worker.costs.budget import BudgetLimits
from edge_worker.costs.ledger import Ledger
from edge_worker.costs.prices import price_usage, prices_from_settings
from edge_worker.executors.base import Executor, Usage
from edge_worker.executors.claude_code import ClaudeCodeExecutor
from edge_worker.executors.codegen import CodegenExecutor
from edge_worker.executors.codex import CodexExecutor
from edge_worker.executors.gemini import GeminiExecutor
from edge_worker.executors.worktrees import WorktreeManager
from edge_worker.linear.activities import ActivityCoalescer, SessionGate
from edge_worker.linear.client import LinearClient
from edge_worker.linear.clock import SystemClock
from edge_worker.orchestration.planner import (
    Planner,
    PlannerBackend,
    StaticBackend,
    load_orchestrator_prompt,
)
from edge_worker.orchestration.planner import Pricer as PlannerPricer
from edge_worker.orchestration.planner_anthropic import AnthropicBackend
from edge_worker.orchestration.planner_claude import ClaudeCodeBackend
from edge_worker.settings import ConfigError, Settings
from edge_worker.storage import work
from edge_worker.storage.tokens import SharedTokenStore

Pricer = Callable[[str | None, Usage], float | None]


@dataclass
class Adapters:
    """Everything a workflow step may call out to."""

    settings: Settings
    linear: LinearClient
    coalescer: ActivityCoalescer
    planner: Planner
    executors: dict[str, Executor]
    ledger: Ledger
    limits: BudgetLimits
    pricer: Pricer
    worktrees: WorktreeManager
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def codegen_configured(self) -> bool:
        return "codegen" in self.executors

    async def aclose(self) -> None:
        await self.coalescer.aclose()
        codegen = self.executors.get("codegen")
        if isinstance(codegen, CodegenExecutor):
            await codegen.aclose()
        await self.linear.aclose()


def worktree_root(settings: Settings) -> Path:
    """Where local executors make their worktrees."""
    return settings.worktrees.root or settings.resolved_state_dir / "worktrees"


def build_planner(
    settings: Settings,
    *,
    pricer: PlannerPricer | None = None,
    static_plan: object | None = None,
    max_depth: int = 4,
) -> Planner:
    """The planner the configuration asks for (``EDGE_WORKER_PLANNER``).

    ``pricer`` prices the ``anthropic`` backend's tokens (without one its calls are
    unpriced); ``static_plan`` overrides ``EDGE_WORKER_PLANNER_STATIC_PLAN`` for the
    ``static`` backend. Raises :class:`ConfigError` naming a missing setting.
    """
    backend: PlannerBackend
    if settings.planner == "anthropic":
        if settings.anthropic.api_key is None:
            raise ConfigError(
                "missing required setting: EDGE_WORKER_ANTHROPIC__API_KEY "
                "(needed by EDGE_WORKER_PLANNER=anthropic)"
            )
        backend = AnthropicBackend(
            base_url=settings.anthropic.base_url,
            api_key=settings.anthropic.api_key,
            model=settings.anthropic.model,
            max_tokens=settings.anthropic.max_tokens,
            timeout_seconds=settings.anthropic.timeout_seconds,
            pricer=pricer,
        )
    elif settings.planner == "claude-code":
        backend = ClaudeCodeBackend(
            binary=settings.claude.binary,
            model=settings.claude.model,
            timeout_seconds=settings.claude.timeout_seconds,
            kill_grace_seconds=settings.claude.kill_grace_seconds,
            pass_env=settings.claude.pass_env,
        )
    else:
        source = static_plan if static_plan is not None else settings.planner_static_plan
        if source is None:
            raise ConfigError(
                "missing required setting: EDGE_WORKER_PLANNER_STATIC_PLAN "
                "(needed by EDGE_WORKER_PLANNER=static)"
            )
        backend = (
            StaticBackend.from_source(source)
            if isinstance(source, str)
            else (StaticBackend(source))
        )
    system_prompt = load_orchestrator_prompt(
        settings.prompts_dir, max_subtasks=settings.max_subtasks, max_depth=max_depth
    )
    return Planner(
        backend=backend,
        system_prompt=system_prompt,
        max_subtasks=settings.max_subtasks,
        max_depth=max_depth,
    )


def build_adapters(settings: Settings, engine: sa.Engine) -> Adapters:
    """The adapters for ``settings`` (see the module contract)."""
    prices = prices_from_settings(settings)

    def pricer(model: str | None, usage: Usage) -> float | None:
        return price_usage(prices, model, usage)

    # The daemon's work waits out a Linear outage (unreachable, 5xx) rather than failing
    # every issue in flight: retried for as long as the patience allows, at most a minute
    # apart. Steps are safe to repeat (client-chosen ids), so a retry never duplicates.
    # Linear keeps one client-credentials token per app: the daemons on this database
    # share it instead of each fetching its own (and revoking the others').
    credentials = settings.linear
    token_store = (
        SharedTokenStore(engine, credentials.client_id, clock=SystemClock())
        if credentials.api_key is None
        and credentials.client_id
        and credentials.client_secret is not None
        else None
    )
    linear = LinearClient(
        settings.linear,
        token_store=token_store,
        transient_attempts=None,
        transient_timeout=settings.linear.outage_patience_seconds,
        transient_wait_max=60.0,
        on_health=outage_reporter(
            OutageTracker("Linear", settings.alerts.unavailable_minutes * 60.0)
        ),
    )
    worktrees = WorktreeManager(
        worktree_root(settings), keep_failed_days=settings.worktrees.keep_failed_days
    )
    executors: dict[str, Executor] = {
        "claude-code": ClaudeCodeExecutor(settings.claude, worktrees),
        "codex": CodexExecutor(settings.codex, worktrees, pricer=pricer),
        "gemini": GeminiExecutor(settings.gemini, worktrees, pricer=pricer),
    }
    if settings.codegen.org_id is not None and settings.codegen.api_token is not None:
        executors["codegen"] = CodegenExecutor(
            settings,
            on_health=outage_reporter(
                OutageTracker("Codegen", settings.alerts.unavailable_minutes * 60.0)
            ),
        )
    return Adapters(
        settings=settings,
        linear=linear,
        coalescer=ActivityCoalescer.from_settings(
            linear, settings.linear, clock=SystemClock(), still_working=_work_gate(engine)
        ),
        planner=build_planner(settings, pricer=pricer),
        executors=executors,
        ledger=Ledger(engine, settings.budget.timezone),
        limits=BudgetLimits.from_settings(settings.budget),
        pricer=pricer,
        worktrees=worktrees,
    )


def _work_gate(engine: sa.Engine) -> SessionGate:
    """Whether a session's work is still going, from the database every daemon shares."""

    def ask(session_id: str) -> bool:
        with engine.connect() as conn:
            return work.session_still_working(conn, session_id)

    async def still_working(session_id: str) -> bool:
        return await asyncio.to_thread(ask, session_id)

    return still_working


def installed_adapters() -> Adapters:
    """The process's adapters (the daemon installs them in ``services`` at start-up)."""
    found = services.current().extra.get("adapters")
    if found is None:
        raise RuntimeError("orchestration adapters are not installed")
    assert isinstance(found, Adapters)
    return found
