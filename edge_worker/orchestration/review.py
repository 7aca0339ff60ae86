"""Peer review, sans I/O: the verdict's schema, reading a reviewer's answer, who reviews,
whether a sub-task is reviewed, what a verdict leads to, and how a review is shown.

- :class:`Verdict` is the typed answer (``approve``, ``concerns`` with findings, or
  ``blocker``); :func:`read_verdict` finds and validates it in a reviewer's output and
  returns the problem otherwise; :func:`malformed` is what a second bad answer counts as.
- :func:`choose_reviewer` never returns the author's executor with the author's model.
- :func:`decide`: approve accepts; a blocker escalates; concerns go back to the author
  once (when an iteration is left), and concerns after that round are accepted with the
  findings on record.
- :func:`review_markdown` is the section shown in the sub-issue's comment; the
  pull-request step includes the same text in a pull request body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

VerdictKind = Literal["approve", "concerns", "blocker"]
Severity = Literal["low", "medium", "high"]
Action = Literal["accept", "feedback", "escalate"]

RAW_LIMIT = 4000
NO_REVIEWER = "not peer-reviewed: no executor or model other than the author's is available"
ASK_AGAIN = (
    "Your answer did not match the verdict schema ({problem}). Answer again with only the "
    "JSON object, nothing else."
)
FEEDBACK = (
    "A peer review of your change raised these concerns. Address them (or explain in your "
    "summary why one does not apply), then stop.\n\n{findings}"
)
BLOCKER_QUESTION = (
    "The peer review found a blocker, so this sub-task stopped before being accepted: "
    "{summary}\n\n{findings}\n\nReply here with how to proceed, or re-run it once fixed."
)
MALFORMED_SUMMARY = "the reviewer's answer did not match the verdict schema twice"


class Finding(BaseModel):
    """One thing the reviewer found: where, how bad, what."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field("", max_length=500)
    line: int | None = Field(None, ge=0)
    severity: Severity
    text: str = Field(min_length=1, max_length=RAW_LIMIT)


class Verdict(BaseModel):
    """A reviewer's typed answer."""

    model_config = ConfigDict(extra="forbid")

    verdict: VerdictKind
    summary: str = Field("", max_length=2000)
    findings: list[Finding] = Field([], max_length=50)


VERDICT_SCHEMA: dict[str, Any] = Verdict.model_json_schema()

_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def read_verdict(text: str) -> Verdict | str:
    """The verdict in ``text`` (a fenced JSON block, else the outermost ``{...}``), or
    what is wrong with it."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    if not candidates:
        return "no JSON object found"
    problem = ""
    for candidate in reversed(candidates):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError as exc:
            problem = f"invalid JSON: {exc.msg}"
            continue
        try:
            return Verdict.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "verdict"
            problem = f"{where}: {first['msg']}"
    return problem


def malformed(raw: str) -> Verdict:
    """What an answer that failed the schema twice counts as: concerns, raw text attached."""
    text = raw.strip()[:RAW_LIMIT] or "(no output)"
    return Verdict(
        verdict="concerns",
        summary=MALFORMED_SUMMARY,
        findings=[Finding(severity="medium", text=text)],
    )


@dataclass(frozen=True)
class Reviewer:
    """Who reviews: an executor, and the model it is told to use (``None``: its default)."""

    executor: str
    model: str | None


def choose_reviewer(
    author_executor: str,
    author_model: str | None,
    *,
    preference: Sequence[str],
    available: Collection[str],
    models: dict[str, str | None],
) -> Reviewer | None:
    """The first available executor in ``preference`` other than the author's; else the
    author's executor with a configured model that differs from the author's; else
    ``None`` (no independent reviewer)."""
    for name in preference:
        if name in available and name != author_executor:
            return Reviewer(name, models.get(name))
    model = models.get(author_executor)
    if author_executor in available and model and model != author_model:
        return Reviewer(author_executor, model)
    return None


def is_reviewed(
    mode: str,
    *,
    roles: Collection[str],
    labels: Collection[str],
    repositories: Collection[str],
    role: str,
    issue_labels: Collection[str],
    repository: str | None,
) -> bool:
    """Whether a passed sub-task is reviewed: ``off`` never, ``all`` always, ``named``
    when its role, one of its issue's labels or its repository is named."""
    if mode == "all":
        return True
    if mode != "named":
        return False
    wanted = {label.lower() for label in labels}
    return (
        role in roles
        or bool(wanted & {label.lower() for label in issue_labels})
        or (repository is not None and repository in repositories)
    )


def decide(verdict: Verdict, *, round_: int, iteration_left: bool) -> Action:
    """What a verdict leads to in review round ``round_`` (0 first)."""
    if verdict.verdict == "approve":
        return "accept"
    if verdict.verdict == "blocker":
        return "escalate"
    if round_ == 0 and iteration_left:
        return "feedback"
    return "accept"


def findings_text(verdict: Verdict) -> str:
    """The findings as a Markdown list (``file:line`` (severity) text)."""
    lines = []
    for f in verdict.findings:
        where = f"`{f.file}:{f.line}`" if f.file and f.line is not None else f"`{f.file}`"
        where = where if f.file else "general"
        lines.append(f"- {where} ({f.severity}): {f.text}")
    return "\n".join(lines) or "- (no findings given)"


def feedback_for_author(verdict: Verdict) -> str:
    return FEEDBACK.format(findings=findings_text(verdict))


def review_markdown(record: dict[str, Any]) -> str:
    """The review section of a sub-issue comment or a pull request body, from the record
    :func:`review_record` makes."""
    verdict = Verdict.model_validate(record["verdict"])
    reviewer = record["reviewer"]
    model = f" ({record['model']})" if record.get("model") else ""
    lines = [
        f"**Peer review**: {verdict.verdict} by {reviewer}{model}, cost {record['cost']}"
        + (f", {record['rounds']} rounds" if record.get("rounds", 1) > 1 else ""),
    ]
    if verdict.summary:
        lines.append(verdict.summary)
    if verdict.findings:
        lines.append(findings_text(verdict))
    return "\n\n".join(lines)


def review_record(verdict: Verdict, reviewer: Reviewer, cost: str, rounds: int) -> dict[str, Any]:
    """A review as plain data (kept in the sub-task's outcome, for the report and PRs)."""
    return {
        "verdict": verdict.model_dump(mode="json"),
        "reviewer": reviewer.executor,
        "model": reviewer.model,
        "cost": cost,
        "rounds": rounds,
    }


def pull_request_section(outcome: dict[str, Any]) -> str | None:
    """The hook for the pull-request step: the review section for a pull request body from
    a sub-task's outcome (``run_subtask``'s return value, ``review`` key), or ``None`` when
    the sub-task was not reviewed."""
    record = outcome.get("review")
    return review_markdown(record) if record else None


def report_cell(record: dict[str, Any] | None) -> str:
    """The report row's short form: ``approve (codex, $0.05)``."""
    if not record:
        return ""
    verdict = record["verdict"]["verdict"]
    count = len(record["verdict"].get("findings") or [])
    found = f", {count} findings" if count else ""
    return f"review: {verdict} by {record['reviewer']}{found}, {record['cost']}"
