"""The ``run_subtask`` workflow: one sub-task on one executor, run, verified and iterated.

Contract:
- ``run_subtask`` (id ``<orchestration id>-<key>-<n>``, enqueued by
  :mod:`issue_dispatch` on the cloud or local queue) runs the sub-task, verifies it, feeds
  the failed evidence (and edits of the issue sent on ``edits.EDIT_TOPIC``) back into the
  same session up to ``max_iterations``, within the per-task, per-issue and daily budgets,
  lets recoveries (:mod:`recovery_steps`) and the peer review (:mod:`review_steps`) act,
  delivers verified work and posts the result on the sub-issue.
- It publishes the run's handle as the event ``handle`` (its parent cancels the run with
  it; a later follow-up resumes the session from it).
- Whatever happens, it sends its outcome to the parent orchestration on
  ``CONTROL_TOPIC`` as ``{"type": "subtask_done", ...}``; an error no step recovered from
  is a ``failed`` outcome (see :func:`subtask_outcome.subtask_error`), never silence.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.alerts import hooks as alerts
from edge_worker.costs.budget import (
    OVER_TASK_BUDGET_TEXT,
    BudgetLimits,
    IssueBudget,
    decide_dispatch,
)
from edge_worker.costs.money import Total, format_usd
from edge_worker.delivery.steps import deliver_verified
from edge_worker.executors.base import Evidence
from edge_worker.orchestration import edits, recovery_steps, review, review_steps, steps, texts
from edge_worker.orchestration.subtask_outcome import (
    cost_json,
    end_state,
    interrupted,
    resumable,
    run_status,
    subtask_error,
)
from edge_worker.orchestration.workflow_config import (
    CONTROL_TOPIC,
    FOLLOWING_EVENT,
    INTERRUPTED_CONTINUES,
    join_notes,
)
from edge_worker.reporting.report import verification_summary

log = structlog.get_logger(__name__)


def _feedback(report: dict[str, Any], result: dict[str, Any]) -> str:
    lines = ["Independent verification of your work failed. Fix it, then stop.", ""]
    if result.get("error"):
        lines.append(f"Your run ended with an error: {result['error']}")
    for check in report["checks"]:
        evidence = Evidence.model_validate(check)
        if evidence.passed:
            continue
        lines.append(
            f"- `{evidence.command}` exited {evidence.exit_code} (expected "
            f"{evidence.expect_exit}){': ' + evidence.reason if evidence.reason else ''}"
        )
        if evidence.output_tail:
            lines.append(
                "  ```\n  " + evidence.output_tail[-1500:].replace("\n", "\n  ") + "\n  ```"
            )
    return "\n".join(lines)


class _SubtaskRun:
    """One sub-task on one executor: run, verify, iterate (state rebuilt on replay)."""

    def __init__(self, spec: dict[str, Any], workflow_id: str) -> None:
        self.spec = spec
        self.workflow_id = workflow_id
        self.key: str = spec["key"]
        self.executor: str = spec["executor"]
        self.issue_id: str = spec["issue_id"]
        self.identifier: str = spec["issue_identifier"]
        self.task: dict[str, Any] = dict(spec["task"])
        self.limits = BudgetLimits.from_settings(services.current().settings.budget)
        self.handle: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.report: dict[str, Any] = {"checks": []}
        self.iterations = 0
        self.before = int(spec.get("iterations_before") or 0)
        self.continues = 0
        self.note: str | None = spec.get("note")
        self.review: dict[str, Any] | None = None
        self.recoveries: list[dict[str, Any]] = []
        self.switch_reason: str | None = None
        self.escalated = False

    def cost(self, step: str, attempt: int, kind: str) -> dict[str, Any]:
        return steps.cost_fields(
            self.workflow_id,
            step,
            attempt,
            self.issue_id,
            self.identifier,
            self.key,
            kind,  # type: ignore[arg-type]
        )

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        await steps.track_subtask_step(
            self.issue_id, self.key, self.workflow_id, "running", self.executor
        )
        if spec.get("started_state_id") and spec.get("sub_issue_id"):
            await steps.move_issue_step(spec["sub_issue_id"], spec["started_state_id"])
        started_at = await steps.now_step()
        charge = self.cost("run", 1, "run")
        if spec.get("resume_from"):  # a follow-up reopened this sub-task: same session
            feedback = texts.SUBTASK_FEEDBACK.format(feedback=spec.get("feedback") or "")
            started = {
                "handle": await steps.resume_run_step(
                    self.executor, spec["resume_from"], self.task, feedback, charge
                )
            }
        else:
            started = await steps.start_run_step(self.executor, self.task, charge)
        if "unavailable" in started:
            await steps.track_subtask_step(
                self.issue_id, self.key, self.workflow_id, "unavailable", self.executor
            )
            return {"key": self.key, "status": "unavailable", "reason": started["unavailable"]}
        await self.publish_run(started["handle"], charge)
        web_url = (self.handle.get("extra") or {}).get("web_url")
        if web_url:
            await self._link(texts.RUN_LINK_LABEL.format(name=self._name()), str(web_url))
        self.iterations = 1
        await self._follow(charge)
        if self.switch_reason is not None:
            return await self._switch()
        status = await self._judge()
        while (
            status == "failed"
            and self.iterations <= spec["max_iterations"]
            and resumable(self.result)
            and not self.escalated
        ):
            blocked_by = await self._budget_block()
            if blocked_by is not None:
                status, self.note = "over_budget", join_notes(self.note, blocked_by)
                break
            await self._iterate(_feedback(self.report, self.result) + await _issue_edits())
            if self.switch_reason is not None:
                return await self._switch()
            status = await self._judge()
        status = await review_steps.peer_review(self, status)
        finished_at = await steps.now_step()
        return await self._finish(status, finished_at - started_at)

    def _name(self) -> str:
        return str(self.spec.get("sub_issue_identifier") or self.key)

    async def feedback_iteration(self, feedback: str) -> str:
        """One more iteration of the author's session with ``feedback`` (a peer review's
        concerns); returns the status after verifying it again."""
        await self._iterate(feedback)
        return await self._judge()

    async def _iterate(self, feedback: str) -> None:
        """Resume the author's session with ``feedback`` and follow it (one iteration)."""
        self.iterations += 1
        charge = self.cost("resume", self.iterations, "resume")
        handle = await steps.resume_run_step(
            self.executor, self.handle, self.task, feedback, charge
        )
        await self.publish_run(handle, charge)
        await self._follow(charge)

    async def budget_block(self) -> str | None:
        """Why no further iteration may start, or ``None`` (see ``_budget_block``)."""
        return await self._budget_block()

    async def _link(self, label: str, url: str) -> None:
        """Add a link to the session (Codegen's run page, a pull request)."""
        if self.spec.get("session_id"):
            await steps.add_session_links_step(
                self.spec["session_id"], [{"label": label, "url": url}]
            )

    async def _set_handle(self, handle: dict[str, Any]) -> None:
        """Record ``handle`` as the current run's (an update of the same run)."""
        self.handle = handle
        await DBOS.set_event_async("handle", handle)

    async def publish_run(self, handle: dict[str, Any], charge: dict[str, Any]) -> None:
        """Make ``handle`` the run being followed, charged as ``charge`` (cost fields).

        Run and charge are one event, the one a stop on any daemon reads
        (``issue_dispatch.stop_children``): it abandons the run last published and
        charges it as that run. Published as two events, a stop in between paired the
        new run with the previous run's charge, already recorded.
        """
        await DBOS.set_event_async(FOLLOWING_EVENT, {"handle": handle, "charge": charge})
        await self._set_handle(handle)

    async def _follow(self, charge: dict[str, Any]) -> None:
        """Follow the current run, published with ``charge``; a run the daemon's restart
        interrupted is continued in the same session (not counted as an iteration:
        nothing was verified yet)."""
        self.result = await steps.follow_run_step(
            self.executor, self.handle, self.spec.get("session_id"), charge
        )
        while interrupted(self.result) and self.continues < INTERRUPTED_CONTINUES:
            self.continues += 1
            log.info("continuing a run interrupted by a restart", attempt=self.continues)
            charge = self.cost("continue", self.continues, "resume")
            handle = await steps.resume_run_step(
                self.executor, self.handle, self.task, texts.CONTINUE_AFTER_RESTART, charge
            )
            await self.publish_run(handle, charge)
            self.result = await steps.follow_run_step(
                self.executor, self.handle, self.spec.get("session_id"), charge
            )
        session = self.result.get("session_id")
        if session and session != self.handle.get("session_id"):
            # The handle outlives the worktree (and the transcript in it): keep the session
            # on it, so feedback after the sub-task ended can still resume that session.
            await self._set_handle({**self.handle, "session_id": session})
        await recovery_steps.recover(self)

    async def _switch(self) -> dict[str, Any]:
        """A recovery moved the sub-task to another executor: report this one unavailable."""
        await steps.release_run_step(self.executor, self.handle, False)
        await steps.track_subtask_step(
            self.issue_id, self.key, self.workflow_id, "unavailable", self.executor
        )
        return {"key": self.key, "status": "unavailable", "reason": self.switch_reason}

    async def _judge(self) -> str:
        """The sub-task's status after the current run: over its budget, or verified."""
        over = await self._over_task_budget()
        if over is not None:
            self.note = join_notes(self.note, over)
            return "over_budget"
        self.report = await steps.verify_step(
            self.executor,
            self.handle,
            self.task["verification"],
            self.cost("verify", self.iterations, "verification"),
        )
        return run_status(self.result, self.report)

    async def _over_task_budget(self) -> str | None:
        """Why the sub-task is over its per-task limit (every attempt counted), if it is.

        Claude Code stops itself at ``--max-budget-usd``; Codex and Codegen cannot, so
        their spend is checked after each run and a run over the limit is not resumed.
        """
        if self.limits.per_task is None:
            return None
        spent = Total(**await steps.subtask_total_step(self.issue_id, self.key))
        if spent.usd < self.limits.per_task:
            return None
        return OVER_TASK_BUDGET_TEXT.format(
            spent=format_usd(spent.usd), limit=format_usd(self.limits.per_task)
        )

    async def _budget_block(self) -> str | None:
        """Why no further iteration may start (per task, issue or day), or ``None``.

        When one may, Claude Code's ``--max-budget-usd`` becomes what is left of the
        sub-task's limit, so every attempt together stays within it.
        """
        spent = Total(**await steps.subtask_total_step(self.issue_id, self.key))
        if self.limits.per_task is not None:
            if spent.usd >= self.limits.per_task:
                return OVER_TASK_BUDGET_TEXT.format(
                    spent=format_usd(spent.usd), limit=format_usd(self.limits.per_task)
                )
            limits = dict(self.task.get("limits") or {})
            limits["max_usd"] = float(self.limits.per_task - spent.usd)
            self.task["limits"] = limits
        money = await steps.money_step(self.issue_id)
        issue_limit = self.spec.get("issue_limit")
        decision = decide_dispatch(
            self.limits,
            issue_spent=Total(**money["issue"]).usd,
            day_spent=Total(**money["day"]).usd,
            issue_budget=IssueBudget(limit=Decimal(issue_limit) if issue_limit else None),
        )
        if decision.may_dispatch:
            return None
        return texts.ITERATION_BLOCKED.format(reason=decision.reason)

    async def _finish(self, status: str, duration: float) -> dict[str, Any]:
        spec, result = self.spec, self.result
        spent = Total(**await steps.subtask_total_step(self.issue_id, self.key))
        checks = self.report["checks"]
        if status == "passed":  # delivery: verified work becomes a linked pull request
            branch = result.get("branch") or self.handle.get("branch")
            iterations, cost = self.before + self.iterations, format_usd(spent.usd)
            reviewed = review.pull_request_section({"review": self.review})
            result = await deliver_verified(
                spec, branch, result, checks, iterations, cost, review=reviewed
            )
            self.note = join_notes(self.note, result.get("delivery_note"))
            if result.get("delivered") and spec.get("review_state_id"):
                spec = {**spec, "done_state_id": spec["review_state_id"]}  # done once merged
        evidence = [Evidence.model_validate(c) for c in checks]
        outcome = {
            "key": self.key,
            "status": status,
            "executor": self.executor,
            "iterations": self.before + self.iterations,
            "cost": cost_json(spent),
            "duration_seconds": duration,
            "pr_url": (result.get("pr_urls") or [None])[0],
            "branch": result.get("branch") or self.handle.get("branch"),
            "verification": verification_summary(evidence),
            "checks": [{"command": c["command"], "exit_code": c.get("exit_code")} for c in checks],
            "summary": result.get("summary") or result.get("error") or "",
            "note": join_notes(self.note, review.report_cell(self.review) or None),
            "review": self.review,
            "recoveries": self.recoveries,
        }
        if spec.get("sub_issue_id"):
            await steps.finish_subissue_step(
                spec["sub_issue_id"],
                {
                    "status": status,
                    "summary": outcome["summary"],
                    "cost": outcome["cost"],
                    "iterations": outcome["iterations"],
                    "checks": checks,
                    "pr_urls": result.get("pr_urls") or [],
                    "branch": outcome["branch"],
                    "executor": self.executor,
                    "duration_seconds": duration,
                    "note": self.note,
                    **({"review": review.review_markdown(self.review)} if self.review else {}),
                },
                end_state(spec, status),
            )
        for url in result.get("pr_urls") or []:
            await self._link(texts.PR_LINK_LABEL.format(name=self._name()), str(url))
        if status == "failed":
            await alerts.subtask_escalated(self._name(), self.workflow_id, self.note)
        await steps.release_run_step(self.executor, self.handle, status == "passed")
        await steps.track_subtask_step(
            self.issue_id, self.key, self.workflow_id, status, self.executor
        )
        return outcome


