"""What a GitHub webhook about the daemon's pull requests means (sans-I/O).

Contract:
- :func:`signature_valid` checks ``X-Hub-Signature-256`` (``sha256=<hex HMAC of the raw
  body>``) in constant time.
- :func:`classify` turns an event name and payload into a :class:`PullRequestEvent`:
  ``feedback`` (a review requesting changes, a review comment, a failing or timed-out check
  run on the pull request's head), ``merged``, ``closed`` (closed without merging) or
  ``ignore`` with the reason. Only branches the daemon names (``edge-worker/<ISSUE>-<key>``)
  are acted on, and events sent by the daemon's own GitHub identities are ignored.
- Feedback text names the sub-task's key in backticks, which is how a follow-up reaches
  that sub-task's session (see ``orchestration/follow_ups.py``). Feedback on a per-issue
  pull request (branch ``edge-worker/<ISSUE>``) names no sub-task (``key`` is ``None``):
  it reaches the issue's orchestrator as a follow-up, as a comment on the issue would, and
  the orchestrator re-plans from it; a review comment's file is named so it can tell.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from edge_worker.delivery.text import marked_sub_issue

BRANCH = re.compile(r"^edge-worker/(?P<issue>[A-Za-z][A-Za-z0-9]*-\d+)-(?P<key>[a-z0-9_-]+)$")
ISSUE_BRANCH = re.compile(r"^edge-worker/(?P<issue>[A-Za-z][A-Za-z0-9]*-\d+)$")
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "action_required", "startup_failure"})
FEEDBACK_LIMIT = 4000
REVIEW_FEEDBACK = "`{key}`: {login} requested changes on the pull request {url}:\n\n{body}"
COMMENT_FEEDBACK = "`{key}`: {login} commented on `{path}` in the pull request {url}:\n\n{body}"
CHECK_FEEDBACK = "`{key}`: the check `{name}` failed on the pull request {url}: {summary}"
ISSUE_REVIEW_FEEDBACK = "{login} requested changes on the issue's pull request {url}:\n\n{body}"
ISSUE_COMMENT_FEEDBACK = "{login} commented on {path} in the issue's pull request {url}:\n\n{body}"
ISSUE_CHECK_FEEDBACK = "The check {name} failed on the issue's pull request {url}: {summary}"

Action = Literal["feedback", "merged", "closed", "ignore"]


@dataclass(frozen=True)
class PullRequestEvent:
    """One webhook, understood."""

    action: Action
    reason: str
    issue_identifier: str | None = None
    key: str | None = None
    number: int | None = None
    url: str | None = None
    text: str = ""
    sender: str = ""
    sub_issue_identifier: str | None = None
    """The sub-issue its marker names (a reused one's identifier is not in the branch)."""


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=`` and the HMAC-SHA256 of ``body`` with ``secret``."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


def sub_task_of(branch: str) -> tuple[str, str] | None:
    """``(issue identifier, key)`` of a daemon branch, else ``None``."""
    found = BRANCH.match(branch or "")
    return (found["issue"].upper(), found["key"]) if found else None


def _clip(text: str | None) -> str:
    text = (text or "").strip() or "(no text)"
    return text if len(text) <= FEEDBACK_LIMIT else text[:FEEDBACK_LIMIT] + "…"


def _ignore(reason: str) -> PullRequestEvent:
    return PullRequestEvent("ignore", reason)


def classify(event: str, payload: dict[str, Any], own_logins: Collection[str]) -> PullRequestEvent:
    """See the module contract."""
    sender = str((payload.get("sender") or {}).get("login") or "")
    if sender and sender.lower() in {login.lower() for login in own_logins}:
        return _ignore("sent by the daemon itself")
    if event == "check_run":
        return _check_run(payload, sender)
    pull = payload.get("pull_request")
    if not isinstance(pull, dict):
        return _ignore(f"not about a pull request: {event}")
    ref = str((pull.get("head") or {}).get("ref") or "")
    whole = ISSUE_BRANCH.match(ref)
    if whole is not None:
        return _issue_pull_request(event, payload, pull, whole["issue"].upper(), sender)
    named = sub_task_of(ref)
    if named is None:
        return _ignore("not a pull request of the daemon")
    issue, key = named
    common = {
        "issue_identifier": issue,
        "key": key,
        "number": int(pull["number"]),
        "url": str(pull.get("html_url") or ""),
        "sender": sender,
        "sub_issue_identifier": marked_sub_issue(pull.get("body"), key),
    }
    action = payload.get("action")
    if event == "pull_request" and action == "closed":
        if pull.get("merged"):
            return PullRequestEvent("merged", "pull request merged", **common)  # type: ignore[arg-type]
        return PullRequestEvent("closed", "pull request closed unmerged", **common)  # type: ignore[arg-type]
    if event == "pull_request_review" and action == "submitted":
        review = payload.get("review") or {}
        if str(review.get("state", "")).lower() != "changes_requested":
            return _ignore("a review that does not request changes")
        text = REVIEW_FEEDBACK.format(
            key=key, login=sender, url=common["url"], body=_clip(review.get("body"))
        )
        return PullRequestEvent("feedback", "changes requested", text=text, **common)  # type: ignore[arg-type]
    if event == "pull_request_review_comment" and action == "created":
        comment = payload.get("comment") or {}
        text = COMMENT_FEEDBACK.format(
            key=key,
            login=sender,
            path=comment.get("path") or "?",
            url=common["url"],
            body=_clip(comment.get("body")),
        )
        return PullRequestEvent("feedback", "review comment", text=text, **common)  # type: ignore[arg-type]
    return _ignore(f"not acted on: {event} {action}")


def _issue_pull_request(
    event: str, payload: dict[str, Any], pull: dict[str, Any], issue: str, sender: str
) -> PullRequestEvent:
    """A per-issue pull request (``key`` is ``None``): its merge or close, and feedback for
    the issue's orchestrator (see the module contract)."""
    common: dict[str, Any] = {
        "issue_identifier": issue,
        "number": int(pull["number"]),
        "url": str(pull.get("html_url") or ""),
        "sender": sender,
    }
    action = payload.get("action")
    if event == "pull_request" and action == "closed":
        if pull.get("merged"):
            return PullRequestEvent("merged", "pull request merged", **common)
        return PullRequestEvent("closed", "pull request closed unmerged", **common)
    if event == "pull_request_review" and action == "submitted":
        review = payload.get("review") or {}
        if str(review.get("state", "")).lower() != "changes_requested":
            return _ignore("a review that does not request changes")
        text = ISSUE_REVIEW_FEEDBACK.format(
            login=sender, url=common["url"], body=_clip(review.get("body"))
        )
        return PullRequestEvent("feedback", "changes requested", text=text, **common)
    if event == "pull_request_review_comment" and action == "created":
        comment = payload.get("comment") or {}
        text = ISSUE_COMMENT_FEEDBACK.format(
            login=sender,
            path=comment.get("path") or "?",
            url=common["url"],
            body=_clip(comment.get("body")),
        )
        return PullRequestEvent("feedback", "review comment", text=text, **common)
    return _ignore(f"not acted on: {event} {action}")


def _check_run(payload: dict[str, Any], sender: str) -> PullRequestEvent:
    run = payload.get("check_run") or {}
    if payload.get("action") != "completed" or run.get("conclusion") not in FAILED_CONCLUSIONS:
        return _ignore("a check run that did not fail")
    output = run.get("output") or {}
    summary = _clip(output.get("summary") or output.get("title") or run.get("conclusion"))
    url = str(run.get("html_url") or "")
    name = run.get("name") or "?"
    for pull in run.get("pull_requests") or []:
        ref = str((pull.get("head") or {}).get("ref") or "")
        whole = ISSUE_BRANCH.match(ref)
        if whole is not None:
            return PullRequestEvent(
                "feedback",
                "check run failed",
                issue_identifier=whole["issue"].upper(),
                number=int(pull["number"]),
                url=url,
                text=ISSUE_CHECK_FEEDBACK.format(name=name, url=url, summary=summary),
                sender=sender,
            )
        named = sub_task_of(ref)
        if named is None:
            continue
        issue, key = named
        text = CHECK_FEEDBACK.format(key=key, name=name, url=url, summary=summary)
        return PullRequestEvent(
            "feedback",
            "check run failed",
            issue_identifier=issue,
            key=key,
            number=int(pull["number"]),
            url=url,
            text=text,
            sender=sender,
        )
    return _ignore("a failed check run on no pull request of the daemon")
