"""What an MCP caller asks, checked and turned into outbox triggers (sans-I/O).

Contract: each ``check_*`` returns the caller-facing problem (a ``texts`` message) or
``None``; nothing here reads a database or the network. The records built here are the
same :class:`EventRecord` rows the webhook intake stores, so work an MCP client asks for
takes the same durable path as work Linear asks for: the outbox, the dispatcher, a DBOS
workflow whose id derives from the dedupe key (``mcp:<request id>:...``), so a retried
request (same ``request_id``) starts nothing new.
"""

from __future__ import annotations

from typing import Any

from edge_worker.ids import stable_uuid4
from edge_worker.mcp import texts
from edge_worker.settings import Settings
from edge_worker.storage.events import EventRecord

TITLE_LENGTH = 80


def check_source(description: str | None, issue: str | None) -> str | None:
    """Exactly one of a description (new work) or an issue reference, not empty."""
    if (description is None) == (issue is None):
        return texts.NEED_ONE_SOURCE
    if description is not None and not description.strip():
        return texts.EMPTY_TEXT.format(field="description")
    if issue is not None and not issue.strip():
        return texts.EMPTY_TEXT.format(field="issue reference")
    return None


def check_repository(settings: Settings, repository: str | None) -> str | None:
    """A named repository must be configured and, when ``mcp.repositories`` is set, in it."""
    if repository is None:
        return None
    known = [repo.id for repo in settings.repositories]
    if repository not in known:
        return texts.UNKNOWN_REPOSITORY.format(repo=repository, known=", ".join(known) or "none")
    allowed = settings.mcp.repositories
    if allowed and repository not in allowed:
        return texts.REPOSITORY_NOT_ALLOWED.format(repo=repository, allowed=", ".join(allowed))
    return None


def check_team(settings: Settings, ref: str, team_id: str, team_key: str) -> str | None:
    """The issue's team must be allowed (``EDGE_WORKER_ALLOWED_TEAMS``; empty: any)."""
    allowed = set(settings.allowed_teams)
    if allowed and not allowed & {team_id, team_key}:
        return texts.TEAM_NOT_ALLOWED.format(ref=ref, team=team_key)
    return None


def title_of(description: str, title: str | None) -> str:
    """The new issue's title: the one given, or the description's first line, shortened."""
    if title and title.strip():
        return title.strip()[:TITLE_LENGTH]
    first = description.strip().splitlines()[0].strip()
    return first if len(first) <= TITLE_LENGTH else first[: TITLE_LENGTH - 1] + "…"


def new_issue_id(request_id: str) -> str:
    """The client-chosen id of the issue made for ``request_id``: a retry finds it."""
    return stable_uuid4("mcp-issue", request_id)


def start_record(
    *,
    request_id: str,
    issue_id: str,
    identifier: str,
    team_id: str,
    repository: str | None,
    strategy: str | None,
) -> EventRecord:
    """The outbox row that starts work on the issue (as an assignment would)."""
    detail: dict[str, Any] = {
        "team_id": team_id,
        "session_id": None,
        "actor_id": None,
        "actor_name": texts.FEEDBACK_ACTOR,
        "text": None,
        "context": {},
    }
    if repository is not None:
        detail["repository"] = repository
    if strategy is not None:
        detail["strategy"] = strategy
    key = f"mcp:{request_id}:start"
    return EventRecord(
        delivery_id=key,
        decision="start",
        reason="asked through MCP",
        dedupe_key=key,
        event_type="Mcp",
        action="create_work",
        issue_id=issue_id,
        issue_identifier=identifier,
        detail=detail,
    )


def control_record(
    *, request_id: str, kind: str, issue_id: str, identifier: str, text: str | None = None
) -> EventRecord:
    """The outbox row of a follow-up (``text``) or a stop for the issue's running work."""
    key = f"mcp:{request_id}:{kind}"
    return EventRecord(
        delivery_id=key,
        decision=kind,
        reason=f"{kind} asked through MCP",
        dedupe_key=key,
        event_type="Mcp",
        action=kind,
        issue_id=issue_id,
        issue_identifier=identifier,
        detail={
            "team_id": None,
            "session_id": None,
            "actor_id": None,
            "actor_name": texts.FEEDBACK_ACTOR,
            "text": text,
            "context": {},
        },
    )


def feedback_text(text: str, subtask: str | None) -> str:
    """The follow-up text, naming the sub-task it is about when one is given."""
    return texts.FEEDBACK_FOR_TASK.format(key=subtask, text=text) if subtask else text
