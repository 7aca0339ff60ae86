"""An in-memory stand-in for Codegen's agent-run API, for tests, the demo and the benchmark.

It serves create, get, list and resume exactly at the paths and with the shapes of
``shared/codegen/openapi3.json`` (checked in ``tests/test_codegen_sandbox.py``).

Contract:
- Bearer auth: a wrong or missing token gets 401; another organisation id gets 403.
- A run shows ``script.statuses[0]`` when created and ``statuses[k]`` at its k-th
  observation (a ``GET`` of it, or a list page that contains it), staying on the last one;
  with ``seconds_to_finish`` the last status appears only once that much ``clock`` time has
  passed since the run (re)started. Status strings keep the case the script gives them
  (Codegen mixes ``ACTIVE``, ``running``, ``COMPLETE``). The result text and the pull
  requests appear with the last status.
- ``resume`` restarts the same run through the same statuses. A verification prompt (one
  with a ``{"commands": [...]}`` block) is answered per :class:`VerificationScript`:
  ``valid``, ``partial``, ``malformed``, ``missing`` or a raw text.
- Limits like Codegen's: ``creates_per_minute`` creations per 60 s and
  ``calls_per_30_seconds`` other calls per 30 s, by ``clock``; beyond them 429 with
  ``Retry-After``. :meth:`CodegenStandIn.fail_next` scripts errors on demand (429, 402,
  500, ...); ``quota_exhausted`` makes every creation 402.
- When a run's pull request appears, :attr:`CodegenStandIn.on_pull_request` (if set) is
  called with the sub-task key and the head branch: the world uses it to push that branch
  to a git remote, as Codegen's agent pushes its work to GitHub.
- Every request is recorded in :attr:`CodegenStandIn.calls` (also served as JSON at
  ``GET /_sandbox/calls``) with the ``clock`` time it arrived.
- Billing: with :attr:`CodegenStandIn.cost_per_run_usd` set, each run created through the
  API is billed that much once, at creation (a resume is the same run and costs nothing
  more), kept as the run's ``billed_usd``; :meth:`CodegenStandIn.bills` lists them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge_worker.verification.remote import commands_from_prompt

HOLD_CHECK_SECONDS = 0.005

Endpoint = Literal["create", "get", "list", "resume", "sandbox", "unknown"]
VerificationKind = Literal["valid", "partial", "malformed", "missing"]

API_PREFIX = "/v1/organizations/{org_id}"
_ERROR_MESSAGES = {
    401: "Invalid or missing API token.",
    402: (
        "Alloted agent runs for the current billing plan have been reached. "
        "Please upgrade your plan to continue."
    ),
    403: "You do not have access to this organization.",
    404: "Agent run not found.",
    429: "Rate limit exceeded. Please try again later.",
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service unavailable.",
}
_AGENT_TYPES = ("codegen", "claude_code")


@dataclass
class RunScript:
    """How a stand-in run behaves."""

    statuses: list[str] = field(default_factory=lambda: ["ACTIVE", "running", "COMPLETE"])
    result: str | None = "Implemented the change and opened a pull request."
    summary: str | None = None
    pull_requests: int = 1
    seconds_to_finish: float | None = None


@dataclass
class VerificationScript:
    """How the agent answers a verification resume."""

    kind: VerificationKind = "valid"
    exit_codes: dict[str, int] = field(default_factory=dict)
    raw: str | None = None
    statuses: list[str] | None = None


@dataclass(frozen=True)
class CallRecord:
    """One request as the stand-in saw it."""

    at: float
    method: str
    path: str
    endpoint: Endpoint
    status: int
    run_id: int | None = None
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Run:
    id: int
    organization_id: int
    created_at: str
    prompt: str
    repo_id: int | None
    metadata: dict[str, Any] | None
    script: RunScript
    source_type: str = "API"
    started_at: float = 0.0
    observations: int = 0
    answer: str | None = None  # the result text of the current leg (None: the script's)
    finished: bool = False
    pull_requests: list[dict[str, Any]] = field(default_factory=list)
    resumes: list[str] = field(default_factory=list)
    billed_usd: float | None = None  # what creating it cost (None: billing not configured)


def verification_answer(commands: list[str], script: VerificationScript) -> str:
    """The agent's answer to a verification prompt for ``commands``, as scripted."""
    if script.raw is not None:
        return script.raw
    if script.kind == "missing":
        return "I ran all the commands and they passed."
    if script.kind == "malformed":
        return (
            'Done.\n```json\n{"checks": [{"command": "'
            + (commands or ["x"])[0]
            + '", "exit_code": 0,,]}\n```'
        )
    reported = commands[: max(1, len(commands) // 2)] if script.kind == "partial" else commands
    checks = [
        {
            "command": command,
            "exit_code": script.exit_codes.get(command, 0),
            "output_tail": f"$ {command}\n(exit {script.exit_codes.get(command, 0)})",
        }
        for command in reported
    ]
    return "I ran the commands.\n\n```json\n" + json.dumps({"checks": checks}, indent=2) + "\n```"


class CodegenStandIn:
    """State and behaviour of the stand-in; :attr:`app` serves it."""

    def __init__(
        self,
        *,
        org_id: int = 1,
        api_token: str = "sandbox-codegen-token",
        clock: Callable[[], float] = time.monotonic,
        enforce_limits: bool = True,
        creates_per_minute: int = 10,
        calls_per_30_seconds: int = 60,
        default_script: RunScript | None = None,
        default_verification: VerificationScript | None = None,
        first_run_id: int = 1000,
    ) -> None:
        self.org_id = org_id
        self.api_token = api_token
        self.clock = clock
        self.enforce_limits = enforce_limits
        self.creates_per_minute = creates_per_minute
        self.calls_per_30_seconds = calls_per_30_seconds
        self.default_script = default_script or RunScript()
        self.default_verification = default_verification or VerificationScript()
        self.scripts: dict[str, RunScript] = {}
        self.verifications: dict[str, VerificationScript] = {}
        self.quota_exhausted = False
        self.runs: dict[int, _Run] = {}
        self.calls: list[CallRecord] = []
        self._ids = itertools.count(first_run_id)
        self._failures: dict[Endpoint, deque[tuple[int, float | None]]] = {}
        self._holds: dict[Endpoint, tuple[threading.Event, list[int]]] = {}
        self.held = 0  # answers waiting on a hold right now
        self._admitted: dict[str, deque[float]] = {"create": deque(), "call": deque()}
        self._lock = threading.Lock()
        self.on_pull_request: Callable[[str, str], None] | None = None
        self.cost_per_run_usd: float | None = None
        self.app = self._build_app()

    # -- scripting -------------------------------------------------------------------------

    def script(self, subtask_key: str, script: RunScript) -> None:
        """Runs whose metadata has this ``subtask_key`` follow ``script``."""
        self.scripts[subtask_key] = script

    def script_verification(self, subtask_key: str, script: VerificationScript) -> None:
        """Verification resumes of runs for ``subtask_key`` are answered per ``script``."""
        self.verifications[subtask_key] = script

    def fail_next(
        self, endpoint: Endpoint, status: int, *, retry_after: float | None = None, times: int = 1
    ) -> None:
        """The next ``times`` requests to ``endpoint`` fail with ``status``."""
        queue = self._failures.setdefault(endpoint, deque())
        queue.extend([(status, retry_after)] * times)

    def hold(self, endpoint: Endpoint, *, times: int = 1) -> threading.Event:
        """The next ``times`` answers to ``endpoint`` wait until the returned event is set.

        The request is served first (a created run exists and is billed): the caller's
        side sees the call in flight, as when Codegen is slow to answer. :attr:`held`
        counts the answers waiting.
        """
        gate = threading.Event()
        self._holds[endpoint] = (gate, [times])
        return gate

    def add_foreign_runs(self, count: int, *, source_type: str = "SLACK") -> None:
        """Runs started by someone else in the organisation (they crowd the list)."""
        for _ in range(count):
            run = self._new_run("work from elsewhere", None, None, RunScript(["COMPLETE"]))
            run.source_type = source_type

    # -- observations for tests ------------------------------------------------------------

    def records(self, *endpoints: Endpoint) -> list[CallRecord]:
        """Calls to the given endpoints (all when none given), in arrival order."""
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if not endpoints or c.endpoint in endpoints]

    def bills(self) -> list[tuple[dict[str, Any], float]]:
        """``(metadata, usd)`` of every run billed so far (created through the API while
        :attr:`cost_per_run_usd` was set), in creation order."""
        with self._lock:
            runs = list(self.runs.values())
        return [(dict(r.metadata or {}), r.billed_usd) for r in runs if r.billed_usd is not None]

    def max_in_window(self, endpoints: tuple[Endpoint, ...], window: float) -> int:
        """The most calls to ``endpoints`` that arrived within any ``window`` seconds."""
        times = sorted(c.at for c in self.records(*endpoints))
        best, start = 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- the app ---------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        def route(path: str, endpoint: Endpoint, method: str) -> Route:
            async def handle(request: Request) -> JSONResponse:
                return await self._handle(request, endpoint)

            return Route(path, handle, methods=[method])

        return Starlette(
            routes=[
                route(API_PREFIX + "/agent/run", "create", "POST"),
                route(API_PREFIX + "/agent/run/resume", "resume", "POST"),
                route(API_PREFIX + "/agent/run/{agent_run_id}", "get", "GET"),
                route(API_PREFIX + "/agent/runs", "list", "GET"),
                Route("/_sandbox/calls", self._serve_calls, methods=["GET"]),
            ]
        )

    async def _serve_calls(self, request: Request) -> JSONResponse:
        return JSONResponse([asdict(call) for call in self.records()])

    async def _handle(self, request: Request, endpoint: Endpoint) -> JSONResponse:
        at = self.clock()
        body: Any = None
        if request.method == "POST":
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        with self._lock:
            response, run_id = self._respond(request, endpoint, body, at)
        record = CallRecord(
            at=at,
            method=request.method,
            path=request.url.path,
            endpoint=endpoint,
            status=response.status_code,
            run_id=run_id,
            body=body,
            query=dict(request.query_params),
        )
        with self._lock:
            self.calls.append(record)
            gate = self._take_hold(endpoint)
        if gate is not None:
            try:
                while not gate.is_set():  # set from the test's thread, not this loop
                    await asyncio.sleep(HOLD_CHECK_SECONDS)
            finally:
                with self._lock:
                    self.held -= 1
        return response

    def _take_hold(self, endpoint: Endpoint) -> threading.Event | None:
        """The gate this answer waits on, counted in :attr:`held` (call under the lock)."""
        gate, left = self._holds.get(endpoint, (None, [0]))
        if gate is None or left[0] <= 0 or gate.is_set():
            return None
        left[0] -= 1
        self.held += 1
        return gate

    def _respond(
        self, request: Request, endpoint: Endpoint, body: Any, at: float
    ) -> tuple[JSONResponse, int | None]:
        if request.headers.get("authorization") != f"Bearer {self.api_token}":
            return _error(401), None
        try:
            org_id = int(request.path_params["org_id"])
        except ValueError:
            return _validation_error(["path", "org_id"], "Input should be a valid integer"), None
        if org_id != self.org_id:
            return _error(403), None
        scripted = self._failures.get(endpoint)
        if scripted:
            status, retry_after = scripted.popleft()
            return _error(status, retry_after=retry_after), None
        if self.enforce_limits:
            wait = self._admit("create" if endpoint == "create" else "call", at)
            if wait is not None:
                return _error(429, retry_after=float(max(1, math.ceil(wait)))), None
        handlers: dict[str, Callable[[Request, Any], tuple[JSONResponse, int | None]]] = {
            "create": self._create,
            "get": self._get,
            "list": self._list,
            "resume": self._resume,
        }
        return handlers[endpoint](request, body)

    def _admit(self, kind: str, at: float) -> float | None:
        """Count the call in its window, or return the seconds until it would fit."""
        limit, window = (
            (self.creates_per_minute, 60.0)
            if kind == "create"
            else (self.calls_per_30_seconds, 30.0)
        )
        admitted = self._admitted[kind]
        while admitted and admitted[0] <= at - window:
            admitted.popleft()
        if len(admitted) >= limit:
            return admitted[0] + window - at
        admitted.append(at)
        return None

    # -- endpoints -------------------------------------------------------------------------

    def _create(self, request: Request, body: Any) -> tuple[JSONResponse, int | None]:
        problem = _check_create_input(body)
        if problem is not None:
            return problem, None
        if self.quota_exhausted:
            return _error(402), None
        metadata = body.get("metadata")
        key = metadata.get("subtask_key") if isinstance(metadata, dict) else None
        script = self.scripts.get(str(key), self.default_script) if key else self.default_script
        run = self._new_run(body["prompt"], body.get("repo_id"), metadata, script)
        run.billed_usd = self.cost_per_run_usd
        return JSONResponse(self._view(run)), run.id

    def _get(self, request: Request, body: Any) -> tuple[JSONResponse, int | None]:
        try:
            run_id = int(request.path_params["agent_run_id"])
        except ValueError:
            return _validation_error(
                ["path", "agent_run_id"], "Input should be a valid integer"
            ), None
        run = self.runs.get(run_id)
        if run is None:
            return _error(404), run_id
        self._observe(run)
        return JSONResponse(self._view(run)), run_id

    def _list(self, request: Request, body: Any) -> tuple[JSONResponse, int | None]:
        try:
            skip = int(request.query_params.get("skip", "0"))
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return _validation_error(["query", "skip"], "Input should be a valid integer"), None
        if skip < 0:
            return _validation_error(["query", "skip"], "Input should be >= 0"), None
        if not 1 <= limit <= 100:
            return _validation_error(["query", "limit"], "Input should be between 1 and 100"), None
        runs = sorted(self.runs.values(), key=lambda r: r.id, reverse=True)
        source_type = request.query_params.get("source_type")
        if source_type:
            runs = [r for r in runs if r.source_type == source_type]
        page = runs[skip : skip + limit]
        for run in page:
            self._observe(run)
        total = len(runs)
        return (
            JSONResponse(
                {
                    "items": [self._view(run) for run in page],
                    "total": total,
                    "page": skip // limit + 1,
                    "size": limit,
                    "pages": math.ceil(total / limit) if total else 0,
                }
            ),
            None,
        )

    def _resume(self, request: Request, body: Any) -> tuple[JSONResponse, int | None]:
        problem = _check_resume_input(body)
        if problem is not None:
            return problem, None
        run = self.runs.get(body["agent_run_id"])
        if run is None:
            return _error(404), body["agent_run_id"]
        prompt: str = body["prompt"]
        run.resumes.append(prompt)
        key = str((run.metadata or {}).get("subtask_key"))
        commands = commands_from_prompt(prompt)
        script = run.script
        if commands is not None:
            verification = self.verifications.get(key, self.default_verification)
            run.answer = verification_answer(commands, verification)
            if verification.statuses is not None:
                script = RunScript(statuses=verification.statuses, result=run.answer)
        else:
            run.answer = f"Addressed the feedback ({len(run.resumes)})."
        run.script = RunScript(
            statuses=script.statuses,
            result=run.answer,
            summary=None,
            pull_requests=0,
            seconds_to_finish=script.seconds_to_finish,
        )
        run.started_at = self.clock()
        run.observations = 0
        run.finished = False
        return JSONResponse(self._view(run)), run.id

    # -- run state -------------------------------------------------------------------------

    def _new_run(
        self, prompt: str, repo_id: int | None, metadata: dict[str, Any] | None, script: RunScript
    ) -> _Run:
        run = _Run(
            id=next(self._ids),
            organization_id=self.org_id,
            created_at=dt.datetime.now(dt.UTC).isoformat(),
            prompt=prompt,
            repo_id=repo_id,
            metadata=metadata,
            script=script,
            started_at=self.clock(),
        )
        self.runs[run.id] = run
        return run

    def _observe(self, run: _Run) -> None:
        run.observations += 1

    def _status(self, run: _Run) -> str:
        statuses = run.script.statuses
        last = len(statuses) - 1
        index = min(run.observations, last)
        seconds = run.script.seconds_to_finish
        if seconds is not None:
            index = (
                last if self.clock() - run.started_at >= seconds else min(index, max(last - 1, 0))
            )
        if index == last and not run.finished:
            run.finished = True
            for n in range(run.script.pull_requests):
                number = len(run.pull_requests) + n + 1
                key = (run.metadata or {}).get("subtask_key", run.id)
                branch = f"codegen-bot/{key}-{run.id}"
                if self.on_pull_request is not None:
                    self.on_pull_request(str(key), branch)
                run.pull_requests.append(
                    {
                        "id": run.id * 100 + number,
                        "title": f"Codegen: {key}",
                        "url": f"https://github.com/example/app/pull/{run.id * 100 + number}",
                        "created_at": dt.datetime.now(dt.UTC).isoformat(),
                        "head_branch_name": branch,
                    }
                )
        return statuses[index]

    def _view(self, run: _Run) -> dict[str, Any]:
        status = self._status(run)
        return {
            "id": run.id,
            "organization_id": run.organization_id,
            "status": status,
            "created_at": run.created_at,
            "web_url": f"https://codegen.com/agent/trace/{run.id}",
            "result": run.script.result if run.finished else None,
            "summary": run.script.summary if run.finished else None,
            "source_type": run.source_type,
            "github_pull_requests": list(run.pull_requests),
            "metadata": run.metadata,
        }


def _error(status: int, *, retry_after: float | None = None) -> JSONResponse:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = (
            str(int(retry_after)) if retry_after == int(retry_after) else str(retry_after)
        )
    body = {"message": _ERROR_MESSAGES.get(status, "Error."), "status_code": status}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_error(loc: list[str | int], msg: str) -> JSONResponse:
    return JSONResponse(
        {"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, status_code=422
    )


def _check_create_input(body: Any) -> JSONResponse | None:
    if not isinstance(body, dict):
        return _validation_error(["body"], "Input should be a valid object")
    if not isinstance(body.get("prompt"), str):
        return _validation_error(["body", "prompt"], "Field required (a string)")
    checks: dict[str, Callable[[Any], bool]] = {
        "repo_id": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "metadata": lambda v: isinstance(v, dict),
        "images": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "model": lambda v: isinstance(v, str),
        "agent_type": lambda v: v in _AGENT_TYPES,
    }
    for name, valid in checks.items():
        value = body.get(name)
        if value is not None and not valid(value):
            return _validation_error(["body", name], f"Invalid value for {name}")
    return None


def _check_resume_input(body: Any) -> JSONResponse | None:
    if not isinstance(body, dict):
        return _validation_error(["body"], "Input should be a valid object")
    run_id = body.get("agent_run_id")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        return _validation_error(["body", "agent_run_id"], "Field required (an integer)")
    if not isinstance(body.get("prompt"), str):
        return _validation_error(["body", "prompt"], "Field required (a string)")
    return None
