"""The console's controls (POST): each checked, carried out once, and audited.

Contract: a control is refused, changes nothing and is written to the audit log as
``refused`` with its reason when the session is read-only (403), the form lacks the
session's CSRF value or comes from another origin (403), the issue is unknown (404) or not
in flight (409), or the form's one-time nonce was used before, i.e. a replay (409).
Otherwise it is audited as ``accepted`` before it is carried out, then as ``done`` (or
``failed`` with the reason). The answer redirects to the issue's page (303), or says why
not in plain text.

Each control sends the running orchestration the message the matching Linear event
becomes (on the control topic, through DBOS with the nonce as its idempotency key):
*stop* is Linear's stop signal, so the issue ends the way a stop from Linear ends it;
*answer* is a reply on the issue, so it answers what the issue waits for (a repository, a
budget's "continue", which raises the issue's budget once) or is taken as a follow-up;
*retry* is a reply naming a finished sub-task, which runs it again (in its session).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from edge_worker.console import audit, queries
from edge_worker.console.context import Console, actor_of, base_path, role_of
from edge_worker.console.records import IssueRecord
from edge_worker.orchestration.workflows import CONTROL_TOPIC
from edge_worker.storage.work import ACTIVE_STATES

log = structlog.get_logger(__name__)

STOP_ACTION = "stop"
ANSWER_ACTION = "answer"
RETRY_ACTION = "retry"
RETRY_TEXT = "Please run `{key}` again (asked from the operator console)."
NO_KEY = "Name the sub-task to run again."
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
ACTOR_NAME = "an operator (console)"
MAX_ANSWER = 4000
EMPTY_ANSWER = "The answer is empty: write the reply the issue waits for."
LONG_ANSWER = f"The answer is longer than {MAX_ANSWER} characters."
READ_ONLY = "Your session is read-only: controls need the operator token."
BAD_CSRF = "The form is missing its security value or came from another site: reload the page."
UNKNOWN = "No issue {ref} in this daemon's database."
NOT_IN_FLIGHT = "{ref} is not in flight (it is {state}): no control applies."
REPLAYED = "This form was already used: reload the page to act again."
UNDELIVERED = "The control could not be delivered ({error}); nothing changed, try again."
NO_NONCE = "The form is missing its one-time value: reload the page."


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body).items() if v}


def _same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (no header: a script,
    which the CSRF value already vouches for). Only the host is compared: behind a
    TLS-terminating proxy the page is ``https`` while the daemon is asked over ``http``."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


MessageBuilder = Callable[[IssueRecord, dict[str, str]], "dict[str, Any] | str"]
"""Builds the control message from the issue and the form, or returns why it cannot."""


def control_handler(
    console: Console, action: str, build: MessageBuilder
) -> Callable[[Request], Awaitable[Response]]:
    """The handler of ``POST /issue/{ref}/<action>`` (see the module contract)."""

    async def handle(request: Request) -> Response:
        ref = str(request.path_params["ref"])
        actor = actor_of(request)
        form = await _form(request)
        engine = console.db()
        await asyncio.to_thread(audit.ensure_table, engine)

        async def refuse(status: int, reason: str) -> Response:
            log.warning(
                "console control refused", action=action, target=ref, actor=actor, reason=reason
            )
            await asyncio.to_thread(
                audit.refused, engine, actor=actor, action=action, target=ref, reason=reason
            )
            return PlainTextResponse(reason, status_code=status)

        if role_of(request) != "operator":
            return await refuse(403, READ_ONLY)
        if not console.tokens.csrf_ok(form.get("csrf")) or not _same_origin(request):
            return await refuse(403, BAD_CSRF)

        def find() -> IssueRecord | None:
            with engine.connect() as conn:
                return queries.one_issue(conn, ref)

        record = await asyncio.to_thread(find)
        if record is None:
            return await refuse(404, UNKNOWN.format(ref=ref))
        if record.state not in ACTIVE_STATES:
            return await refuse(409, NOT_IN_FLIGHT.format(ref=ref, state=record.state))
        message = build(record, form)
        if isinstance(message, str):
            return await refuse(400, message)
        nonce = form.get("nonce", "")
        if not nonce:
            return await refuse(400, NO_NONCE)
        entry = await asyncio.to_thread(
            audit.claim, engine, actor=actor, action=action, target=record.identifier, nonce=nonce
        )
        if entry is None:
            return await refuse(409, REPLAYED)
        try:
            await asyncio.to_thread(
                console.reader.send, record.workflow_id, message, CONTROL_TOPIC, f"console-{nonce}"
            )
        except Exception as exc:
            reason = UNDELIVERED.format(error=type(exc).__name__)
            await asyncio.to_thread(audit.settle, engine, entry, "failed", reason)
            log.error(
                "console control not delivered", action=action, target=ref, error=type(exc).__name__
            )
            return PlainTextResponse(reason, status_code=503)
        await asyncio.to_thread(audit.settle, engine, entry, "done")
        log.warning("console control sent", action=action, target=record.identifier, actor=actor)
        return RedirectResponse(f"{base_path(request)}/issue/{record.identifier}", status_code=303)

    return handle


def stop_message(record: IssueRecord, _form: dict[str, str]) -> dict[str, Any]:
    """What Linear's stop signal becomes for the orchestration."""
    return {
        "kind": "stop",
        "issue_id": record.issue_id,
        "issue_identifier": record.identifier,
        "actor_name": ACTOR_NAME,
    }


def answer_message(record: IssueRecord, form: dict[str, str]) -> dict[str, Any] | str:
    """What a reply on Linear becomes: an answer to a pending question (a repository, a
    budget's "continue") or a follow-up; the reason when the text is empty or too long."""
    text = form.get("text", "").strip()
    if not text:
        return EMPTY_ANSWER
    if len(text) > MAX_ANSWER:
        return LONG_ANSWER
    return {
        "kind": "follow_up",
        "issue_id": record.issue_id,
        "issue_identifier": record.identifier,
        "actor_name": ACTOR_NAME,
        "text": text,
    }


def retry_message(record: IssueRecord, form: dict[str, str]) -> dict[str, Any] | str:
    """A follow-up naming the sub-task (its key in backticks), which is how a reply on
    Linear asks for a finished sub-task to run again; the reason when no key is given."""
    key = form.get("key", "").strip()
    if not KEY_PATTERN.fullmatch(key):
        return NO_KEY
    return {
        "kind": "follow_up",
        "issue_id": record.issue_id,
        "issue_identifier": record.identifier,
        "actor_name": ACTOR_NAME,
        "text": RETRY_TEXT.format(key=key),
    }


def control_routes(console: Console) -> list[tuple[str, Callable[[Request], Awaitable[Response]]]]:
    """``(path, handler)`` of every control."""
    return [
        ("/issue/{ref}/stop", control_handler(console, STOP_ACTION, stop_message)),
        ("/issue/{ref}/answer", control_handler(console, ANSWER_ACTION, answer_message)),
        ("/issue/{ref}/retry", control_handler(console, RETRY_ACTION, retry_message)),
    ]
