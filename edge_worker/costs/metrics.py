"""Prometheus counters for money: USD by executor and model, unpriced runs by executor.

Contract:
- ``edge_worker_cost_usd_total{executor,model}`` and
  ``edge_worker_unpriced_runs_total{executor}`` live in the default registry (or the one
  passed to :func:`cost_counters`); importing or reloading this module twice reuses the
  registered counters instead of failing with "Duplicated timeseries".
- :func:`observe_cost` counts one ledger entry; call it only when
  :meth:`~edge_worker.costs.ledger.Ledger.record` returned ``True``, so a replayed step
  never counts twice and the counters agree with the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from edge_worker.costs.money import Amount, from_micros, to_micros

COST_METRIC = "edge_worker_cost_usd"
UNPRICED_METRIC = "edge_worker_unpriced_runs"
UNKNOWN_MODEL = "unknown"


@dataclass(frozen=True)
class CostCounters:
    """The two money counters of one registry."""

    cost_usd: Counter
    unpriced_runs: Counter


def _counter(
    name: str, documentation: str, labels: tuple[str, ...], registry: CollectorRegistry
) -> Counter:
    # prometheus_client has no public "get or create"; its name index is the only way to
    # find a counter an earlier import of this module registered.
    existing = registry._names_to_collectors.get(name)
    if isinstance(existing, Counter):
        return existing
    return Counter(name, documentation, labels, registry=registry)


def cost_counters(registry: CollectorRegistry = REGISTRY) -> CostCounters:
    """The money counters registered in ``registry`` (registering them the first time)."""
    return CostCounters(
        cost_usd=_counter(
            COST_METRIC,
            "USD spent on agent work, by executor and model.",
            ("executor", "model"),
            registry,
        ),
        unpriced_runs=_counter(
            UNPRICED_METRIC,
            "Runs whose cost is unknown (unpriced), by executor.",
            ("executor",),
            registry,
        ),
    )


COUNTERS = cost_counters()


def observe_cost(
    executor: str,
    model: str | None,
    usd: Amount | None,
    counters: CostCounters = COUNTERS,
) -> None:
    """Count one ledger entry: its USD, or one unpriced run when ``usd`` is ``None``."""
    if usd is None:
        counters.unpriced_runs.labels(executor=executor).inc()
        return
    amount = float(from_micros(to_micros(usd)))
    counters.cost_usd.labels(executor=executor, model=model or UNKNOWN_MODEL).inc(amount)
