"""Money counters: USD by executor and model, unpriced runs, safe to import twice."""

from __future__ import annotations

import importlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from pytest import approx

import edge_worker.costs.metrics as metrics
from edge_worker.costs.cli import run_costs_command
from edge_worker.costs.ledger import Ledger
from edge_worker.costs.metrics import cost_counters, observe_cost
from edge_worker.settings import Settings
from tests.support.costs import FakeClock, entry, sqlite_engine


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_usd_is_counted_by_executor_and_model_and_unpriced_runs_by_executor() -> None:
    registry = CollectorRegistry()
    counters = cost_counters(registry)
    observe_cost("claude-code", "claude-sonnet-4-5", "1.10", counters)
    observe_cost("claude-code", "claude-sonnet-4-5", 0.8, counters)
    observe_cost("codegen", None, None, counters)
    observe_cost("codegen", None, None, counters)
    observe_cost("codex", None, "0.25", counters)

    cost = "edge_worker_cost_usd_total"
    # Prometheus counters are floats: agreement is to the cent, not to the last bit.
    assert _value(registry, cost, executor="claude-code", model="claude-sonnet-4-5") == approx(1.9)
    assert _value(registry, cost, executor="codex", model="unknown") == 0.25
    assert _value(registry, "edge_worker_unpriced_runs_total", executor="codegen") == 2
    assert _value(registry, cost, executor="codegen", model="unknown") == 0
    exposition = generate_latest(registry).decode()
    assert 'edge_worker_cost_usd_total{executor="claude-code",model="claude-sonnet-4-5"} 1.9' in (
        exposition
    )


def test_registering_twice_reuses_the_counters() -> None:
    registry = CollectorRegistry()
    assert cost_counters(registry).cost_usd is cost_counters(registry).cost_usd


def test_reimporting_the_module_keeps_the_default_registry_working() -> None:
    before = metrics.COUNTERS.cost_usd
    reloaded = importlib.reload(metrics)
    assert reloaded.COUNTERS.cost_usd is before
    reloaded.observe_cost("reload-check", "m", "0.5")
    assert _value(REGISTRY, "edge_worker_cost_usd_total", executor="reload-check", model="m") >= 0.5


def test_counters_agree_with_the_ledger_to_the_cent_when_steps_replay(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    counters = cost_counters(registry)
    path = tmp_path / "edge-worker.sqlite"
    clock = FakeClock(datetime(2025, 3, 10, 12, tzinfo=UTC))
    ledger = Ledger(sqlite_engine(path), "UTC", clock)
    entries = [
        entry("run:a", key="a", usd="1.004"),
        entry("run:b", key="b", usd="2.333333"),
        entry("run:c", key="c", executor="codegen", model=None, usd=None),
    ]
    for item in entries + entries:  # every step replayed once after a crash
        if ledger.record(item):
            observe_cost(item.executor, item.model, item.usd, counters)

    out = io.StringIO()
    settings = Settings(database_url=f"sqlite:///{path}")
    run_costs_command(settings, day="2025-03-10", issue=None, as_json=True, out=out, clock=clock)
    ledger_total = json.loads(out.getvalue())["total"]
    metric_total = _value(
        registry, "edge_worker_cost_usd_total", executor="claude-code", model="claude-sonnet-4-5"
    )
    assert round(metric_total, 2) == round(ledger_total["usd"], 2) == 3.34
    assert _value(registry, "edge_worker_unpriced_runs_total", executor="codegen") == 1
    assert ledger_total["unpriced"] == 1
