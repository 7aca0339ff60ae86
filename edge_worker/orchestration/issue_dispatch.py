"""Sub-tasks of an issue: their sub-issues, their dispatch, their outcomes and their end.

Contract:
- :func:`create_subissues` creates (or binds an existing matching) sub-issue per sub-task.
- :func:`dispatch_subtask` starts one ready sub-task on an executor (budget permitting:
  otherwise it returns why not) by enqueueing ``run_subtask`` with the id
  ``<orchestration id>-<key>-<n>`` on the cloud or the local queue.
- :func:`apply_outcome` records a ``subtask_done`` message on the sub-task's record.
- :func:`reopen` makes a finished sub-task pending again so feedback resumes its session.
- :func:`stop_children` cancels every running sub-task (its run and its workflow).
"""

from __future__ import annotations

from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from edge_worker.costs.budget import decide_dispatch
from edge_worker.costs.money import Total
from edge_worker.executors.base import Task, TaskAttachment, TaskLimits
from edge_worker.orchestration import agent_choice, steps, texts
from edge_worker.orchestration.attachments import AttachmentRef
from edge_worker.orchestration.existing import bindings
from edge_worker.orchestration.issue_state import (
    Orchestration,
    available_executors,
    report_url,
    subissues_at_start,
)
from edge_worker.orchestration.plan import Subtask, dependencies_of
from edge_worker.orchestration.progress import TaskRecord
from edge_worker.orchestration.strategy import choose_executor
from edge_worker.orchestration.subtask_run import run_subtask
from edge_worker.orchestration.workflow_config import (
    FOLLOWING_EVENT,
    HANDLE_WAIT_SECONDS,
    LOCAL_EXECUTORS,
    estimates_for,
    join_notes,
)
from edge_worker.queues import CLOUD_QUEUE, LOCAL_QUEUE

log = structlog.get_logger(__name__)


async def create_subissues(o: Orchestration, subtasks: list[Subtask]) -> None:
    """Give each of ``subtasks`` a sub-issue: an existing one it matches (bound once), or a
    new one in the unstarted state; the record keeps its id, identifier and URL."""
    assert o.progress is not None
    unstarted = o.state_id(type_="unstarted")
    reused = bindings(subtasks, subissues_at_start(o), o.issue_id)
    taken = {r.sub_issue_id for r in o.progress.tasks.values() if r.sub_issue_id}
    for subtask in subtasks:
        existing = reused.get(subtask.key)
        if existing is not None and existing.id not in taken:  # bound, not created
            taken.add(existing.id)
            ref = {"id": existing.id, "identifier": existing.identifier, "url": existing.url}
        else:
            ref = await steps.create_subissue_step(
                o.issue_id,
                o.team_id,
                unstarted,
                subtask.model_dump(mode="json"),
                parent_url=o.snapshot["issue"].get("url"),
                report_url=report_url(o.snapshot["issue"]["url"], o.issue_id)
                if o.snapshot["issue"].get("url")
                else None,
            )
        record = o.progress.tasks[subtask.key]
        record.sub_issue_id, record.identifier, record.url = (
            ref["id"],
            ref["identifier"],
            ref["url"],
        )


