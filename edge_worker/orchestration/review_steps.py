"""Peer review inside a sub-task's workflow: after verification passed, before the
sub-task is accepted (and before its worktree is released).

:func:`peer_review` is workflow code (deterministic; effects in steps): it decides
whether the sub-task is reviewed and by whom, runs :func:`review_step`, and applies the
policy of :func:`edge_worker.orchestration.review.decide`: approve accepts; concerns go
back to the author as one more iteration (within the iteration and budget limits), then
the work is verified and reviewed again; a blocker stops the sub-task and asks a human on
the sub-issue. The last review is kept on the run (``run.review``) for the result comment,
the report row and, later, a pull request body (:func:`review.review_markdown`).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.costs.ledger import CostEntry
from edge_worker.costs.money import format_usd
from edge_worker.executors.local_cli import LocalCliExecutor
from edge_worker.ids import stable_uuid4
from edge_worker.orchestration import review, steps
from edge_worker.orchestration.review_runner import review_worktree

log = structlog.get_logger(__name__)

REVIEWER_ROLE = "reviewer"
LOCAL = ("claude-code", "codex")
NO_WORKTREE = "not peer-reviewed: the work has no local worktree to review"


class Run(Protocol):
    """What the review needs of the sub-task's run (``_SubtaskRun``)."""

    spec: dict[str, Any]
    executor: str
    issue_id: str
    identifier: str
    key: str
    task: dict[str, Any]
    handle: dict[str, Any]
    result: dict[str, Any]
    iterations: int
    note: str | None
    review: dict[str, Any] | None

    def cost(self, step: str, attempt: int, kind: str) -> dict[str, Any]: ...

    async def feedback_iteration(self, feedback: str) -> str: ...

    async def budget_block(self) -> str | None: ...


def _join(first: str | None, second: str | None) -> str | None:
    parts = [p for p in (first, second) if p]
    return "; ".join(parts) if parts else None


@DBOS.step()
async def review_step(
    reviewer: dict[str, Any],
    handle: dict[str, Any],
    task: dict[str, Any],
    cost: dict[str, Any],
) -> dict[str, Any]:
    """Run the reviewer on a read-only copy of the run's worktree; record each reviewer
    run in the ledger under the reviewer's executor (once, by entry id)."""
    a = steps.adapters()
    settings = a.settings
    chosen = review.Reviewer(reviewer["executor"], reviewer.get("model"))
    cli = a.executors[chosen.executor]
    assert isinstance(cli, LocalCliExecutor)
    binary = (
        settings.review.codex_binary
        if chosen.executor == "codex"
        else settings.review.claude_binary
    ) or cli.binary
    path = settings.prompts_dir / f"{REVIEWER_ROLE}.md"
    role_prompt = path.read_text(encoding="utf-8") if path.exists() else ""
    outcome = await review_worktree(
        cli,
        chosen,
        binary=binary,
        worktree=Path(handle["workdir"]),
        base=str(task.get("base_branch") or "main"),
        task=task,
        role_prompt=role_prompt,
        settings=settings.review,
    )
    total: Decimal | None = Decimal(0)
    for attempt, result in enumerate(outcome.runs, start=1):
        fields = {**cost, "attempt": cost["attempt"] * 10 + attempt}
        fields["entry_id"] = stable_uuid4(cost["entry_id"], str(attempt))
        await steps._record_cost(
            CostEntry(
                **fields,
                executor=chosen.executor,
                model=result.model or chosen.model,
                usage=result.usage,
                usd=result.cost_usd,
            )
        )
        if result.cost_usd is None or total is None:
            total = None
        else:
            total += Decimal(str(result.cost_usd))
    if not outcome.worktree_unchanged:  # never expected: the reviewer gets a copy
        log.error("the author's worktree changed during its review")
    return {
        "verdict": outcome.verdict.model_dump(mode="json"),
        "cost": format_usd(total) if total is not None else "unpriced",
        "worktree_unchanged": outcome.worktree_unchanged,
    }


def _applies(run: Run) -> bool:
    settings = services.current().settings.review
    return review.is_reviewed(
        settings.mode,
        roles=settings.roles,
        labels=settings.labels,
        repositories=settings.repositories,
        role=str(run.task.get("role") or ""),
        issue_labels=list(run.spec.get("issue_labels") or []),
        repository=run.task.get("repository_id"),
    )


def _reviewer(run: Run) -> review.Reviewer | None:
    settings = services.current().settings
    executors = steps.adapters().executors
    return review.choose_reviewer(
        run.executor,
        run.result.get("model"),
        preference=settings.review.reviewers,
        available=[name for name in LOCAL if name in executors],
        models={"claude-code": settings.review.claude_model, "codex": settings.review.codex_model},
    )


async def peer_review(run: Run, status: str) -> str:
    """The sub-task's status once reviewed (``status`` unchanged when it is not reviewed
    or did not pass)."""
    if status != "passed" or not _applies(run):
        return status
    if not run.handle.get("workdir"):
        run.note = _join(run.note, NO_WORKTREE)
        return status
    reviewer = _reviewer(run)
    if reviewer is None:
        run.note = _join(run.note, review.NO_REVIEWER)
        return status
    round_ = 0
    while True:
        found = await review_step(
            {"executor": reviewer.executor, "model": reviewer.model},
            run.handle,
            run.task,
            run.cost(f"review-{round_}", 1, "review"),
        )
        verdict = review.Verdict.model_validate(found["verdict"])
        run.review = review.review_record(verdict, reviewer, found["cost"], round_ + 1)
        blocked = await run.budget_block() if verdict.verdict == "concerns" else None
        iteration_left = run.iterations <= int(run.spec["max_iterations"]) and blocked is None
        action = review.decide(verdict, round_=round_, iteration_left=iteration_left)
        log.info("peer review", verdict=verdict.verdict, action=action, round=round_)
        if action == "accept":
            return "passed"
        if action == "escalate":
            await _ask_human(run, verdict)
            run.note = _join(run.note, f"peer review blocker: {verdict.summary or 'see findings'}")
            return "failed"
        status = await run.feedback_iteration(review.feedback_for_author(verdict))
        if status != "passed":
            return status
        round_ += 1


async def _ask_human(run: Run, verdict: review.Verdict) -> None:
    sub_issue = run.spec.get("sub_issue_id")
    if not sub_issue:
        return
    body = review.BLOCKER_QUESTION.format(
        summary=verdict.summary or "see the findings", findings=review.findings_text(verdict)
    )
    comment_id = stable_uuid4(str(DBOS.workflow_id), "review-blocker")
    await steps.comment_step(sub_issue, comment_id, body)
