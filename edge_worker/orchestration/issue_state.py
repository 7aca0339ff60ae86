"""The state an issue's orchestration carries, and what reads or shows it.

Contract:
- :class:`Orchestration` holds everything the orchestration workflow keeps between its
  steps (rebuilt on replay from the recorded step results): the trigger, the issue
  snapshot, the progress, notes, follow-ups, budget and session; it says things in the
  session under ids stable across replays, and writes the report comment.
- :func:`recv` and :func:`drain_messages` take control messages (``CONTROL_TOPIC``),
  adopting a session that arrives for the work (:func:`adopt_session`) on the way.
- :func:`planning_context` is what the planner sees; :func:`publish_plan` shows the
  sub-tasks in the session's plan; :func:`available_executors` lists the executors still
  usable for this issue.
"""

from __future__ import annotations

from typing import Any

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.costs.budget import BudgetLimits, IssueBudget
from edge_worker.costs.money import Total
from edge_worker.ids import stable_uuid4
from edge_worker.orchestration import edits, steps, texts
from edge_worker.orchestration.attachments import AttachmentRef
from edge_worker.orchestration.context import Comment as ContextComment
from edge_worker.orchestration.context import PlanningContext
from edge_worker.orchestration.existing import ExistingSubIssue
from edge_worker.orchestration.guidance import parse_guidance
from edge_worker.orchestration.progress import Progress, report_model
from edge_worker.orchestration.workflow_config import CONTROL_TOPIC, LOCAL_EXECUTORS
from edge_worker.reporting.report import ReportState

log = structlog.get_logger(__name__)


class Orchestration:
    """The state an orchestration carries between its steps (rebuilt on replay)."""

    def __init__(self, trigger: dict[str, Any], workflow_id: str) -> None:
        self.trigger = trigger
        self.workflow_id = workflow_id
        self.issue_id: str = trigger["issue_id"]
        self.identifier: str = trigger.get("issue_identifier") or self.issue_id
        self.session_id: str | None = trigger.get("session_id")
        self.settings = services.current().settings
        self.limits = BudgetLimits.from_settings(self.settings.budget)
        self.budget = IssueBudget.initial(self.limits)
        self.progress: Progress | None = None
        self.notes: list[str] = []
        self.follow_ups: list[ContextComment] = []
        self.unavailable: dict[str, str] = {}
        self.dispatches: dict[str, int] = {}
        self.stopped_by: str | None = None
        self.last_progress_update = 0.0
        self.snapshot: dict[str, Any] = {}
        self.planning_cost: Total | None = None
        self.said = 0
        self.day_warned: set[str] = set()
        self.report_linked = False

    def note(self, text: str) -> None:
        """Add a note to the report (once: a repeated message is not repeated)."""
        if text not in self.notes:
            self.notes.append(text)

    # ids for things the orchestration says, stable across replays
    def say_id(self) -> str:
        """A new id for something said, stable across replays."""
        self.said += 1
        return stable_uuid4(self.workflow_id, "say", str(self.said))

    @property
    def team_id(self) -> str:
        """The issue's team."""
        return str(self.snapshot["issue"]["team"]["id"])

    def state_id(self, *, type_: str | None = None, name: str | None = None) -> str | None:
        """The team's first workflow state of ``type_`` or named ``name`` (by position)."""
        for state in sorted(self.snapshot.get("states", []), key=lambda s: s["position"]):
            if (type_ and state["type"] == type_) or (name and state["name"] == name):
                return str(state["id"])
        return None

    async def report(self, state: ReportState) -> None:
        """Write the report comment with the progress so far, in ``state``."""
        money = await steps.money_step(self.issue_id)
        model = report_model(
            self.progress,
            issue_id=self.issue_id,
            issue_identifier=self.identifier,
            state=state,
            total=Total(**money["issue"]),
            today=Total(**money["day"]),
            daily_limit=self.limits.per_day,
            planning_cost=self.planning_cost,
            notes=self.notes,
            stopped_by=self.stopped_by,
        )
        data = {
            "issue_id": model.issue_id,
            "issue_identifier": model.issue_identifier,
            "state": model.state,
            "rows": [{**row.__dict__, "cost": steps.total_json(row.cost)} for row in model.rows],
            "total": steps.total_json(model.total),
            "today_spend": steps.total_json(model.today_spend),
            "daily_limit": str(model.daily_limit) if model.daily_limit is not None else None,
            "stopped_by": model.stopped_by,
            "notes": list(model.notes),
            "planning_cost": steps.total_json(model.planning_cost)
            if model.planning_cost is not None
            else None,
        }
        await steps.post_report_step(data)

    async def say(
        self, kind: str, body: str, *, options: list[str] | None = None, final: bool = False
    ) -> None:
        """Say something in the session (a comment in user mode); ``options`` make an
        elicitation a ``select``; ``final`` drops progress not yet sent (after a stop)."""
        await steps.say_step(
            self.issue_id,
            self.session_id,
            kind,
            body,
            self.say_id(),
            options=options,
            final=final,
        )

    async def link_report(self) -> None:
        """Show the report comment among the session's links (once)."""
        if self.session_id and self.snapshot and not self.report_linked:
            self.report_linked = True
            url = report_url(self.snapshot["issue"]["url"], self.issue_id)
            await steps.add_session_links_step(
                self.session_id, [{"label": texts.REPORT_LINK_LABEL, "url": url}]
            )