async def dispatch_subtask(o: Orchestration, subtask: Subtask) -> str | None:
    """Start ``subtask`` on its executor; returns why not when the budget forbids it."""
    assert o.progress is not None
    money = await steps.money_step(o.issue_id)
    issue_spent = Total(**money["issue"]).usd
    decision = decide_dispatch(
        o.limits,
        issue_spent=issue_spent,
        day_spent=Total(**money["day"]).usd,
        issue_running=len(o.progress.running()),
        # this issue's children may not have marked themselves running yet
        day_running=max(int(money["day_running"]), len(o.progress.running())),
        issue_budget=o.budget,
    )
    if not decision.may_dispatch:
        return decision.reason or "budget reached"
    record = o.progress.tasks[subtask.key]
    repo = o.trigger.get("_repository") or {}
    agent = agent_choice.profile_for(o.settings, repo, o.snapshot["issue"], subtask.role)
    resume_from = record.resume_from
    if resume_from is not None and resume_from.get("executor") in available_executors(o):
        executor = str(resume_from["executor"])  # the session that did the work goes on
    else:
        resume_from = None
        remaining = float(o.budget.limit - issue_spent) if o.budget.limit is not None else None
        choice = agent_choice.forced_choice(
            agent, available_executors(o), o.unavailable
        ) or choose_executor(
            o.trigger.get("strategy") or o.settings.strategy,
            subtask,
            available=available_executors(o),
            remaining_budget_usd=remaining,
            estimates=estimates_for(o.settings),
            fallback_to_local=o.settings.fallback_to_local,
            unavailable_reasons=o.unavailable,
        )
        if choice.executor is None:
            record.status, record.note = "failed", choice.reason
            return None
        if choice.fell_back:
            record.note = choice.reason
        executor = choice.executor
    feedback = "\n\n".join(record.feedback) or None
    n = o.dispatches.get(subtask.key, 0) + 1
    o.dispatches[subtask.key] = n
    child_id = f"{o.workflow_id}-{subtask.key}-{n}"
    role_prompt = await steps.role_prompt_step(subtask.role)
    ancestors = [o.progress.tasks[d.key] for d in dependencies_of(o.progress.plan, subtask.key)]
    task = Task(
        issue_id=o.issue_id,
        issue_identifier=o.identifier,
        key=subtask.key,
        title=subtask.title,
        description=subtask.description
        + (
            texts.FEEDBACK_SECTION.format(feedback=feedback) if feedback and not resume_from else ""
        ),
        role=subtask.role,
        verification=subtask.verification_commands(),
        repository_id=repo.get("id"),
        repository_path=str(repo["path"]) if repo.get("path") else None,
        codegen_repo_id=repo.get("codegen_repo_id"),
        base_branch=repo.get("base_branch") or "main",
        # A local dependency's branch is in the repository; a cloud dependency's work is
        # its pull request's branch on the remote, fetched when the worktree is made. All
        # ancestors, not only direct ones: a cloud run starts from the base branch, so its
        # pull request does not carry the work it depended on.
        merge_branches=[
            branch
            for dep in ancestors
            if dep.executor in LOCAL_EXECUTORS and (branch := dep.branch) is not None
        ],
        fetch_branches=[
            branch
            for dep in ancestors
            if dep.executor not in LOCAL_EXECUTORS and (branch := dep.branch) is not None
        ],
        remote=repo.get("remote") or "origin",
        role_prompt=role_prompt,
        attachments=[
            TaskAttachment(name=a.name, path=a.path, media_type=a.media_type, url=a.url)
            for a in (AttachmentRef.model_validate(r) for r in o.trigger.get("_attachments") or [])
            if a.path is not None
        ],
        limits=TaskLimits(
            wall_clock_seconds=o.settings.claude.timeout_seconds,
            max_turns=o.settings.claude.max_turns,
            max_usd=float(o.limits.per_task) if o.limits.per_task is not None else None,
        ),
        attempt=n,
        agent=agent,
    )
    spec = {
        "parent": o.workflow_id,
        "key": subtask.key,
        "executor": executor,
        "issue_id": o.issue_id,
        "issue_identifier": o.identifier,
        "session_id": o.session_id,
        "sub_issue_id": record.sub_issue_id,
        "sub_issue_identifier": record.identifier,
        "started_state_id": o.state_id(type_="started"),
        "done_state_id": o.state_id(type_="completed"),
        "review_state_id": o.state_id(name=o.settings.review_state),  # delivered: until merged
        "reset_state_id": (
            o.state_id(name=o.settings.failed_subtask_state)
            if o.settings.failed_subtask_state
            else None
        )
        or o.state_id(type_="unstarted"),
        "task": task.model_dump(mode="json"),
        "max_iterations": o.settings.max_iterations,
        "issue_limit": str(o.budget.limit) if o.budget.limit is not None else None,
        "note": record.note,
        "feedback": feedback,
        "resume_from": resume_from,
        "iterations_before": record.iterations,
        "issue_labels": list(o.snapshot["issue"].get("labels") or []),
    }
    queue_name = CLOUD_QUEUE if executor == "codegen" else LOCAL_QUEUE
    queue = await DBOS.retrieve_queue_async(queue_name)
    assert queue is not None, f"queue {queue_name} not registered"
    with SetWorkflowID(child_id):
        await queue.enqueue_async(run_subtask, spec)
    record.status, record.executor, record.workflow_id = "running", executor, child_id
    record.feedback, record.resume_from = [], None
    return None


