"""The pull request's title, body and base branch for a verified sub-task (sans-I/O).

Contract:
- :func:`pull_request_title` is the sub-issue's identifier and title, trimmed to GitHub's
  practical title length.
- :func:`pull_request_body` starts with Linear's magic word line (``Fixes ENG-12``) so Linear
  links the pull request to the sub-issue, then the acceptance criteria, the verification
  evidence (each command, its exit code and the tail of its output), the iterations and the
  cost, and ends with :func:`marker`: a hidden HTML comment naming the sub-task, which is how
  the daemon recognises its own pull request and edits its text instead of adding another.
- :func:`acceptance_criteria` finds the bullet list under an "Acceptance" line of the
  planner's description (empty when there is none).
- :func:`base_branch` is the repository's base branch, or the branch of the sub-task this
  one depends on while that one is not merged yet (stacked pull requests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MAGIC_WORD = "Fixes"
TITLE_LIMIT = 200
TAIL_LINES = 15
NO_CRITERIA = "_No acceptance criteria were written for this sub-task._"
NO_EVIDENCE = "_No verification commands are configured for this repository._"
FOOTER = "Opened by edge-worker after the checks below passed on its machine."


@dataclass(frozen=True)
class CheckEvidence:
    """One verification command as it ran."""

    command: str
    exit_code: int
    output_tail: str = ""


@dataclass(frozen=True)
class PullRequestFacts:
    """What the pull request says about one sub-task."""

    issue_identifier: str
    subtask_key: str
    title: str
    issue_url: str = ""
    acceptance_criteria: Sequence[str] = ()
    checks: Sequence[CheckEvidence] = ()
    iterations: int = 1
    cost: str = ""
    notes: Sequence[str] = field(default_factory=tuple)
    review: str = ""
    """The peer review's Markdown section (verdict, findings, cost), when there was one."""


def acceptance_criteria(description: str) -> list[str]:
    """The bullet points under the description's line that mentions "acceptance"."""
    criteria: list[str] = []
    inside = False
    for line in description.splitlines():
        stripped = line.strip()
        if not inside:
            inside = "acceptance" in stripped.lower()
            continue
        if stripped[:2] in ("- ", "* ") or stripped[:2].rstrip(".").isdigit():
            criteria.append(stripped.split(" ", 1)[1].strip() if " " in stripped else stripped)
        elif stripped or criteria:
            break
    return criteria


def marker(issue_identifier: str, subtask_key: str) -> str:
    """The hidden line that identifies the daemon's pull request for one sub-task."""
    return f"<!-- edge-worker:pull-request {issue_identifier}/{subtask_key} -->"


def has_marker(body: str | None, issue_identifier: str, subtask_key: str) -> bool:
    """Whether ``body`` is the daemon's own text for this sub-task."""
    return marker(issue_identifier, subtask_key) in (body or "")


def marked_sub_issue(body: str | None, subtask_key: str) -> str | None:
    """The sub-issue identifier named by the marker for ``subtask_key`` in ``body`` (a
    reused sub-issue's identifier differs from the branch's issue), else ``None``."""
    named = rf"(?P<issue>[A-Za-z][A-Za-z0-9]*-\d+)/{re.escape(subtask_key)}"
    found = re.search(rf"<!-- edge-worker:pull-request {named} -->", body or "")
    return found["issue"].upper() if found else None


def pull_request_title(facts: PullRequestFacts) -> str:
    """``ENG-12: Title``, shortened with an ellipsis when too long."""
    title = f"{facts.issue_identifier}: {' '.join(facts.title.split())}"
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def _tail(text: str) -> str:
    lines = text.rstrip().splitlines()[-TAIL_LINES:]
    return "\n".join(lines)


def pull_request_body(facts: PullRequestFacts) -> str:
    """The Markdown body described in the module contract."""
    link = f"[{facts.issue_identifier}]({facts.issue_url})" if facts.issue_url else ""
    lines = [f"{MAGIC_WORD} {facts.issue_identifier}", ""]
    if link:
        lines += [f"Sub-issue: {link}", ""]
    lines += ["### Acceptance criteria", ""]
    lines += [f"- [x] {item}" for item in facts.acceptance_criteria] or [NO_CRITERIA]
    lines += ["", "### Verification", ""]
    if not facts.checks:
        lines.append(NO_EVIDENCE)
    for check in facts.checks:
        verdict = "passed" if check.exit_code == 0 else "failed"
        lines.append(f"- `{check.command}`: exit {check.exit_code} ({verdict})")
        if check.output_tail.strip():
            # A four-backtick fence: a tail that prints ``` cannot close it.
            rows = [f"  {row}" for row in _tail(check.output_tail).split("\n")]
            lines += ["", "  ````text", *rows, "  ````"]
    iterations = "1 iteration" if facts.iterations == 1 else f"{facts.iterations} iterations"
    summary = f"{iterations}, cost {facts.cost}" if facts.cost else iterations
    if facts.review:
        lines += ["", "### Review", "", facts.review]
    lines += ["", "### Work", "", f"- {summary}", *(f"- {note}" for note in facts.notes)]
    lines += ["", FOOTER, "", marker(facts.issue_identifier, facts.subtask_key)]
    return "\n".join(lines) + "\n"


def base_branch(default_base: str, dependency_branch: str | None, dependency_merged: bool) -> str:
    """Where the pull request points: the dependency's branch while it is unmerged."""
    if dependency_branch and not dependency_merged:
        return dependency_branch
    return default_base