@DBOS.workflow()
async def run_subtask(spec: dict[str, Any]) -> dict[str, Any]:
    """Run, verify and iterate one sub-task; returns its outcome (also sent to the parent).

    Whatever happens, the parent hears the outcome: an error that ends the sub-task is a
    ``failed`` outcome saying what went wrong, never silence. (A cancelled workflow raises
    DBOS's cancellation, a ``BaseException``, and says nothing: its parent cancelled it.)
    """
    workflow_id = str(DBOS.workflow_id)
    structlog.contextvars.bind_contextvars(issue=spec["issue_identifier"], subtask=spec["key"])
    try:
        outcome = await _SubtaskRun(spec, workflow_id).run()
    except Exception as exc:
        log.error("sub-task ended with an error", error=repr(exc))
        outcome = await subtask_error(spec, workflow_id, exc)
    await DBOS.send_async(spec["parent"], {"type": "subtask_done", **outcome}, CONTROL_TOPIC)
    return outcome


async def _issue_edits() -> str:
    """Edits of the issue sent to this sub-task since its last run, as feedback text."""
    found = []
    while (message := await DBOS.recv_async(edits.EDIT_TOPIC, timeout_seconds=0)) is not None:
        found.append(str(message.get("text") or ""))
    return "".join(f"\n\n{text}" for text in found if text)