def apply_outcome(o: Orchestration, message: dict[str, Any]) -> TaskRecord | None:
    """Record a sub-task's outcome; returns its record (``None`` for a late message)."""
    assert o.progress is not None
    record = o.progress.tasks.get(message["key"])
    if record is None or record.status != "running":
        return None  # a late message from a run this orchestration already gave up on
    if message["status"] == "unavailable":
        executor = record.executor or "codegen"
        log.warning("executor unavailable", executor=executor, reason=message["reason"])
        reason = texts.for_linear(message["reason"])
        o.unavailable[executor] = reason
        record.status, record.note = "pending", f"{executor} unavailable: {reason}"
        record.resume_from = None
        return record
    cost = message["cost"]
    record.status = message["status"]
    record.iterations = message["iterations"]
    record.cost_micros, record.priced_parts, record.unpriced_parts = (
        cost["micros"],
        cost["priced"],
        cost["unpriced"],
    )
    record.uncertain_parts = cost.get("uncertain", 0)
    record.duration_seconds = message["duration_seconds"]
    record.pr_url, record.branch = message.get("pr_url"), message.get("branch")
    record.verification = message["verification"]
    record.checks = message.get("checks") or []
    if message.get("note"):
        record.note = message["note"]
    return record


async def reopen(o: Orchestration, record: TaskRecord) -> None:
    """Make a finished sub-task pending again so its feedback reaches a new run, which
    resumes the finished run's session. Sub-tasks skipped behind it become pending too
    (the scheduler skips again whatever is still blocked)."""
    assert o.progress is not None
    handle = None
    if record.workflow_id is not None:
        handle = await DBOS.get_event_async(record.workflow_id, "handle", timeout_seconds=0)
    record.resume_from = handle if isinstance(handle, dict) else None
    record.status = "pending"
    for other in o.progress.tasks.values():
        if other.status == "skipped":
            other.status, other.note = "pending", None


async def stop_children(o: Orchestration, status: str) -> None:
    """Cancel every running sub-task: its process killed (local) or its run abandoned
    and recorded (Codegen), its workflow cancelled; pending sub-tasks take ``status``."""
    assert o.progress is not None
    for record in o.progress.running():
        child = record.workflow_id
        assert child is not None and record.executor is not None
        found = await DBOS.get_workflow_status_async(child)
        started = found is not None and found.status == "PENDING"
        # A child that has begun may be spawning its run right now: wait for it to publish
        # the run (right after the spawn) so the run is stopped, not orphaned.
        await DBOS.get_event_async(
            child, FOLLOWING_EVENT, timeout_seconds=HANDLE_WAIT_SECONDS if started else 0
        )
        await DBOS.cancel_workflow_async(child)
        # The run last published before the cancel, with its own charge.
        following = await DBOS.get_event_async(child, FOLLOWING_EVENT, timeout_seconds=0)
        if following:
            await steps.cancel_run_step(record.executor, following["handle"], following["charge"])
        await steps.track_subtask_step(o.issue_id, record.key, child, status, record.executor)
        record.status = status  # type: ignore[assignment]
        if record.executor == "codegen":
            record.note = join_notes(record.note, "remote run abandoned (recorded)")
    for record in o.progress.tasks.values():
        if record.status == "pending":
            record.status = status  # type: ignore[assignment]
