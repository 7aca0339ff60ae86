"""The console's starlette application, mounted by the daemon under ``/console``.

Contract: :func:`build_console` returns an ASGI app serving the pages (Now, Issue,
History, Costs, Daily report and its markdown), the live-update stream (``/events``,
server-sent events), the controls (``POST /issue/{ref}/stop`` and ``/answer``, see
:mod:`controls`) and the shipped static files. Every page, the stream and the controls
need a console token (see :mod:`access`); a refusal answers 401 with the login form and is
logged without the secret. A page asked with ``?fragment=1`` answers only its live part,
which the shipped script fetches when the stream says the database changed.
:func:`console_routes` is what the daemon mounts: nothing when no token is configured.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import sqlalchemy as sa
import structlog
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge_worker.console import access, queries
from edge_worker.console.context import Console, base_path, render, role_of
from edge_worker.console.controls import control_routes
from edge_worker.console.costs_view import costs_view
from edge_worker.console.intake_controls import intake_routes
from edge_worker.console.views import issue_line, issue_view, now_view
from edge_worker.costs.cli import parse_day
from edge_worker.costs.ledger import Clock, utc_now
from edge_worker.costs.money import Total
from edge_worker.costs.summary import rows_total
from edge_worker.reporting.daily_report import build_daily_report, render_markdown
from edge_worker.reporting.daily_report_data import read_day_facts
from edge_worker.settings import Settings
from edge_worker.storage import activity_log, intake_pause
from edge_worker.storage.work import TERMINAL_STATES

log = structlog.get_logger(__name__)

CHART_DAYS = 30
HISTORY_LIMIT = 100
AUDIT_ON_NOW = 10
ACTIVITY_LIMIT = 2000
"""The newest activity-log and progress lines the Issue page reads."""
REFUSED_TEXT = "Sign in with the console token to see this page."
BAD_TOKEN_TEXT = "That is not the console token."
UNKNOWN_ISSUE_TEXT = "No issue {ref} in this daemon's database."
BAD_DAY_TEXT = "The day must be a date like 2025-01-31, 'today' or 'yesterday'."
STATIC_DIR = Path(__file__).parent / "static"


def _page(request: Request, page: str, live: str, title: str, **context: Any) -> Response:
    """The full page, or only its live part for ``?fragment=1``."""
    started = time.perf_counter()
    role = role_of(request)
    console: Console = request.app.state.console
    context |= {
        "role": role,
        "base": base_path(request),
        "csrf": console.tokens.csrf() if role == "operator" else None,
        "nonce": uuid.uuid4().hex,
    }
    context.setdefault("change_id", "")
    body = render(live, **context)
    if request.query_params.get("fragment") != "1":
        body = render("base.html", title=title, live_html=body, nav=page, **context)
    response = HTMLResponse(body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _day_param(request: Request, console: Console, default: date) -> date | None:
    raw = request.query_params.get("day")
    if not raw:
        return default
    try:
        return parse_day(raw, console.today())
    except ValueError:
        return None


def build_console(
    settings: Settings,
    engine: Callable[[], sa.Engine | None],
    tokens: access.Tokens,
    *,
    clock: Clock = utc_now,
) -> Starlette:
    """The console app (see the module contract)."""
    console = Console(settings, engine, tokens, clock)

    def identify(request: Request) -> access.Role | None:
        return tokens.role_of_bearer(request.headers.get("authorization")) or (
            tokens.role_of_cookie(request.cookies.get(access.COOKIE_NAME))
        )

    def refuse(request: Request, message: str = REFUSED_TEXT) -> Response:
        log.warning(
            "console access refused",
            path=request.url.path,
            client=request.client.host if request.client else None,
            had_header="authorization" in request.headers,
            had_cookie=access.COOKIE_NAME in request.cookies,
        )
        return HTMLResponse(
            render("login.html", title="Sign in", message=message, nav="", base=base_path(request)),
            status_code=401,
        )

    Handler = Callable[[Request], Awaitable[Response]]

    def guarded(handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            role = identify(request)
            if role is None:
                return refuse(request)
            request.state.role = role
            return await handler(request)

        return wrapper

    async def now_page(request: Request) -> Response:
        def read() -> dict[str, Any]:
            change = console.change_id()  # before the data: never newer than it
            with console.db().connect() as conn:
                records = queries.in_flight(conn)
                pause = intake_pause.paused(conn)
            today = console.today()
            view = now_view(
                records,
                console.reader.queues(),
                console.reader.queued_run_ids(),
                today=today.isoformat(),
                today_total=console.ledger().day_total(today),
                day_limit=console.day_limit,
                issue_limit=console.issue_limit,
                now=console.now(),
                linear=console.linear_snapshot(),
            )
            return {
                "view": view,
                "audit": console.audit(limit=AUDIT_ON_NOW),
                "intake_paused": pause.describe() if pause else None,
                "change_id": change,
            }

        context = await asyncio.to_thread(read)
        return _page(request, "now", "now_live.html", "Now", **context)

    async def issue_page(request: Request) -> Response:
        ref = request.path_params["ref"]

        def read() -> dict[str, Any] | None:
            change = console.change_id()  # before the data: never newer than it
            with console.db().connect() as conn:
                record = queries.one_issue(conn, ref)
                if record is None:
                    return None
                states = queries.subtask_rows(conn, record.issue_id)
                said = activity_log.for_issue(conn, record.issue_id, limit=ACTIVITY_LIMIT)
            rows = console.ledger().entries(issue=record.issue_id)
            spend: dict[str | None, Total] = {}
            for row in rows:
                spend[row.subtask_key] = spend.get(row.subtask_key, Total()) + row.total
            plan, url = console.reader.plan_and_url(record.workflow_id)
            if record.linear_url is None and url is not None:  # work started before links
                record = dataclasses.replace(record, linear_url=url)
            view = issue_view(
                record,
                plan,
                console.reader.runs(record.workflow_id),
                states,
                spend,
                issue_limit=console.issue_limit,
                now=console.now(),
                activity=said,
            )
            return {
                "view": view,
                "total": rows_total(rows).format(),
                "audit": console.audit(target=record.identifier),
                "change_id": change,
            }

        context = await asyncio.to_thread(read)
        if context is None:
            return HTMLResponse(
                render(
                    "message.html",
                    title="Unknown issue",
                    message=UNKNOWN_ISSUE_TEXT.format(ref=ref),
                    nav="",
                ),
                status_code=404,
            )
        title = context["view"].line.identifier
        return _page(request, "issue", "issue_live.html", title, **context)

    async def history_page(request: Request) -> Response:
        params = request.query_params
        day: date | None = None
        if params.get("day"):
            day = _day_param(request, console, console.today())
            if day is None:
                return PlainTextResponse(BAD_DAY_TEXT, status_code=400)
        state = params.get("state") or None
        if state is not None and state not in TERMINAL_STATES:
            return PlainTextResponse(
                f"state must be one of {', '.join(TERMINAL_STATES)}", status_code=400
            )
        filters = {
            "state": state,
            "team": params.get("team") or None,
            "executor": params.get("executor") or None,
            "day": day,
        }

        def read() -> dict[str, Any]:
            change = console.change_id()  # before the data: never newer than it
            with console.db().connect() as conn:
                records = queries.finished(
                    conn,
                    zone=console.zone,
                    limit=HISTORY_LIMIT,
                    state=state,
                    team=params.get("team") or None,
                    executor=params.get("executor") or None,
                    day=day,
                )
                teams, executors = console.history_choices(conn)
            now = console.now()
            return {
                "lines": [issue_line(r, now, issue_limit=console.issue_limit) for r in records],
                "teams": teams,
                "executors": executors,
                "states": TERMINAL_STATES,
                "filters": {
                    k: (v.isoformat() if isinstance(v, date) else v) for k, v in filters.items()
                },
                "limit": HISTORY_LIMIT,
                "change_id": change,
            }

        context = await asyncio.to_thread(read)
        return _page(request, "history", "history_live.html", "History", **context)

    async def costs_page(request: Request) -> Response:
        day = _day_param(request, console, console.today())
        if day is None:
            return PlainTextResponse(BAD_DAY_TEXT, status_code=400)

        def read() -> dict[str, Any]:
            change = console.change_id()  # before the data: never newer than it
            ledger = console.ledger()
            days = [day - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
            with console.db().connect() as conn:
                per_day = queries.day_totals(conn, days[0], days[-1])
            totals = [(d, per_day.get(d, Total())) for d in days]
            view = costs_view(
                day,
                ledger.timezone,
                ledger.entries(day=day),
                totals,
                lambda d: "?" + urlencode({"day": d.isoformat()}),
            )
            return {"view": view, "change_id": change}

        context = await asyncio.to_thread(read)
        return _page(request, "costs", "costs_live.html", "Costs", **context)

    def _report(day: date) -> Any:
        facts = read_day_facts(
            console.db(), day, settings.budget.timezone, settings.budget.per_day_usd
        )
        return build_daily_report(facts)

    async def report_page(request: Request) -> Response:
        day = _day_param(request, console, console.today() - timedelta(days=1))
        if day is None:
            return PlainTextResponse(BAD_DAY_TEXT, status_code=400)
        report = await asyncio.to_thread(_report, day)
        context = {
            "report": report,
            "day": day.isoformat(),
            "previous": (day - timedelta(days=1)).isoformat(),
            "next": (day + timedelta(days=1)).isoformat(),
        }
        return _page(request, "report", "report_live.html", "Daily report", **context)

    async def report_markdown(request: Request) -> Response:
        day = _day_param(request, console, console.today() - timedelta(days=1))
        if day is None:
            return PlainTextResponse(BAD_DAY_TEXT, status_code=400)
        report = await asyncio.to_thread(_report, day)
        return PlainTextResponse(render_markdown(report), media_type="text/markdown")

    async def events(request: Request) -> Response:
        last = request.headers.get("last-event-id")

        async def stream() -> AsyncIterator[dict[str, str]]:
            async for token_id in console.feed.listen(last):
                yield {"event": "change", "id": token_id, "data": token_id}

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(
                render("login.html", title="Sign in", message=None, nav="", base=base_path(request))
            )
        body = (await request.body()).decode("utf-8", "replace")
        candidate = (parse_qs(body).get("token") or [""])[0]
        role = tokens.role_of_token(candidate)
        if role is None:
            return refuse(request, BAD_TOKEN_TEXT)
        base = base_path(request)
        response = RedirectResponse(base + "/", status_code=303)
        response.set_cookie(
            access.COOKIE_NAME,
            tokens.cookie_for(role),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=base or "/",
        )
        log.info(
            "console sign-in", role=role, client=request.client.host if request.client else None
        )
        return response

    async def logout(request: Request) -> Response:
        base = base_path(request)
        response = RedirectResponse(base + "/login", status_code=303)
        response.delete_cookie(access.COOKIE_NAME, path=base or "/")
        return response

    app = Starlette(
        routes=[
            Route("/", guarded(now_page)),
            Route("/issue/{ref}", guarded(issue_page)),
            Route("/history", guarded(history_page)),
            Route("/costs", guarded(costs_page)),
            Route("/report", guarded(report_page)),
            Route("/report.md", guarded(report_markdown)),
            Route("/events", guarded(events)),
            *(
                Route(path, guarded(handler), methods=["POST"])
                for path, handler in [*control_routes(console), *intake_routes(console)]
            ),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    app.state.console = console
    return app


def console_routes(settings: Settings, engine: Callable[[], sa.Engine | None]) -> list[Mount]:
    """``[Mount("/console", ...)]`` when a console token is configured, else ``[]``."""
    tokens = access.load_tokens(settings.console)
    if tokens is None:
        return []
    return [Mount("/console", app=build_console(settings, engine, tokens))]
