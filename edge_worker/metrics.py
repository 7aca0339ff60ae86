"""Process-wide Prometheus metrics for intake and orchestration.

Other areas declare their own metrics next to their code (``linear/metrics.py``,
``costs/metrics.py``); all register on the default registry served at ``/metrics``.
"""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram

from edge_worker.linear.limits import RateLimitSnapshot
from edge_worker.storage.work import subtasks, work_items

WEBHOOKS = Counter("edge_worker_webhooks_total", "Webhook deliveries by result", ["result"])
INTAKE_LATENCY = Histogram(
    "edge_worker_intake_seconds",
    "Time from request start to answer for POST /webhooks/linear",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ORCHESTRATIONS = Gauge(
    "edge_worker_orchestrations", "Issues by orchestration state (from the database)", ["state"]
)
SUBTASK_RUNS = Gauge(
    "edge_worker_subtask_runs",
    "Sub-task runs by executor and outcome (from the database)",
    ["executor", "outcome"],
)
LINEAR_HEADROOM = Gauge(
    "edge_worker_linear_requests_remaining",
    "Linear requests left in the current window, as its last response said",
)


def refresh_gauges(engine: sa.Engine) -> None:
    """Set the state gauges from the database (shared by every daemon on it)."""
    with engine.connect() as conn:
        by_state = conn.execute(
            sa.select(work_items.c.state, sa.func.count()).group_by(work_items.c.state)
        ).all()
        by_outcome = conn.execute(
            sa.select(subtasks.c.executor, subtasks.c.state, sa.func.count()).group_by(
                subtasks.c.executor, subtasks.c.state
            )
        ).all()
    ORCHESTRATIONS.clear()
    for state, count in by_state:
        ORCHESTRATIONS.labels(state=state).set(count)
    SUBTASK_RUNS.clear()
    for executor, outcome, count in by_outcome:
        SUBTASK_RUNS.labels(executor=executor or "none", outcome=outcome).set(count)


def observe_rate_limit(snapshot: RateLimitSnapshot) -> None:
    """Record Linear's remaining-requests header, when a response carried one."""
    if snapshot.requests_remaining is not None:
        LINEAR_HEADROOM.set(snapshot.requests_remaining)


_WEBHOOKS_BY_RESULT: dict[str, Counter] = {}


def observe_intake(result: str, seconds: float) -> None:
    """Count one answered delivery and its latency."""
    counter = _WEBHOOKS_BY_RESULT.get(result)
    if counter is None:  # labels() takes a lock and builds a key on every call
        counter = _WEBHOOKS_BY_RESULT[result] = WEBHOOKS.labels(result=result)
    counter.inc()
    INTAKE_LATENCY.observe(seconds)
