"""Every module that declares DBOS workflows, imported in one place.

Contract: DBOS registers a workflow when its module is imported, and the daemon must have
registered all of them before :func:`edge_worker.runtime.configure_dbos` creates the DBOS
instance (whose application version hashes the registered code). The entry points that
configure DBOS call :func:`register_all` first; :mod:`edge_worker.runtime` itself imports
no workflow module, so workflow modules may import it (and :mod:`edge_worker.queues`).
A new module of workflows is added here.
"""

from __future__ import annotations


def register_all() -> None:
    """Import (so register) every workflow module; idempotent."""
    import edge_worker.costs.daily_workflow  # the daily cost summary
    import edge_worker.orchestration.workflows  # the issue and sub-task workflows
    import edge_worker.reporting.daily_report_post  # noqa: F401  (the report on Linear)
