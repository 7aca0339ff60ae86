"""What a webhook means for the daemon: start, follow up, stop, or ignore (sans-I/O).

``classify(payload, rules)`` is a pure function of the payload and the configuration. It
never raises on a well-formed JSON object: anything it does not understand is ``ignore``
with a reason. Each start/follow-up/stop carries a ``dedupe_key``: the *semantic* identity
of the change (a session id + action, an issue id + the assignment change), so the same
change delivered twice under two delivery ids starts nothing new.

Comments are follow-ups only on issues we are working on; that needs state, so the
decision says ``only_if_active`` and the adapter checks it. So are edits of an issue's
title or description (``context["edit"]`` holds the new text).

App mode: an agent session must never go unanswered, so a session event the access rules
turn away (or one without an issue) is a ``refuse`` carrying the reason, which the daemon
answers in the session. A delegation (``delegateId`` update) and the inbox notification
``issueAssignedToYou`` come with a session of their own: their start says
``expects_session`` in its context, so the work waits briefly for that session to carry
it. A prompt that Linear also delivers as a ``Comment`` shares the comment's dedupe key
(``comment:<sourceCommentId>``), so the reply is handled once.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from edge_worker.reporting.markers import has_any_marker
from edge_worker.webhooks.decisions import Decision, Kind, Rules, ignore
from edge_worker.webhooks.events import (
    AgentSessionEvent,
    AppUserNotification,
    CommentData,
    EntityEvent,
    IssueData,
    IssueRef,
)
from edge_worker.webhooks.lifecycle import classify_lifecycle

EDITABLE_FIELDS = ("title", "description")
"""Issue fields whose edit during the work is passed on to the planner and the agents."""


def classify(payload: dict[str, Any], rules: Rules) -> Decision:
    """Decide what ``payload`` (a decoded webhook body) asks of the daemon."""
    event_type = payload.get("type")
    if event_type in ("PermissionChange", "OAuthApp"):  # install lifecycle: lifecycle.py
        return classify_lifecycle(payload, rules)
    try:
        if event_type == "AgentSessionEvent":
            return _agent_session_event(AgentSessionEvent.model_validate(payload), rules)
        if event_type == "AppUserNotification":
            return _notification(AppUserNotification.model_validate(payload), rules)
        if event_type == "Issue":
            return _issue_event(EntityEvent.model_validate(payload), rules)
        if event_type == "Comment":
            return _comment_event(EntityEvent.model_validate(payload), rules)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return ignore(f"malformed {event_type} payload: {where}: {first['msg']}")
    return ignore(f"unhandled event type {event_type!r}")


def _team_allowed(issue: IssueRef | None, rules: Rules) -> bool:
    if not rules.allowed_teams:
        return True
    if issue is None:
        return False
    candidates = {issue.teamId}
    if issue.team is not None:
        candidates |= {issue.team.id, issue.team.key}
    return bool(candidates & rules.allowed_teams)


def _gate(issue: IssueRef | None, actor_id: str | None, rules: Rules) -> str | None:
    """Why an event may not start or steer work (access control), or ``None``."""
    if rules.agent_user_id and actor_id == rules.agent_user_id:
        return "written by our own user"
    if not _team_allowed(issue, rules):
        team = issue.team.key if issue and issue.team else (issue.teamId if issue else None)
        return f"team {team!r} is not in EDGE_WORKER_ALLOWED_TEAMS"
    if rules.allowed_users and actor_id not in rules.allowed_users:
        return f"user {actor_id!r} is not in EDGE_WORKER_ALLOWED_USERS"
    return None


def _agent_session_event(event: AgentSessionEvent, rules: Rules) -> Decision:
    session = event.agentSession
    issue = session.issue or (IssueRef(id=session.issueId) if session.issueId else None)
    if rules.agent_user_id and event.appUserId and event.appUserId != rules.agent_user_id:
        return ignore("agent session for another app user", issue)
    if issue is None or issue.id is None:
        return _refuse_session(event, "agent session without an issue", issue)
    activity = event.agentActivity
    actor = session.creator
    actor_id = session.creatorId or (actor.id if actor else None)
    if event.action == "prompted" and activity is not None:
        actor_id = activity.userId or (activity.user.id if activity.user else actor_id)
        actor = activity.user or actor
    if problem := _gate(issue, actor_id, rules):
        if rules.agent_user_id and actor_id == rules.agent_user_id:
            return ignore(problem, issue)
        return _refuse_session(event, problem, issue, actor_id)
    common: dict[str, Any] = {
        "issue_id": issue.id,
        "issue_identifier": issue.identifier,
        "session_id": session.id,
        "actor_id": actor_id,
        "actor_name": actor.name if actor else None,
    }
    if event.action == "created":
        return Decision(
            Kind.START,
            "agent session created",
            dedupe_key=f"session:{session.id}:created",
            context={
                "prompt_context": event.promptContext,
                "guidance": event.guidance or [],
                "previous_comments": [
                    c.model_dump(exclude_none=True) for c in event.previousComments or [] if c.body
                ],
            },
            **common,
        )
    if event.action == "prompted":
        if activity is None:
            return ignore("prompted without an activity", issue)
        key = f"activity:{activity.id or session.id}"
        if activity.sourceCommentId:  # the same reply may come as a Comment webhook too
            key = f"comment:{activity.sourceCommentId}"
        if activity.signal == "stop":
            return Decision(Kind.STOP, "stop signal", dedupe_key=key, **common)
        text = activity.content.get("body") if isinstance(activity.content, dict) else None
        text = text if isinstance(text, str) and text.strip() else activity.body
        if not text or not text.strip():
            return ignore("prompt without text", issue)
        return Decision(Kind.FOLLOW_UP, "prompted", dedupe_key=key, text=text, **common)
    return ignore(f"agent session action {event.action!r} needs nothing", issue)


def _refuse_session(
    event: AgentSessionEvent, reason: str, issue: IssueRef | None, actor_id: str | None = None
) -> Decision:
    """A session event the daemon will not act on but must answer (``refuse``)."""
    session = event.agentSession
    if event.action not in ("created", "prompted"):
        return ignore(reason, issue)
    activity_id = event.agentActivity.id if event.agentActivity else None
    return Decision(
        Kind.REFUSE,
        reason,
        issue_id=issue.id if issue else None,
        issue_identifier=issue.identifier if issue else None,
        dedupe_key=f"refuse:{session.id}:{activity_id or event.action}",
        session_id=session.id,
        actor_id=actor_id,
        context={"refusal": _refusal_code(reason)},
    )


def _refusal_code(reason: str) -> str:
    """Which user-facing refusal text answers ``reason`` (see ``orchestration.texts``)."""
    if reason.startswith("team "):
        return "team"
    if reason.startswith("user "):
        return "user"
    return "no_issue"


def _notification(event: AppUserNotification, rules: Rules) -> Decision:
    note = event.notification
    issue = note.issue or (IssueRef(id=note.issueId) if note.issueId else None)
    if rules.agent_user_id and event.appUserId and event.appUserId != rules.agent_user_id:
        return ignore("notification for another app user", issue)
    if issue is None or issue.id is None:
        return ignore("notification without an issue")
    actor_id = note.actorId or (note.actor.id if note.actor else None)
    kind = {"issueAssignedToYou": Kind.START, "issueUnassignedFromYou": Kind.STOP}.get(
        event.action or note.type or ""
    )
    if kind is None:
        return ignore(f"notification {event.action!r} needs nothing", issue)
    if kind is Kind.START and (problem := _gate(issue, actor_id, rules)):
        return ignore(problem, issue)
    return Decision(
        kind,
        event.action,
        issue_id=issue.id,
        issue_identifier=issue.identifier,
        dedupe_key=f"notification:{note.id or issue.id}:{event.action}",
        actor_id=actor_id,
        actor_name=note.actor.name if note.actor else None,
        context={"expects_session": True} if kind is Kind.START else {},
    )


def _issue_event(event: EntityEvent, rules: Rules) -> Decision:
    data = IssueData.model_validate(event.data)
    if data.id is None:
        return ignore("issue event without an id")
    actor_id = event.actor.id if event.actor else None
    actor_name = event.actor.name if event.actor else None
    ids: dict[str, Any] = {"issue_id": data.id, "issue_identifier": data.identifier}
    if event.action == "remove":
        return Decision(
            Kind.STOP,
            "issue removed",
            dedupe_key=f"issue:{data.id}:remove",
            actor_id=actor_id,
            actor_name=actor_name,
            **ids,
        )
    if event.action != "update" or not event.updatedFrom:
        return ignore(f"issue {event.action} needs nothing", data)
    me = rules.agent_user_id
    changed = event.updatedFrom
    for field_name in ("delegateId", "assigneeId"):
        if field_name not in changed:
            continue
        before, after = changed.get(field_name), getattr(data, field_name)
        key = f"issue:{data.id}:{field_name}:{before}->{after}@{data.updatedAt}"
        if me and after == me and before != me:
            if problem := _gate(data, actor_id, rules):
                return ignore(problem, data)
            return Decision(
                Kind.START,
                f"{'delegated' if field_name == 'delegateId' else 'assigned'} to us",
                dedupe_key=key,
                actor_id=actor_id,
                actor_name=actor_name,
                context={"expects_session": True} if field_name == "delegateId" else {},
                **ids,
            )
        if me and before == me and after != me:
            return Decision(
                Kind.STOP,
                f"{'undelegated' if field_name == 'delegateId' else 'unassigned'} from us",
                dedupe_key=key,
                actor_id=actor_id,
                actor_name=actor_name,
                **ids,
            )
    if "stateId" in changed and data.state is not None and data.state.type == "canceled":
        return Decision(
            Kind.STOP,
            "issue cancelled",
            dedupe_key=f"issue:{data.id}:canceled@{data.updatedAt}",
            actor_id=actor_id,
            actor_name=actor_name,
            only_if_active=True,
            **ids,
        )
    edited = [name for name in EDITABLE_FIELDS if name in changed]
    if edited:
        if problem := _gate(data, actor_id, rules):
            return ignore(problem, data)
        return Decision(
            Kind.FOLLOW_UP,
            "issue edited",
            dedupe_key=f"issue:{data.id}:edit:{','.join(edited)}@{data.updatedAt}",
            actor_id=actor_id,
            actor_name=actor_name,
            text=f"The issue's {' and '.join(edited)} changed.",
            only_if_active=True,
            context={
                "edit": {"fields": edited, "title": data.title, "description": data.description}
            },
            **ids,
        )
    return ignore("issue update needs nothing", data)


def _comment_event(event: EntityEvent, rules: Rules) -> Decision:
    data = CommentData.model_validate(event.data)
    issue = data.issue or (IssueRef(id=data.issueId) if data.issueId else None)
    if event.action != "create":
        return ignore(f"comment {event.action} needs nothing", issue)
    if issue is None or issue.id is None or data.id is None:
        return ignore("comment not on an issue")
    author = data.userId or (data.user.id if data.user else None)
    if author is None and event.actor is not None:
        author = event.actor.id
    if data.body and has_any_marker(data.body):
        return ignore("written by edge-worker", issue)
    if problem := _gate(issue, author, rules):
        return ignore(problem, issue)
    if not data.body or not data.body.strip():
        return ignore("empty comment", issue)
    return Decision(
        Kind.FOLLOW_UP,
        "comment",
        issue_id=issue.id,
        issue_identifier=issue.identifier,
        dedupe_key=f"comment:{data.id}",
        actor_id=author,
        actor_name=data.user.name if data.user else None,
        text=data.body,
        only_if_active=True,
    )
