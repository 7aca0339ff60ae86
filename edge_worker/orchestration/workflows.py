"""Durable workflows: a trigger becomes verified, reported work on an issue, exactly once.

The flow: trigger -> orchestration -> sub-task runs.

- ``handle_trigger`` (id ``trigger-<hash of the dedupe key>``, :mod:`triggers`): a start
  claims the issue (single flight) and starts its orchestration; a follow-up or stop is
  sent to the issue's running orchestration with ``DBOS.send``.
- ``orchestrate_issue`` (id ``issue-<issue id>-<hash>``, :mod:`issue_run`): acknowledge,
  plan, create sub-issues, dispatch sub-tasks in dependency order within the parallelism
  and budget limits, react to sub-task results, follow-ups and stop, and report. Its
  parts: :mod:`issue_state` (the state it carries, messages, planning context, the session
  plan), :mod:`issue_execute` (the execution loop), :mod:`issue_dispatch` (sub-issues,
  dispatch, outcomes, reopening, stopping), :mod:`issue_messages` (follow-ups and edits
  while sub-tasks run), :mod:`budget_waits` (the day's warning, ``warn_day_budget``, and
  budget blocks) and :mod:`issue_finish` (the terminal update).
- ``run_subtask`` (id ``<orchestration id>-<key>-<n>``, :mod:`subtask_run`, helpers in
  :mod:`subtask_outcome`): one sub-task on one executor: run, verify, feed the evidence
  back and verify again up to the bound, post the result. It tells its orchestration it
  finished by ``DBOS.send``.
- Shared constants (``CONTROL_TOPIC``, waits, estimates) live in :mod:`workflow_config`.

Imports run one way: ``workflow_config`` < ``subtask_outcome`` < ``subtask_run`` <
``issue_state`` < ``issue_finish`` < ``issue_dispatch`` < ``budget_waits`` <
``issue_messages`` < ``issue_execute`` < ``issue_run`` < ``triggers`` < this facade.

Importing this module registers every workflow and step with DBOS (``runtime`` does so
before launching); it re-exports the names other code uses.

Workflow code is deterministic: everything that reads the clock, the database or the
network happens in a step (``steps.py``), so a recovered workflow replays the recorded
results and continues where it stopped.
"""

from __future__ import annotations

from edge_worker.orchestration.budget_waits import DAY_WARNING_WORKFLOW, warn_day_budget
from edge_worker.orchestration.issue_run import _repository_reply, orchestrate_issue
from edge_worker.orchestration.subtask_run import run_subtask
from edge_worker.orchestration.triggers import (
    handle_trigger,
    orchestration_workflow_id,
    trigger_workflow_id,
)
from edge_worker.orchestration.workflow_config import CONTROL_TOPIC, estimates_for

__all__ = [
    "CONTROL_TOPIC",
    "DAY_WARNING_WORKFLOW",
    "_repository_reply",
    "estimates_for",
    "handle_trigger",
    "orchestrate_issue",
    "orchestration_workflow_id",
    "run_subtask",
    "trigger_workflow_id",
    "warn_day_budget",
]
