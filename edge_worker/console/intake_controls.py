"""The console's intake controls: ``POST /intake/pause`` and ``POST /intake/resume``.

Contract: the same checks as the issue controls (:mod:`controls`): an operator session, the
session's CSRF value from the same site, a one-time nonce; a refusal changes nothing and is
audited as ``refused``. Pausing records the pause (``storage/intake_pause.py``): webhooks
are still stored and answered, new work is held. Resuming clears it and requeues what was
held, which the dispatcher of any daemon on the database starts on its next pass (within
its poll interval). Both redirect to *Now* (303).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from edge_worker.console import audit
from edge_worker.console.context import Console, actor_of, base_path, role_of
from edge_worker.console.controls import BAD_CSRF, NO_NONCE, READ_ONLY, REPLAYED, _form
from edge_worker.console.controls import _same_origin as same_origin
from edge_worker.storage import intake_pause

log = structlog.get_logger(__name__)

PAUSE_ACTION = "pause intake"
RESUME_ACTION = "resume intake"
TARGET = "intake"
ALREADY_PAUSED = "Intake is already paused."
NOT_PAUSED = "Intake is not paused."


def intake_handler(console: Console, *, pausing: bool) -> Callable[[Request], Awaitable[Response]]:
    """The handler that pauses (``pausing``) or resumes intake."""
    action = PAUSE_ACTION if pausing else RESUME_ACTION

    async def handle(request: Request) -> Response:
        actor = actor_of(request)
        form = await _form(request)
        engine = console.db()
        await asyncio.to_thread(audit.ensure_table, engine)

        async def refuse(status: int, reason: str) -> Response:
            log.warning("console control refused", action=action, actor=actor, reason=reason)
            await asyncio.to_thread(
                audit.refused, engine, actor=actor, action=action, target=TARGET, reason=reason
            )
            return PlainTextResponse(reason, status_code=status)

        if role_of(request) != "operator":
            return await refuse(403, READ_ONLY)
        if not console.tokens.csrf_ok(form.get("csrf")) or not same_origin(request):
            return await refuse(403, BAD_CSRF)
        nonce = form.get("nonce", "")
        if not nonce:
            return await refuse(400, NO_NONCE)

        def is_paused() -> bool:
            with engine.connect() as conn:
                return intake_pause.paused(conn) is not None

        if await asyncio.to_thread(is_paused) == pausing:
            return await refuse(409, ALREADY_PAUSED if pausing else NOT_PAUSED)
        entry = await asyncio.to_thread(
            audit.claim, engine, actor=actor, action=action, target=TARGET, nonce=nonce
        )
        if entry is None:
            return await refuse(409, REPLAYED)

        def apply() -> int:
            with engine.begin() as conn:
                if pausing:
                    intake_pause.pause(conn, by=actor)
                    return 0
                return intake_pause.resume(conn)

        requeued = await asyncio.to_thread(apply)
        await asyncio.to_thread(
            audit.settle, engine, entry, "done", None if pausing else f"{requeued} held started"
        )
        log.warning("console control done", action=action, actor=actor, requeued=requeued)
        return RedirectResponse(f"{base_path(request)}/", status_code=303)

    return handle


def intake_routes(console: Console) -> list[tuple[str, Callable[[Request], Awaitable[Response]]]]:
    """``(path, handler)`` of the intake controls."""
    return [
        ("/intake/pause", intake_handler(console, pausing=True)),
        ("/intake/resume", intake_handler(console, pausing=False)),
    ]
