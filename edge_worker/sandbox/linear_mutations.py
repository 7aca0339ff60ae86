"""The Linear stand-in's write side: :class:`MutationRoot`, whose methods resolve the
mutations the client uses.

Mutations check what Linear checks: referenced entities exist, client-chosen ids are UUID
v4 and unique, bodies are not empty, activity content is well formed, only the author
edits a comment. Refusals raise :class:`StandInError`.
"""

from __future__ import annotations

import uuid
from typing import Any

from edge_worker.sandbox.linear_store import (
    AGENT_WRITABLE_TYPES,
    EPHEMERAL_TYPES,
    AgentActivity,
    Info,
    LinearStore,
    StandInError,
    is_uuid4,
    not_found,
)
from edge_worker.sandbox.linear_views import (
    ActivityView,
    AttachmentView,
    CommentView,
    DocumentView,
    IssueView,
    SessionView,
    View,
)

_DOCUMENT_FIELDS = frozenset({"id", "title", "content", "teamId", "issueId", "color", "icon"})


def _sync_id() -> float:
    return float(uuid.uuid4().int % 1_000_000)


class MutationRoot(View):
    typename = "Mutation"

    def __init__(self, store: LinearStore) -> None:
        self._store = store

    def _new_id(self, requested: str | None) -> str:
        if requested is None:
            return str(uuid.uuid4())
        if not is_uuid4(requested):
            raise StandInError(
                "Argument Validation Error",
                user_message=f"id must be a UUID v4, got {requested!r}.",
            )
        if self._store.taken(requested):
            raise StandInError(
                "Argument Validation Error",
                user_message=f"An entity with id {requested} already exists.",
            )
        return requested

    def _state_for(self, team_id: str, state_id: str) -> str:
        state = self._store.states.get(state_id)
        if state is None:
            raise not_found("WorkflowState")
        if state.team_id != team_id:
            raise StandInError(
                "Argument Validation Error",
                user_message="The workflow state does not belong to the issue's team.",
            )
        return state.id

    def _label_ids(self, label_ids: list[str]) -> list[str]:
        for label_id in label_ids:
            if label_id not in self._store.labels:
                raise not_found("IssueLabel")
        return list(label_ids)

    def issueCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        team = store.find_team(input["teamId"])
        title = (input.get("title") or "").strip()
        if not title:
            raise StandInError("Argument Validation Error", user_message="title must not be empty.")
        new_id = self._new_id(input.get("id"))
        parent_id = input.get("parentId")
        if parent_id is not None:
            parent_id = store.find_issue(parent_id).id
        state_id = input.get("stateId")
        if state_id is not None:
            state_id = self._state_for(team.id, state_id)
        for user_field in ("assigneeId", "delegateId"):
            if input.get(user_field) and input[user_field] not in store.users:
                raise not_found("User")
        label_ids = self._label_ids(input.get("labelIds") or [])
        issue = store.add_issue(
            title,
            input.get("description"),
            team_id=team.id,
            issue_id=new_id,
            parent_id=parent_id,
            state_id=state_id,
            creator_id=store.viewer_id,
            assignee_id=input.get("assigneeId"),
            delegate_id=input.get("delegateId"),
            label_ids=label_ids,
        )
        return {"success": True, "lastSyncId": _sync_id(), "issue": IssueView(store, issue)}

    def issueUpdate(self, info: Info, id: str, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        issue = store.find_issue(id)
        if input.get("stateId") is not None:
            issue.state_id = self._state_for(issue.team_id, input["stateId"])
        if "title" in input:
            if not (input["title"] or "").strip():
                raise StandInError(
                    "Argument Validation Error", user_message="title must not be empty."
                )
            issue.title = input["title"]
        if "description" in input:
            issue.description = input["description"]
        if "parentId" in input:
            issue.parent_id = store.find_issue(input["parentId"]).id if input["parentId"] else None
        if "labelIds" in input:
            issue.label_ids = self._label_ids(input["labelIds"] or [])
        for user_field, attribute in (("assigneeId", "assignee_id"), ("delegateId", "delegate_id")):
            if user_field in input:
                if input[user_field] and input[user_field] not in store.users:
                    raise not_found("User")
                setattr(issue, attribute, input[user_field])
        issue.updated_at = store.clock()
        return {"success": True, "lastSyncId": _sync_id(), "issue": IssueView(store, issue)}

    def commentCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        if not input.get("issueId"):
            raise StandInError(
                "Argument Validation Error", user_message="A comment needs an issueId here."
            )
        issue = store.find_issue(input["issueId"])
        body = input.get("body") or ""
        if not body.strip():
            raise StandInError("Argument Validation Error", user_message="body must not be empty.")
        new_id = self._new_id(input.get("id"))
        comment = store.add_comment(issue.id, body, user_id=store.viewer_id, comment_id=new_id)
        return {"success": True, "lastSyncId": _sync_id(), "comment": CommentView(store, comment)}

    def documentCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        """A document in a team (by id) and/or on an issue (id or identifier); a project or
        other parent is not modelled and refused as such."""
        store = self._store
        unmodelled = sorted(
            k for k, v in input.items() if v is not None and k not in _DOCUMENT_FIELDS
        )
        if unmodelled:
            raise StandInError(
                f"the Linear stand-in does not implement documentCreate with {unmodelled}",
                code="NOT_IMPLEMENTED",
                kind="internal error",
            )
        team_id, issue_id = input.get("teamId"), input.get("issueId")
        if not team_id and not issue_id:
            raise StandInError(
                "Argument Validation Error",
                user_message="A document needs a team, issue or project to belong to.",
            )
        if team_id and team_id not in store.teams:
            raise not_found("Team")
        issue = store.find_issue(issue_id) if issue_id else None
        new_id = self._new_id(input.get("id"))
        document = store.add_document(
            input["title"],
            input.get("content"),
            team_id=team_id or None,
            issue_id=issue.id if issue else None,
            creator_id=store.viewer_id,
            document_id=new_id,
        )
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "document": DocumentView(store, document),
        }

    def commentUpdate(self, info: Info, id: str, input: dict[str, Any], **_: Any) -> dict[str, Any]:
        store = self._store
        comment = store.comments.get(id)
        if comment is None:
            raise not_found("Comment")
        if comment.user_id != store.viewer_id:
            raise StandInError(
                "Forbidden",
                code="FORBIDDEN",
                kind="forbidden",
                user_message="You can only edit your own comments.",
            )
        if "body" in input:
            if not (input["body"] or "").strip():
                raise StandInError(
                    "Argument Validation Error", user_message="body must not be empty."
                )
            comment.body = input["body"]
        comment.updated_at = store.clock()
        return {"success": True, "lastSyncId": _sync_id(), "comment": CommentView(store, comment)}

    def agentActivityCreate(self, info: Info, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        session = store.sessions.get(input["agentSessionId"])
        if session is None:
            raise not_found("AgentSession")
        content = input["content"]
        problem = activity_content_problem(content)
        if problem:
            raise StandInError("Argument Validation Error", user_message=problem)
        ephemeral = bool(input.get("ephemeral"))
        if ephemeral and content["type"] not in EPHEMERAL_TYPES:
            raise StandInError(
                "Argument Validation Error",
                user_message="Only thought and action activities can be ephemeral.",
            )
        new_id = self._new_id(input.get("id"))
        activity = AgentActivity(
            id=new_id,
            session_id=session.id,
            content=dict(content),
            ephemeral=ephemeral,
            created_at=store.clock(),
            user_id=store.viewer_id,
            signal=input.get("signal"),
            signal_metadata=input.get("signalMetadata"),
        )
        store.activities[activity.id] = activity
        # Linear's rules: the last activity sets the state; a response ends the session,
        # an error marks it failed, an elicitation waits for the user.
        session.status = {
            "response": "complete",
            "error": "error",
            "elicitation": "awaitingInput",
        }.get(content["type"], "active")
        activity.status_after = session.status
        session.updated_at = activity.created_at
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "agentActivity": ActivityView(store, activity),
        }

    def attachmentLinkURL(
        self, info: Info, issueId: str, url: str, title: str | None = None, **_: Any
    ) -> dict[str, Any]:
        store = self._store
        issue = store.find_issue(issueId)
        for attachment in store.attachments.values():
            if attachment.issue_id == issue.id and attachment.url == url:
                attachment.title = title or attachment.title
                break
        else:
            attachment = store.add_attachment(issue.id, title or url, url)
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "attachment": AttachmentView(attachment),
        }

    def agentSessionUpdate(self, info: Info, id: str, input: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        session = store.sessions.get(id)
        if session is None:
            raise not_found("AgentSession")
        if input.get("externalUrls") is not None:
            session.external_urls = [dict(link) for link in input["externalUrls"]]
        else:
            known = {link["url"] for link in session.external_urls}
            for link in input.get("addedExternalUrls") or []:
                if link["url"] not in known:
                    session.external_urls.append(dict(link))
                    known.add(link["url"])
            removed = set(input.get("removedExternalUrls") or [])
            session.external_urls = [u for u in session.external_urls if u["url"] not in removed]
        if "plan" in input:
            session.plan = input["plan"]
        session.updated_at = store.clock()
        return {
            "success": True,
            "lastSyncId": _sync_id(),
            "agentSession": SessionView(store, session),
        }


def activity_content_problem(content: Any) -> str | None:
    """Why ``content`` is not an activity an agent may post, or ``None``."""
    if not isinstance(content, dict):
        return "content must be an object."
    kind = content.get("type")
    if kind not in AGENT_WRITABLE_TYPES:
        return f"content.type must be one of {sorted(AGENT_WRITABLE_TYPES)}."
    if kind == "action":
        if not str(content.get("action") or "").strip():
            return "An action activity needs a non-empty action."
        if not isinstance(content.get("parameter"), str):
            return "An action activity needs a parameter."
        return None
    if not str(content.get("body") or "").strip():
        return f"A {kind} activity needs a non-empty body."
    return None
