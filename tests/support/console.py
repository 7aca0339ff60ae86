"""Console test data: issues, sub-tasks and ledger entries written through the project's
own storage and ledger APIs (no hand-written SQL), on a scratch database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from edge_worker.costs.ledger import CostEntry, Ledger, cost_entry_id
from edge_worker.executors.base import Usage
from edge_worker.settings import Settings, load_settings
from edge_worker.storage import work
from edge_worker.storage.db import create_engine_for, create_tables

TOKEN = "console-test-token-0123456789"
VIEWER_TOKEN = "console-viewer-token-9876543210"


def console_settings(state_dir: Path, **budget: float) -> Settings:
    """Settings on a SQLite file in ``state_dir`` (UTC days, optional budget limits)."""
    return load_settings(
        state_dir=state_dir,
        budget={"timezone": "UTC", **{k: v for k, v in budget.items()}},
    )


def open_engine(settings: Settings) -> sa.Engine:
    engine = create_engine_for(settings.resolved_database_url)
    create_tables(engine)
    return engine


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Spend:
    issue_id: str
    identifier: str
    step: str
    executor: str
    model: str | None
    usd: str | None
    key: str | None = "parser"
    kind: str = "run"


def record(engine: sa.Engine, spend: Spend, at: datetime | None = None) -> None:
    """One ledger entry through :class:`Ledger` (at ``at``, default now)."""
    clock = FixedClock(at or datetime.now(UTC))
    Ledger(engine, "UTC", clock).record(
        CostEntry(
            entry_id=cost_entry_id(f"wf-{spend.issue_id}", spend.step, 1),
            issue_id=spend.issue_id,
            issue_identifier=spend.identifier,
            kind=spend.kind,  # type: ignore[arg-type]
            executor=spend.executor,
            subtask_key=spend.key,
            model=spend.model,
            usage=Usage(input_tokens=1000, cached_input_tokens=0, output_tokens=200),
            usd=spend.usd,
        )
    )


def start_issue(
    engine: sa.Engine,
    issue_id: str,
    identifier: str,
    state: str,
    subtasks: dict[str, tuple[str, str | None]] | None = None,
) -> str:
    """Claim ``issue_id`` with a workflow, move it to ``state``, track its sub-tasks."""
    workflow_id = f"issue-{issue_id}-wf"
    with engine.begin() as conn:
        work.claim(
            conn, issue_id=issue_id, identifier=identifier, workflow_id=workflow_id, session_id=None
        )
        work.set_state(conn, issue_id, workflow_id, state, subtasks_total=len(subtasks or {}))
        for key, (sub_state, executor) in (subtasks or {}).items():
            work.track_subtask(conn, issue_id, key, f"{workflow_id}-{key}-1", sub_state, executor)
    return workflow_id


def seed(engine: sa.Engine, *, finished: int = 4) -> None:
    """Three issues in flight, ``finished`` finished ones and a mix of priced and unpriced
    spend today and on earlier days."""
    start_issue(
        engine,
        "i-eng-1",
        "ENG-1",
        "working",
        {
            "parser": ("passed", "claude-code"),
            "cli": ("running", "codegen"),
            "docs": ("running", "codex"),
        },
    )
    start_issue(engine, "i-eng-2", "ENG-2", "waiting")
    start_issue(engine, "i-ops-3", "OPS-3", "planning")
    states = ["done", "failed", "over_budget", "stopped"]
    for n in range(finished):
        issue_id, team = f"i-fin-{n}", ("ENG" if n % 2 == 0 else "OPS")
        workflow = start_issue(
            engine,
            issue_id,
            f"{team}-{100 + n}",
            "working",
            {"a": ("passed", "claude-code"), "b": ("failed" if n % 2 else "passed", "codegen")},
        )
        with engine.begin() as conn:
            work.set_state(conn, issue_id, workflow, states[n % len(states)])
    record(
        engine,
        Spend(
            "i-eng-1",
            "ENG-1",
            "plan",
            "planner:anthropic",
            "claude-opus-4",
            "0.125",
            None,
            "planner",
        ),
    )
    record(
        engine, Spend("i-eng-1", "ENG-1", "run-parser", "claude-code", "claude-sonnet-4-5", "1.005")
    )
    record(engine, Spend("i-eng-1", "ENG-1", "run-cli", "codegen", None, None, "cli"))
    record(
        engine, Spend("i-fin-0", "ENG-100", "run-a", "claude-code", "claude-sonnet-4-5", "0.333")
    )
    record(engine, Spend("i-fin-1", "OPS-101", "run-b", "codegen", "codegen-agent", "0.30", "b"))
    record(
        engine,
        Spend("i-fin-1", "OPS-101", "verify-b", "local", None, "0", "b", "verification"),
    )
    earlier = datetime.now(UTC) - timedelta(days=3)
    record(
        engine,
        Spend("i-fin-0", "ENG-100", "old-run", "claude-code", "claude-sonnet-4-5", "2.50"),
        earlier,
    )
