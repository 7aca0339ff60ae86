"""The planner: run the orchestrator prompt on an issue's context and get a valid plan.

Contract:
- :meth:`Planner.plan` renders the context (issue text as untrusted data), asks the backend
  for a plan and validates it. A rejected plan is sent back ONCE with the validation error;
  a second rejection raises :class:`PlanningFailed` (a :class:`PlanError`). This rule lives
  here, the same for every backend.
- Every model call is accounted for: :class:`PlannerOutcome` and :class:`PlanningFailed`
  carry one :class:`PlannerCall` per attempt (model, tokens, USD or ``None`` for
  "unpriced"), so the ledger records rejected attempts too.
- A backend that cannot answer at all (network, auth, rate limits past the retry budget, a
  CLI that crashes or times out) raises :class:`PlannerUnavailable`, also carrying the calls
  made before it.
- A plan's ``reuses`` must name existing sub-issues of the issue, each at most once; a
  plan that breaks this is rejected like any invalid plan.
- Images attached to the issue (fetched files of kind ``image``) reach the backend as
  :class:`PlannerImage` values: the ``anthropic`` backend sends them as image blocks, the
  ``claude-code`` backend lets the CLI read them.
- Backends: ``anthropic`` (:mod:`.planner_anthropic`), ``claude-code``
  (:mod:`.planner_claude`) and ``static`` (:class:`StaticBackend`, a fixed plan for demos).
  The back ends import this module, never the other way round: the configured one is
  chosen by :func:`edge_worker.orchestration.wiring.build_planner`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import BaseModel

from edge_worker.executors.base import Usage
from edge_worker.orchestration.context import PlanningContext, render_planner_input
from edge_worker.orchestration.existing import reuse_problems
from edge_worker.orchestration.plan import Plan, PlanError, validate_plan
from edge_worker.settings import ConfigError

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 2
PROMPT_FILE = "orchestrator.md"

Pricer = Callable[[str, Usage], float | None]
"""``pricer(model, usage)``: USD for the tokens, or ``None`` when the model has no price."""

REASK = (
    "Your plan was rejected. Fix every problem listed below and submit the complete plan "
    "again (all sub-tasks, not only the changed ones).\n\n{error}"
)


class PlannerCall(BaseModel):
    """One model call made while planning, for the ledger."""

    attempt: int
    backend: str
    model: str
    usage: Usage = Usage()
    cost_usd: float | None = None
    rejected_because: str | None = None


class PlannerOutcome(BaseModel):
    """A valid plan and what it took to get it (sums over every attempt)."""

    plan: Plan
    usage: Usage
    cost_usd: float | None
    model: str
    attempts: int
    calls: list[PlannerCall]


def total_cost(calls: list[PlannerCall]) -> float | None:
    """The sum of the calls' costs; ``None`` when any call is unpriced (never a fake total)."""
    if any(call.cost_usd is None for call in calls):
        return None
    return sum(call.cost_usd or 0.0 for call in calls)


class PlanningFailed(PlanError):
    """The plan was rejected twice; ``problems`` are the last rejection's, ``calls`` all calls."""

    def __init__(self, problems: Iterable[str], calls: list[PlannerCall]) -> None:
        super().__init__(problems)
        self.calls = calls

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.calls))


class PlannerUnavailable(Exception):
    """The backend could not produce an answer; ``reason`` is fit for a comment."""

    def __init__(self, reason: str, calls: list[PlannerCall] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.calls: list[PlannerCall] = calls or []

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.calls))


@dataclass
class Proposal:
    """A backend's answer: the raw plan (or why there is none) and what the call cost.

    ``problem`` is set when the backend knows the answer holds no usable plan (the model
    did not call the tool, stopped at ``max_tokens``...); the planner treats it like a
    validation error. ``state`` is the backend's own memory for a re-ask.
    """

    raw: object
    usage: Usage
    cost_usd: float | None
    model: str
    problem: str | None = None
    state: Any = None


@dataclass
class Rejection:
    """A rejected proposal and the message that tells the model what to fix."""

    proposal: Proposal
    message: str


@dataclass(frozen=True)
class PlannerImage:
    """An image attached to the issue, fetched to ``path`` on this host."""

    name: str
    media_type: str
    path: str


def planner_images(ctx: PlanningContext) -> list[PlannerImage]:
    """The fetched images of ``ctx``, for the backend."""
    return [
        PlannerImage(name=ref.name, media_type=ref.media_type or "image/png", path=ref.path)
        for ref in ctx.attachments
        if ref.kind == "image" and ref.path is not None
    ]


class PlannerBackend(Protocol):
    """Something that turns the orchestrator prompt and the issue into a proposal."""

    name: str

    async def propose(
        self,
        *,
        system: str,
        prompt: str,
        cwd: str | None,
        rejection: Rejection | None,
        images: Sequence[PlannerImage] = (),
    ) -> Proposal: ...


