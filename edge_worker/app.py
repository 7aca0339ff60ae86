"""The starlette application: routes, lifespan, health and metrics.

``build_app(settings)`` wires the adapters; the lifespan opens the database, launches DBOS
(resuming this executor's unfinished workflows), starts the intake writer, the outbox
dispatcher and the daily cost summary check, and on shutdown stops taking webhooks (503)
before tearing them down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog
from dbos import DBOS
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge_worker import runtime, services, workflow_registry
from edge_worker.alerts.steps import deliver_pending_forever
from edge_worker.console.routes import console_routes
from edge_worker.costs.daily_workflow import run_daily_summaries
from edge_worker.delivery.github_intake import github_webhook
from edge_worker.executors.local_cli import LocalCliExecutor
from edge_worker.linear.client import LinearClient
from edge_worker.mcp.backend import Backend as McpBackend
from edge_worker.mcp.http import McpEndpoint
from edge_worker.metrics import observe_intake, observe_rate_limit, refresh_gauges
from edge_worker.orchestration.answers import FirstAnswers
from edge_worker.orchestration.attachment_steps import ATTACHMENTS_DIR, sweep_attachments
from edge_worker.orchestration.dispatch import Dispatcher
from edge_worker.orchestration.wiring import Adapters, build_adapters
from edge_worker.reporting.daily_report_post import run_daily_reports
from edge_worker.settings import Settings
from edge_worker.storage import access, work
from edge_worker.storage.db import create_engine_for, create_tables
from edge_worker.storage.events import IntakeWriter
from edge_worker.webhooks.decisions import Rules
from edge_worker.webhooks.intake import WebhookIntake

log = structlog.get_logger(__name__)


@dataclass
class DaemonState:
    """Mutable state of a running daemon."""

    draining: bool = False
    engine: sa.Engine | None = None
    dispatcher: Dispatcher | None = None
    writer: IntakeWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def build_app(settings: Settings) -> Starlette:
    """The daemon's ASGI application for ``settings``."""
    state = DaemonState()
    secret = settings.linear.webhook_secret
    secret_bytes = secret.get_secret_value().encode() if secret else b""
    rules = Rules.build(
        settings.linear.agent_user_id, settings.allowed_teams, settings.allowed_users
    )

    async def is_active(issue_id: str) -> bool:
        assert state.engine is not None
        engine = state.engine

        def query() -> bool:
            with engine.connect() as conn:
                return work.active_workflow(conn, issue_id) is not None

        return await asyncio.to_thread(query)

    intake_handler: WebhookIntake | None = None
    mcp_endpoint = McpEndpoint.configured(settings)  # None: no token, no /mcp
    mcp_stack = contextlib.AsyncExitStack()

    async def webhook(request: Request) -> Response:
        assert intake_handler is not None
        return await intake_handler(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> Response:
        if state.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        assert state.engine is not None
        engine = state.engine

        def ping() -> access.Revocation | None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                return access.revocation(conn, count_refused=False)  # a probe: no scans

        try:
            revoked = await asyncio.to_thread(ping)
        except sa.exc.SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "database unreachable", "error": type(exc).__name__}, status_code=503
            )
        if revoked is not None:  # alive, but refusing work until the app is reinstated
            return JSONResponse(
                {"status": "not ready", "reason": revoked.describe()}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    async def metrics(_: Request) -> Response:
        if state.engine is not None:
            await asyncio.to_thread(refresh_gauges, state.engine)
        adapters_now = services.current().extra.get("adapters") if state.engine else None
        if adapters_now is not None:
            observe_rate_limit(adapters_now.linear.rate_limit)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def recover(request: Request) -> Response:
        # Loopback only: handing work between machines is an operator's act, not a remote API.
        client = request.client.host if request.client else ""
        if client not in ("127.0.0.1", "::1", "localhost"):
            return JSONResponse({"error": "recover is only accepted from loopback"}, 403)
        try:
            body = await request.json()
            dead = str(body["executor_id"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'body must be {"executor_id": "..."}'}, 400)
        if dead == settings.executor_id:
            return JSONResponse({"error": "that is this daemon's own executor id"}, 400)
        handles = await asyncio.to_thread(DBOS._recover_pending_workflows, [dead])
        log.warning("recovered workflows of another executor", executor=dead, count=len(handles))
        return JSONResponse(
            {"executor_id": settings.executor_id, "workflows": [h.workflow_id for h in handles]}
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal intake_handler
        engine = (
            create_engine_for(settings.resolved_database_url, pool_size=10)
            if settings.uses_postgres
            else create_engine_for(settings.resolved_database_url)
        )
        await asyncio.to_thread(create_tables, engine)
        state.engine = engine
        adapters = build_adapters(settings, engine)
        services.install(
            services.Services(settings=settings, engine=engine, extra={"adapters": adapters})
        )
        adapters.coalescer.start()
        swept = await adapters.worktrees.sweep()
        if swept:
            log.info("swept expired worktrees", count=len(swept))
        files = await asyncio.to_thread(
            sweep_attachments,
            settings.resolved_state_dir / ATTACHMENTS_DIR,
            keep_days=settings.attachments.keep_days,
        )
        if files:
            log.info("swept fetched issue files", count=len(files))
        workflow_registry.register_all()
        runtime.configure_dbos(settings)
        await runtime.launch(settings)
        state.writer = IntakeWriter(engine)
        answers = FirstAnswers(adapters.linear)
        state.dispatcher = Dispatcher(engine, answers=answers)
        state.writer.on_commit(asyncio.get_running_loop(), state.dispatcher.wake)
        intake_handler = WebhookIntake(
            secret=secret_bytes,
            rules=rules,
            writer=state.writer,
            max_body_bytes=settings.webhook.max_body_bytes,
            tolerance_seconds=settings.webhook.tolerance_seconds,
            is_active=is_active,
            is_draining=lambda: state.draining,
            on_result=observe_intake,
            on_accepted=answers.start,
        )
        state.dispatcher.start()
        state.dispatcher.wake.set()  # pick up anything committed before a crash
        if mcp_endpoint is not None:
            backend = McpBackend(settings, engine, adapters.linear, wake=state.dispatcher.wake.set)
            await mcp_stack.enter_async_context(mcp_endpoint.serving(backend))
        state.tasks.append(
            asyncio.create_task(
                run_daily_summaries(settings.budget.timezone), name="daily-cost-summary"
            )
        )
        state.tasks.append(asyncio.create_task(run_daily_reports(settings), name="daily-report"))
        state.tasks.append(
            asyncio.create_task(_prepare_linear(adapters.linear), name="linear-token")
        )
        state.tasks.append(asyncio.create_task(deliver_pending_forever(), name="alert-outbox"))
        log.info(
            "edge-worker ready", database=engine.dialect.name, executor_id=settings.executor_id
        )
        revoked = await asyncio.to_thread(_revocation, engine)
        if revoked is not None:
            log.error("new work is refused", reason=revoked.describe())
        try:
            yield
        finally:
            state.draining = True
            await mcp_stack.aclose()
            for task in state.tasks:
                task.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            await state.dispatcher.stop()
            await answers.aclose()
            state.writer.close()
            # DBOS first, so what the killed runs return is not checkpointed as their
            # result: on restart their steps run again and find the runs interrupted.
            await asyncio.to_thread(runtime.shutdown)
            stopped = await _stop_local_runs(adapters)
            if stopped:
                log.info(
                    "stopped local agent runs for the drain; they resume on restart", count=stopped
                )
            await adapters.aclose()
            engine.dispose()
            log.info("edge-worker stopped")

    app = Starlette(
        routes=[
            Route("/webhooks/linear", webhook, methods=["POST"]),
            Route("/webhooks/github", github_webhook(settings, state), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/admin/recover", recover, methods=["POST"]),
            *console_routes(settings, lambda: state.engine),
            *(mcp_endpoint.routes() if mcp_endpoint is not None else []),
        ],
        lifespan=lifespan,
    )
    app.state.daemon = state
    return app


def _revocation(engine: sa.Engine) -> access.Revocation | None:
    with engine.connect() as conn:
        return access.revocation(conn, count_refused=False)


async def _prepare_linear(linear: LinearClient) -> None:
    """Have the app token ready before the first webhook needs it (shared through the
    database in client-credentials mode); a failure here is retried on first use."""
    try:
        await linear.prepare()
    except Exception as exc:  # the daemon must start: requests obtain it again later
        log.warning("linear token not obtained at start", error=f"{type(exc).__name__}: {exc}")


async def _stop_local_runs(adapters: Adapters) -> int:
    """Stop local agent processes (remote runs keep going and are followed on restart)."""
    counts = await asyncio.gather(
        *(
            runner.stop_all()
            for runner in adapters.executors.values()
            if isinstance(runner, LocalCliExecutor)
        )
    )
    return sum(counts)
