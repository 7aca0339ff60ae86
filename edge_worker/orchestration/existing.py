"""Sub-issues the issue already has, and how a plan reuses or leaves them (sans-I/O).

The planner is shown the issue's existing sub-issues (:class:`ExistingSubIssue`). A
sub-task that continues one names it in ``reuses`` (its identifier); the orchestration
then binds the sub-task to that sub-issue instead of creating a new one. Existing
sub-issues no sub-task reuses are left as they are ("skipped").

Contract:
- :func:`reuse_problems` lists what is wrong with a plan's ``reuses`` (an identifier that
  is not an existing sub-issue, one sub-issue reused twice), in words the planner can act
  on when re-asked; empty when all is well.
- :func:`bindings` maps sub-task keys to the existing sub-issues they reuse: named in
  ``reuses``, or (given ``parent_id``) the sub-issue an earlier run created for the same
  key under its deterministic id, which creating it again would find anyway.
- :func:`reuse_note` is the report's one-paragraph account of what was reused and what
  was left alone (``None`` when the issue had no sub-issues).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from edge_worker.ids import stable_uuid4
from edge_worker.orchestration.plan import Plan, Subtask

REUSED_TEXT = "Existing sub-issues reused: {items}."
SKIPPED_TEXT = "Existing sub-issues left as they are (not in the plan): {items}."


class ExistingSubIssue(BaseModel):
    """A sub-issue of the issue being planned, as the planner sees it."""

    id: str
    identifier: str
    title: str
    url: str | None = None
    description: str | None = None
    state_name: str | None = None
    state_type: str | None = None

    @classmethod
    def from_snapshot(cls, child: dict[str, Any]) -> ExistingSubIssue:
        """From a child of the ``Issue`` query's JSON snapshot."""
        state = child.get("state") or {}
        return cls(
            id=child["id"],
            identifier=child["identifier"],
            title=child["title"],
            url=child.get("url"),
            description=child.get("description"),
            state_name=state.get("name"),
            state_type=state.get("type"),
        )


def _index(existing: Iterable[ExistingSubIssue]) -> dict[str, ExistingSubIssue]:
    return {sub.identifier.upper(): sub for sub in existing}


def reuse_problems(plan: Plan, existing: Sequence[ExistingSubIssue]) -> list[str]:
    """Why the plan's ``reuses`` cannot be honoured (empty when they can)."""
    known = _index(existing)
    problems: list[str] = []
    claimed: dict[str, str] = {}
    for index, subtask in enumerate(plan.subtasks):
        if subtask.reuses is None:
            continue
        wanted = subtask.reuses.strip().upper()
        where = f"subtasks[{index}].reuses ({subtask.key})"
        if wanted not in known:
            choices = ", ".join(sorted(known)) or "none"
            problems.append(
                f"{where}: {subtask.reuses!r} is not an existing sub-issue of this issue "
                f"(existing: {choices}); omit reuses to create a new sub-issue"
            )
        elif wanted in claimed:
            problems.append(
                f"{where}: {wanted} is already reused by sub-task {claimed[wanted]!r}; "
                "a sub-issue can carry one sub-task"
            )
        else:
            claimed[wanted] = subtask.key
    return problems


def bindings(
    subtasks: Iterable[Subtask], existing: Sequence[ExistingSubIssue], parent_id: str | None = None
) -> dict[str, ExistingSubIssue]:
    """``{sub-task key: the existing sub-issue it reuses}`` (unknown identifiers ignored)."""
    known = _index(existing)
    by_id = {sub.id: sub for sub in existing}
    bound: dict[str, ExistingSubIssue] = {}
    for subtask in subtasks:
        if subtask.reuses:
            found = known.get(subtask.reuses.strip().upper())
        elif parent_id is not None:
            found = by_id.get(subtask_issue_id(parent_id, subtask.key))
        else:
            found = None
        if found is not None:
            bound[subtask.key] = found
    return bound


def subtask_issue_id(parent_id: str, key: str) -> str:
    """The client-chosen id of the sub-issue created for sub-task ``key`` of ``parent_id``."""
    return stable_uuid4(parent_id, "subtask", key)


def reuse_note(
    plan: Plan, existing: Sequence[ExistingSubIssue], parent_id: str | None = None
) -> str | None:
    """What the plan did with the existing sub-issues, for the report."""
    if not existing:
        return None
    bound = bindings(plan.subtasks, existing, parent_id)
    used = {sub.id for sub in bound.values()}
    parts = []
    if bound:
        items = ", ".join(f"{sub.identifier} (as `{key}`)" for key, sub in bound.items())
        parts.append(REUSED_TEXT.format(items=items))
    left = [sub for sub in existing if sub.id not in used]
    if left:
        items = ", ".join(
            f"{sub.identifier} ({sub.state_name})" if sub.state_name else sub.identifier
            for sub in left
        )
        parts.append(SKIPPED_TEXT.format(items=items))
    return " ".join(parts)