def report_url(issue_url: str, issue_id: str) -> str:
    """The Linear URL of the issue's report comment (its id is chosen by the daemon)."""
    comment_id = stable_uuid4(issue_id, steps.REPORT_PURPOSE)
    return f"{issue_url}#comment-{comment_id[:8]}"


async def recv(o: Orchestration, timeout: float) -> dict[str, Any] | None:
    """The next control message within ``timeout`` seconds; a session arriving for this
    work (``kind: session``) is adopted on the way and not returned."""
    while True:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=timeout)
        if message is None or message.get("kind") != "session":
            return dict(message) if message is not None else None
        await adopt_session(o, message)


async def adopt_session(o: Orchestration, message: dict[str, Any]) -> None:
    """Make the session that arrived after the work started carry it: from now on the
    plan, the activities, the links and the final response go there."""
    if o.session_id is not None:
        return
    o.session_id = str(message["session_id"])
    log.info("agent session now carries the work", session=o.session_id)
    context = message.get("context") or {}
    own = o.trigger.get("context") or {}
    if not own.get("prompt_context") and context.get("prompt_context"):
        o.trigger["context"] = {**own, **context}
    await o.link_report()
    await publish_plan(o)


def planning_context(o: Orchestration) -> PlanningContext:
    """What the planner is given: the issue, its thread, attachments, guidance, the
    repository, the follow-ups and (when re-planning) the work so far."""
    issue = o.snapshot["issue"]
    context = o.trigger.get("context") or {}
    guidance = context.get("guidance") or []
    repo = o.trigger.get("_repository") or {}
    known_comments = {c.get("id") for c in issue.get("comments", [])}
    return PlanningContext(
        issue_id=issue["id"],
        issue_identifier=issue["identifier"],
        title=issue["title"],
        description=issue.get("description"),
        labels=issue.get("labels", []),
        project=issue.get("project"),
        team_key=issue["team"]["key"],
        comments=[
            ContextComment(author=c.get("user_id") or "integration", body=c["body"])
            for c in issue.get("comments", [])
        ],
        previous_comments=[  # the thread's comments the issue's own list does not hold
            ContextComment(author=c.get("userId") or "integration", body=c["body"])
            for c in context.get("previous_comments") or []
            if c.get("id") not in known_comments
        ],
        existing_subissues=subissues_at_start(o),
        attachments=[AttachmentRef.model_validate(a) for a in o.trigger.get("_attachments") or []],
        prompt_context=context.get("prompt_context"),
        guidance_rules=parse_guidance(guidance),
        repository_id=repo.get("id"),
        repository_path=str(repo["path"]) if repo.get("path") else None,
        base_branch=repo.get("base_branch"),
        follow_ups=o.follow_ups,
        work_so_far=_work_so_far(o),
    )


def _work_so_far(o: Orchestration) -> list[str]:
    """The sub-tasks already planned, a line each, for a follow-up's planning."""
    if o.progress is None:
        return []
    return [
        f"`{r.key}` {r.title}: {r.status}; verification {r.verification}"
        + (f"; {r.note}" if r.note else "")
        + (f"; branch {r.branch}" if r.branch else "")
        + (f"; pull request {r.pr_url}" if r.pr_url else "")
        for r in o.progress.tasks.values()
    ]


def subissues_at_start(o: Orchestration) -> list[ExistingSubIssue]:
    """The sub-issues the issue had when the work started."""
    return [ExistingSubIssue.from_snapshot(c) for c in o.snapshot["issue"].get("children", [])]


async def drain_messages(o: Orchestration) -> dict[str, Any] | None:
    """Take queued control messages without waiting; returns a stop if one came."""
    while True:
        message = await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=0)
        if message is None:
            return None
        if message.get("kind") == "stop":
            return dict(message)
        if (edit := edits.edit_of(message)) is not None:  # planning has not started yet
            edits.apply_to_snapshot(o.snapshot["issue"], edit)
            await o.say("thought", edits.acknowledgement(edit))
            continue
        if message.get("kind") == "session":
            await adopt_session(o, message)
        elif message.get("kind") == "follow_up" and message.get("text"):
            o.follow_ups.append(
                ContextComment(author=message.get("actor_name") or "user", body=message["text"])
            )


async def publish_plan(o: Orchestration) -> None:
    """Show the sub-tasks and their states as the session's plan (with a session only)."""
    if not o.session_id or o.progress is None:
        return
    status_map = {"pending": "pending", "running": "inProgress", "passed": "completed"}
    plan_steps = [
        {
            "content": f"{t.identifier or t.key}: {t.title}",
            "status": status_map.get(t.status, "canceled"),
        }
        for t in o.progress.tasks.values()
    ]
    await steps.publish_session_plan_step(o.session_id, plan_steps)


def available_executors(o: Orchestration) -> list[str]:
    """The executors this issue may still use: local ones, Codegen when configured, none
    that reported itself unavailable."""
    names = list(LOCAL_EXECUTORS)
    if o.settings.codegen.org_id is not None and o.settings.codegen.api_token is not None:
        names.append("codegen")
    return [n for n in names if n not in o.unavailable]
