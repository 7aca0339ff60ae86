"""A delivered pull request was merged or closed: move its sub-issue (and parent) on Linear.

Contract: :func:`pull_request_closed` is a DBOS workflow started once per GitHub delivery
(its workflow id is derived from ``X-GitHub-Delivery``, so a redelivery is a no-op).
- merged: the sub-issue moves to its team's first ``completed`` state; when every sub-issue
  of the parent is then completed, the parent moves there too.
- closed without merging: the sub-issue moves to its team's first ``canceled`` state and
  gets one comment (a client-chosen id) saying the sub-task is abandoned, with the link,
  and the sub-task's row in the parent's report comment is edited in place to say
  abandoned (a later re-render of the report from the orchestration shows its own status).
A per-issue pull request (``key`` is ``None``): merged moves the parent to its first
``completed`` state (its sub-issues were completed when they passed); closed unmerged gets
one comment on the parent.
The sub-issue is the parent's child named by the pull request's marker (so a sub-issue the
plan reused is found), else the id the daemon chose for it. Every step is safe to repeat
(moves are idempotent, the comment id is deterministic).
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from edge_worker.ids import stable_uuid4
from edge_worker.orchestration.existing import subtask_issue_id
from edge_worker.reporting.markers import find_marker
from edge_worker.reporting.report import REPORT_PURPOSE
from edge_worker.reporting.report_edit import with_row_status

ABANDONED_TEXT = (
    "The pull request {url} was closed without being merged, so this sub-task is abandoned. "
    "Its work stays on the branch; reopen the pull request or reassign the issue to pick it up."
)


def workflow_id(delivery: str) -> str:
    """The workflow id for one GitHub delivery."""
    return f"github-pr-closed:{delivery}"


@DBOS.step()
async def _state_of_type_step(issue_id: str, state_type: str) -> dict[str, Any]:
    """The issue's team, the first state of ``state_type`` and the parent's children."""
    from edge_worker.orchestration.steps import adapters

    linear = adapters().linear
    issue = await linear.issue(issue_id)
    states = await linear.team_states(issue.team.id)
    wanted = next((state.id for state in states if state.type == state_type), None)
    return {"state_id": wanted, "team_id": issue.team.id}


@DBOS.step()
async def _all_children_completed_step(parent_id: str) -> bool:
    from edge_worker.orchestration.steps import adapters

    parent = await adapters().linear.issue(parent_id)
    return bool(parent.children) and all(
        child.state.type == "completed" for child in parent.children
    )


@DBOS.step()
async def _move_step(issue_id: str, state_id: str) -> None:
    from edge_worker.orchestration.steps import adapters

    await adapters().linear.update_issue(issue_id, state_id=state_id)


@DBOS.step()
async def _comment_step(issue_id: str, comment_id: str, body: str) -> None:
    from edge_worker.orchestration.steps import adapters

    await adapters().linear.create_comment(id=comment_id, issue_id=issue_id, body=body)


@DBOS.step()
async def _mark_report_row_step(parent_id: str, sub_issue_id: str, status: str) -> bool:
    """Edit the sub-issue's row of the parent's report comment; ``False`` when none."""
    from edge_worker.orchestration.steps import adapters

    linear = adapters().linear
    identifier = (await linear.issue(sub_issue_id)).identifier
    parent = await linear.issue(parent_id)
    for comment in parent.comments:
        if find_marker(comment.body, REPORT_PURPOSE, parent_id):
            edited = with_row_status(comment.body, identifier, status)
            if edited is not None:
                await linear.update_comment(comment.id, edited)
            return True
    return False


@DBOS.step()
async def _sub_issue_step(parent_id: str, key: str, identifier: str | None) -> str:
    """The sub-issue's id: the parent's child the pull request's marker names (a reused
    sub-issue), else the id the daemon chose when it created the sub-issue."""
    from edge_worker.orchestration.steps import adapters

    if identifier:
        parent = await adapters().linear.issue(parent_id)
        for child in parent.children:
            if child.identifier.upper() == identifier:
                return child.id
    return subtask_issue_id(parent_id, key)


ISSUE_ABANDONED_TEXT = (
    "The pull request {url} carrying this issue's work was closed without being merged. "
    "The work stays on its branches; reopen the pull request or reassign the issue."
)


async def _issue_pull_request_closed(event: dict[str, Any]) -> str:
    parent = event["issue_id"]
    if event["merged"]:
        done = await _state_of_type_step(parent, "completed")
        if done["state_id"]:
            await _move_step(parent, done["state_id"])
        return "merged; issue done"
    comment_id = stable_uuid4(parent, "pull-request-abandoned", str(event["number"]))
    await _comment_step(parent, comment_id, ISSUE_ABANDONED_TEXT.format(url=event["url"]))
    return "abandoned"


@DBOS.workflow()
async def pull_request_closed(event: dict[str, Any]) -> str:
    """See the module contract; ``event`` has issue_id, key, merged, url, number."""
    if event.get("key") is None:  # the per-issue pull request: the parent and all children
        return await _issue_pull_request_closed(event)
    sub_issue = await _sub_issue_step(
        event["issue_id"], event["key"], event.get("sub_issue_identifier")
    )
    if event["merged"]:
        done = await _state_of_type_step(sub_issue, "completed")
        if done["state_id"]:
            await _move_step(sub_issue, done["state_id"])
        if done["state_id"] and await _all_children_completed_step(event["issue_id"]):
            await _move_step(event["issue_id"], done["state_id"])
            return "merged; parent done"
        return "merged"
    canceled = await _state_of_type_step(sub_issue, "canceled")
    if canceled["state_id"]:
        await _move_step(sub_issue, canceled["state_id"])
    comment_id = stable_uuid4(sub_issue, "pull-request-abandoned", str(event["number"]))
    await _comment_step(sub_issue, comment_id, ABANDONED_TEXT.format(url=event["url"]))
    await _mark_report_row_step(event["issue_id"], sub_issue, "abandoned")
    return "abandoned"
