"""The Codegen executor: sub-tasks run as Codegen cloud agent runs.

Contract (see :mod:`edge_worker.executors.base` for the protocol):
- ``start`` creates a run with the task's prompt, ``repo_id`` (the task's, else the
  configured one) and ``metadata`` ``{linear_issue_id, subtask_key, attempt}``; it first
  looks for a run with the same metadata and returns that one instead, so a repeated start
  (a retried step, a crash before the handle was stored) never pays for a second run.
- ``follow`` waits through the organisation's shared :class:`RunPoller` (one batch of
  list calls per round for every followed run), reports status changes as ``thought``
  progress, treats unknown statuses as running (logged once) until
  ``run_timeout_seconds`` after the start, and returns the :class:`RunResult` with PR links
  and summary. Cost: ``cost_per_run_usd`` for a created run when configured, else None
  ("unpriced"); a resume (feedback or verification) is the same run and is not charged
  again: $0 when runs are priced, unpriced when they are not.
- ``resume`` posts feedback to the same run; ``verify`` resumes it with the verifier prompt
  and reads the answer strictly (:mod:`edge_worker.verification.remote`).
- ``cancel``: Codegen cannot cancel, so the run is abandoned: recorded on the handle and in
  :attr:`CodegenExecutor.abandoned`, and no longer followed.
- Missing configuration, 402 (quota) and authorisation failures raise
  :class:`ExecutorUnavailable` so the strategy can fall back to a local executor.
- Use one executor per process and event loop; call :meth:`aclose` when done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from edge_worker.executors.base import (
    ExecutorUnavailable,
    ProgressCallback,
    RunHandle,
    RunResult,
    RunStatus,
    Task,
    VerificationCommand,
    VerificationReport,
)
from edge_worker.executors.codegen_api import (
    AgentRun,
    CodegenAmbiguous,
    CodegenClient,
    CodegenError,
    CodegenUnreachable,
)
from edge_worker.executors.codegen_lookup import RecentRuns
from edge_worker.executors.codegen_poller import RunPoller
from edge_worker.executors.codegen_runs import (
    build_run_prompt,
    classify_status,
    result_from_run,
    run_images,
    run_metadata,
)
from edge_worker.executors.rate_limit import Clock, OrgRateLimiter, Sleep, shared_rate_limiter
from edge_worker.settings import Settings
from edge_worker.verification.remote import (
    build_verification_prompt,
    failed_checks,
    load_verifier_template,
    parse_verification_answer,
)

log = structlog.get_logger(__name__)

EXECUTOR_NAME = "codegen"
NOT_CONFIGURED_REASON = (
    "Codegen unavailable: not configured "
    "(set EDGE_WORKER_CODEGEN__ORG_ID and EDGE_WORKER_CODEGEN__API_TOKEN)"
)
_AMBIGUOUS_ATTEMPTS = 3


class _KeyedLocks:
    """One lock per key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[Any, ...], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[Any, ...]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class CodegenExecutor:
    """Runs sub-tasks on Codegen and follows them, within Codegen's rate limits."""

    name = EXECUTOR_NAME

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        limiter: OrgRateLimiter | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        retry_wait_initial: float = 0.5,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self._settings = settings
        self._on_health = on_health
        self._config = settings.codegen
        self._http = http
        self._owns_http = http is None
        self._limiter = limiter
        self._clock = clock
        self._sleep = sleep
        self._retry_wait_initial = retry_wait_initial
        self._client: CodegenClient | None = None
        self._poller: RunPoller | None = None
        self._recent: RecentRuns | None = None
        self._starting = _KeyedLocks()
        self.abandoned: dict[str, float] = {}
        """Run ids given up by :meth:`cancel`, with when (``clock``)."""

    # -- the protocol ----------------------------------------------------------------------

    async def start(self, task: Task) -> RunHandle:
        """Create the run for ``task``'s attempt, or return the one that already exists."""
        client, _, recent = self._connect()
        metadata = run_metadata(task)
        async with self._starting.hold(tuple(metadata.values())):
            last_error: CodegenError | None = None
            for _ in range(_AMBIGUOUS_ATTEMPTS):
                existing = await recent.find(metadata)
                if existing is not None:
                    log.info("codegen.run_reused", run_id=existing.id, subtask=task.key)
                    return self._handle(existing, metadata, origin="create")
                try:
                    run = await client.create_run(
                        build_run_prompt(task),
                        repo_id=task.codegen_repo_id or self._config.repo_id,
                        metadata=metadata,
                        images=await asyncio.to_thread(run_images, task),
                    )
                except CodegenAmbiguous as exc:
                    last_error = exc  # it may exist now: look again before creating
                    continue
                except CodegenUnreachable as exc:
                    raise ExecutorUnavailable(f"Codegen unavailable: {exc.message}") from exc
                log.info("codegen.run_created", run_id=run.id, subtask=task.key)
                return self._handle(run, metadata, origin="create")
        assert last_error is not None
        raise last_error

    async def follow(
        self, handle: RunHandle, on_progress: ProgressCallback | None = None
    ) -> RunResult:
        """Wait for the run to end (or for its time limit) and describe how it ended."""
        result, _ = await self._follow(handle, on_progress)
        return result

    async def resume(self, handle: RunHandle, task: Task, feedback: str) -> RunHandle:
        """Send ``feedback`` to the same run; follow the returned handle."""
        prompt = (
            f"Feedback on {task.issue_identifier} / {task.key} ({task.title}):\n\n"
            f"{feedback.strip()}\n\n"
            "Address it on the same branch and update the pull request. "
            "End with a short summary of what you changed."
        )
        return await self._resume(handle, prompt)

    async def verify(
        self, handle: RunHandle, commands: list[VerificationCommand]
    ) -> VerificationReport:
        """Ask the run's agent to run exactly ``commands``; read its answer strictly."""
        if not commands:
            return VerificationReport(checks=[])
        template = load_verifier_template(self._settings.prompts_dir)
        verification = await self._resume(handle, build_verification_prompt(template, commands))
        result, run = await self._follow(verification, None)
        if result.status is not RunStatus.SUCCEEDED:
            reason = f"the verification run ended {result.status.value}: {result.error or ''}"
            return VerificationReport(checks=failed_checks(commands, reason.rstrip(": ")))
        answer = run.result if run is not None and run.result is not None else result.summary
        return VerificationReport(
            checks=parse_verification_answer(answer, commands), cost_usd=self._resume_cost
        )

    async def cancel(self, handle: RunHandle) -> None:
        """Abandon the run (Codegen has no cancel): record it and stop following it."""
        run_id = self._run_id(handle)
        self.abandoned[handle.run_id] = self._clock()
        handle.extra["abandoned"] = True
        log.warning("codegen.run_abandoned", run_id=run_id, web_url=handle.extra.get("web_url"))
        if self._poller is not None:
            self._poller.abandon(run_id)

    def abandoned_charge(self, handle: RunHandle) -> float | None:
        """What an abandoned run costs, as following it to its end would have recorded: the
        run's price for a created run, nothing more for a resume (None: unpriced)."""
        return self._resume_cost if handle.extra.get("origin") != "create" else self._run_cost

    async def aclose(self) -> None:
        """Stop polling and close the HTTP client if this executor made it."""
        if self._poller is not None:
            await self._poller.aclose()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- internals -------------------------------------------------------------------------

    @property
    def _run_cost(self) -> float | None:
        return self._config.cost_per_run_usd

    @property
    def _resume_cost(self) -> float | None:
        """A resume (feedback, verification) continues a run already paid for: nothing
        more when runs are priced, still unknown when they are not."""
        return 0.0 if self._config.cost_per_run_usd is not None else None

    def _connect(self) -> tuple[CodegenClient, RunPoller, RecentRuns]:
        if self._client is None or self._poller is None or self._recent is None:
            org_id, token = self._credentials()
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
            limiter = self._limiter or shared_rate_limiter(
                self._config.base_url,
                org_id,
                creates_per_minute=self._config.creates_per_minute,
                calls_per_30_seconds=self._config.calls_per_30_seconds,
            )
            self._client = CodegenClient(
                self._http,
                base_url=self._config.base_url,
                org_id=org_id,
                api_token=token,
                limiter=limiter,
                wait_initial=self._retry_wait_initial,
                wait_jitter=min(1.0, self._retry_wait_initial),
                on_health=self._on_health,
            )
            self._poller = RunPoller(
                self._client, interval=self._config.poll_interval_seconds, sleep=self._sleep
            )
            self._recent = RecentRuns(
                self._client, lookback_seconds=self._config.dedupe_lookback_seconds
            )
        return self._client, self._poller, self._recent

    def _credentials(self) -> tuple[int, SecretStr]:
        if self._config.org_id is None or self._config.api_token is None:
            raise ExecutorUnavailable(NOT_CONFIGURED_REASON)
        return self._config.org_id, self._config.api_token

    def _run_id(self, handle: RunHandle) -> int:
        if handle.executor != EXECUTOR_NAME:
            raise ValueError(f"not a Codegen handle: executor={handle.executor!r}")
        try:
            return int(handle.run_id)
        except ValueError:
            raise ValueError(f"not a Codegen run id: {handle.run_id!r}") from None

    def _handle(self, run: AgentRun, metadata: dict[str, Any], *, origin: str) -> RunHandle:
        return RunHandle(
            executor=EXECUTOR_NAME,
            run_id=str(run.id),
            session_id=str(run.id),
            extra={
                "org_id": run.organization_id,
                "origin": origin,
                "started_at": self._clock(),
                "metadata": metadata,
                "web_url": run.web_url,
            },
        )

    async def _resume(self, handle: RunHandle, prompt: str) -> RunHandle:
        client, _, _ = self._connect()
        run_id = self._run_id(handle)
        last_error: CodegenError | None = None
        for _ in range(_AMBIGUOUS_ATTEMPTS):
            try:
                run = await client.resume_run(run_id, prompt)
            except CodegenAmbiguous as exc:
                last_error = exc
                current = await client.get_run(run_id)
                if classify_status(current.status) is RunStatus.RUNNING:
                    run = current  # the resume was taken: the run is working again
                else:
                    continue
            metadata = dict(handle.extra.get("metadata") or {})
            return self._handle(run, metadata, origin="resume")
        assert last_error is not None
        raise last_error

    async def _follow(
        self, handle: RunHandle, on_progress: ProgressCallback | None
    ) -> tuple[RunResult, AgentRun | None]:
        run_id = self._run_id(handle)
        _, poller, _ = self._connect()
        started_at = float(handle.extra.get("started_at", self._clock()))
        cost = self.abandoned_charge(handle)  # the same price whether followed or abandoned

        def ended(status: RunStatus, run: AgentRun | None, error: str | None) -> RunResult:
            duration = self._clock() - started_at
            if run is not None:
                return result_from_run(
                    run, status, cost_usd=cost, duration_seconds=duration, error=error
                )
            return RunResult(
                status=status,
                cost_usd=cost,
                duration_seconds=max(0.0, duration),
                session_id=handle.run_id,
                run_id=handle.run_id,
                web_url=handle.extra.get("web_url"),
                error=error,
            )

        if handle.extra.get("abandoned") or handle.run_id in self.abandoned:
            return ended(RunStatus.CANCELLED, None, "run abandoned"), None
        deadline = started_at + self._config.run_timeout_seconds
        last: AgentRun | None = None
        seen_status: str | None = None
        unknown_logged: set[str] = set()
        async with poller.watch(run_id) as watch:
            while True:
                if self._clock() >= deadline:
                    error = (
                        f"no end after {self._config.run_timeout_seconds:.0f} s "
                        f"(last status: {last.status if last else 'none seen'})"
                    )
                    return ended(RunStatus.TIMED_OUT, last, error), last
                update = await watch.next()
                if update.abandoned:
                    return ended(RunStatus.CANCELLED, last, "run abandoned"), last
                if update.gone:
                    return ended(RunStatus.FAILED, last, update.error), last
                if update.run is None:
                    continue
                last = update.run
                if last.status != seen_status:
                    seen_status = last.status
                    if on_progress is not None:
                        await on_progress("thought", f"Codegen run {run_id}: {last.status}")
                status = classify_status(last.status)
                if status is None:
                    if str(last.status) not in unknown_logged:
                        unknown_logged.add(str(last.status))
                        log.warning("codegen.unknown_status", run_id=run_id, status=last.status)
                    continue
                if status.is_terminal:
                    return ended(status, last, None), last
