"""Prometheus counters for Linear requests.

Contract: ``LINEAR_REQUESTS`` counts every HTTP request sent to Linear, labelled by
GraphQL ``operation`` name and outcome ``status`` (``ok``, ``ratelimited``,
``server_error``, ``network_error``, ``unauthorized``, ``error``). Importing (or
reloading) this module more than once reuses the collector already registered in the
default registry instead of raising a duplicate-registration error.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter


def _counter(
    name: str, documentation: str, labels: tuple[str, ...], registry: CollectorRegistry
) -> Counter:
    """The counter ``name`` in ``registry``, created on first use."""
    try:
        return Counter(name, documentation, labels, registry=registry)
    except ValueError:
        # Already registered (module reloaded, or imported under two names in tests).
        # prometheus-client has no public lookup; its registry keeps this mapping.
        existing = registry._names_to_collectors.get(name)
        if not isinstance(existing, Counter):
            raise
        return existing


LINEAR_REQUESTS = _counter(
    "edge_worker_linear_requests",
    "Requests sent to Linear, by GraphQL operation and outcome.",
    ("operation", "status"),
    REGISTRY,
)


def count_request(operation: str, status: str) -> None:
    """Count one request to Linear."""
    LINEAR_REQUESTS.labels(operation=operation, status=status).inc()


def request_count(operation: str, status: str) -> float:
    """The current count for ``operation`` and ``status`` (for tests and ``status``)."""
    value = REGISTRY.get_sample_value(
        "edge_worker_linear_requests_total", {"operation": operation, "status": status}
    )
    return value or 0.0