@dataclass
class Planner:
    """Plans issues with ``backend``, enforcing the plan rules and the single re-ask."""

    backend: PlannerBackend
    system_prompt: str
    max_subtasks: int
    max_depth: int = 4

    async def plan(self, ctx: PlanningContext, *, feedback: str | None = None) -> PlannerOutcome:
        """A valid plan for ``ctx``; ``feedback`` (a failure, a follow-up) joins the input.

        Raises :class:`PlanningFailed` after two rejected plans and
        :class:`PlannerUnavailable` when the backend cannot answer.
        """
        prompt = render_planner_input(ctx, feedback=feedback)
        images = planner_images(ctx)
        calls: list[PlannerCall] = []
        rejection: Rejection | None = None
        bound = log.bind(issue=ctx.issue_identifier, backend=self.backend.name)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                proposal = await self.backend.propose(
                    system=self.system_prompt,
                    prompt=prompt,
                    cwd=ctx.repository_path,
                    rejection=rejection,
                    images=images,
                )
            except PlannerUnavailable as exc:
                bound.warning("planner_unavailable", attempt=attempt, reason=exc.reason)
                raise PlannerUnavailable(exc.reason, [*calls, *exc.calls]) from exc
            call = PlannerCall(
                attempt=attempt,
                backend=self.backend.name,
                model=proposal.model,
                usage=proposal.usage,
                cost_usd=proposal.cost_usd,
            )
            try:
                if proposal.problem:
                    raise PlanError([proposal.problem])
                plan = validate_plan(
                    proposal.raw, max_subtasks=self.max_subtasks, max_depth=self.max_depth
                )
                if problems := reuse_problems(plan, ctx.existing_subissues):
                    raise PlanError(problems)
            except PlanError as exc:
                calls.append(call.model_copy(update={"rejected_because": str(exc)}))
                bound.warning("plan_rejected", attempt=attempt, problems=exc.problems)
                if attempt == MAX_ATTEMPTS:
                    raise PlanningFailed(exc.problems, calls) from None
                rejection = Rejection(proposal, REASK.format(error=exc))
                continue
            calls.append(call)
            outcome = PlannerOutcome(
                plan=plan,
                usage=sum((c.usage for c in calls), Usage()),
                cost_usd=total_cost(calls),
                model=proposal.model,
                attempts=attempt,
                calls=calls,
            )
            bound.info(
                "plan_accepted",
                attempts=attempt,
                subtasks=len(plan.subtasks),
                cost_usd=outcome.cost_usd,
                input_tokens=outcome.usage.input_tokens,
                output_tokens=outcome.usage.output_tokens,
            )
            return outcome
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


class StaticBackend:
    """A fixed plan (a dict, JSON text or a JSON file), for demos without a model.

    It costs nothing (``0.0``: no model is called) and answers the same on a re-ask.
    """

    name = "static"

    def __init__(self, plan: object) -> None:
        self._raw = plan

    @classmethod
    def from_source(cls, source: str) -> StaticBackend:
        """From JSON text (starting with ``{``) or the path of a JSON file."""
        text = source.strip()
        if text.startswith("{"):
            return cls(text)
        path = Path(text).expanduser()
        try:
            return cls(path.read_text())
        except OSError as exc:
            raise ConfigError(
                f"EDGE_WORKER_PLANNER_STATIC_PLAN: cannot read {path}: {exc.strerror}"
            ) from None

    async def propose(
        self,
        *,
        system: str,
        prompt: str,
        cwd: str | None,
        rejection: Rejection | None,
        images: Sequence[PlannerImage] = (),
    ) -> Proposal:
        raw = json.loads(json.dumps(self._raw)) if isinstance(self._raw, dict) else self._raw
        return Proposal(raw=raw, usage=Usage(), cost_usd=0.0, model="static")


def render_orchestrator_prompt(template: str, *, max_subtasks: int, max_depth: int) -> str:
    """The orchestrator prompt with its ``{{max_subtasks}}`` and ``{{max_depth}}`` filled in."""
    return template.replace("{{max_subtasks}}", str(max_subtasks)).replace(
        "{{max_depth}}", str(max_depth)
    )


def load_orchestrator_prompt(prompts_dir: Path, *, max_subtasks: int, max_depth: int) -> str:
    """Read ``orchestrator.md`` from ``prompts_dir``; :class:`ConfigError` when missing."""
    path = prompts_dir / PROMPT_FILE
    try:
        template = path.read_text()
    except OSError as exc:
        raise ConfigError(f"EDGE_WORKER_PROMPTS_DIR: cannot read {path}: {exc.strerror}") from None
    return render_orchestrator_prompt(template, max_subtasks=max_subtasks, max_depth=max_depth)
