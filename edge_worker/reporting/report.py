"""Markdown for the report comment on the parent issue and each sub-issue's result comment.

Contract (sans-I/O: plain data in, markdown out):
- :func:`render_report` starts with the hidden marker ``marker("report", issue_id)`` so the
  daemon finds and edits its one report comment; then a heading with the overall state (and
  who stopped it), a table with a row per sub-issue (title, executor, status, verification,
  iterations, cost, duration, link), the issue's total with its unpriced parts named,
  today's spend against the daily limit, and notes (fallbacks, budget messages).
- :func:`render_subtask_result` starts with ``marker("result", issue_id)`` of the sub-issue
  and shows the result summary, the PR or branch, the verification evidence (command, exit
  code, expected, duration, the output's tail folded in a ``<details>`` block), the cost and
  the iterations.
- Text from agents and commands is escaped for the place it lands: table cells cannot be
  broken by ``|`` or newlines, and code fences are longer than any backtick run inside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from edge_worker.costs.money import Total, format_usd, plural
from edge_worker.executors.base import Evidence
from edge_worker.reporting.markers import marker

ReportState = Literal[
    "planning", "working", "done", "failed", "stopped", "over_budget", "timed_out"
]

REPORT_PURPOSE = "report"
RESULT_PURPOSE = "result"

STATE_TITLES: dict[str, str] = {
    "planning": "planning",
    "working": "working",
    "done": "done",
    "failed": "failed",
    "stopped": "stopped",
    "over_budget": "over budget",
    "timed_out": "timed out",
}
STATUS_TITLES: dict[str, str] = {
    "pending": "pending",
    "waiting": "waiting",
    "running": "running",
    "verifying": "verifying",
    "succeeded": "done",
    "done": "done",
    "failed": "failed",
    "cancelled": "cancelled",
    "stopped": "stopped",
    "over_budget": "over budget",
    "timed_out": "timed out",
    "skipped": "skipped",
    "abandoned": "abandoned (pull request closed unmerged)",
}

REPORT_HEADING = "## edge-worker: {identifier} is {state}"
STOPPED_BY_LINE = "Stopped by {who}."
TABLE_HEADER = (
    "| Sub-issue | Executor | Status | Verification | Iterations | Cost | Duration | Link |\n"
    "|---|---|---|---|---:|---:|---:|---|"
)
NO_SUBTASKS_YET = "_No sub-issues yet._"
TOTAL_LINE = "**Total:** {total}"
LOWER_BOUND_NOTE = " (at least {priced}: unpriced runs have no known cost)"
PLANNING_LINE = "**Planning:** {cost}"
TODAY_WITH_LIMIT = "**Today:** {spent} of the {limit} daily budget ({percent} %)"
TODAY_WITHOUT_LIMIT = "**Today:** {spent} (no daily limit)"
NOTES_HEADING = "**Notes**"
NOT_VERIFIED = "not verified"
VERIFICATION_SUMMARY = "{passed}/{total} passed"
NO_VALUE = "-"

RESULT_HEADING = "### Result: {status}"
RESULT_PR_LINE = "**Pull request:** {links}"
RESULT_BRANCH_LINE = "**Branch:** `{branch}`"
RESULT_VERIFICATION_HEADING = "**Verification:** {summary}"
RESULT_CHECK_LINE = (
    "- {mark} `{command}`: exit {exit_code} (expected {expected}), {duration}{reason}"
)
RESULT_OUTPUT_SUMMARY = "Output (last {lines})"
RESULT_COST_LINE = "**Cost:** {cost} · **Iterations:** {iterations}"
RESULT_DURATION_LINE = " · **Duration:** {duration}"
RESULT_EXECUTOR_LINE = "**Executor:** {executor}"
PASSED_MARK = "✅"
FAILED_MARK = "❌"

OUTPUT_TAIL_LINES = 40
OUTPUT_TAIL_CHARS = 4000

_PR_NUMBER = re.compile(r"/pull/(\d+)(?:[/?#]|$)")


@dataclass(frozen=True)
class SubtaskRow:
    """One sub-issue's line in the report."""

    key: str
    title: str
    executor: str
    status: str
    identifier: str | None = None
    url: str | None = None
    verification: str = NOT_VERIFIED
    iterations: int = 0
    cost: Total = field(default_factory=Total)
    duration_seconds: float | None = None
    pr_url: str | None = None
    branch: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class ReportModel:
    """Everything the report comment shows.

    ``total`` is the issue's ledger total (planner calls included), which may exceed the
    sum of the rows by ``planning_cost`` (shown on its own line when given);
    ``daily_limit`` is ``None`` when there is no daily budget.
    """

    issue_id: str
    issue_identifier: str
    state: ReportState
    rows: Sequence[SubtaskRow] = ()
    total: Total = field(default_factory=Total)
    today_spend: Total = field(default_factory=Total)
    daily_limit: Decimal | None = None
    stopped_by: str | None = None
    notes: Sequence[str] = ()
    planning_cost: Total | None = None


def verification_summary(checks: Sequence[Evidence]) -> str:
    """``"3/3 passed"``, ``"1/3 passed"``, or ``"not verified"`` when there were no checks."""
    if not checks:
        return NOT_VERIFIED
    passed = sum(1 for check in checks if check.passed)
    return VERIFICATION_SUMMARY.format(passed=passed, total=len(checks))


def format_duration(seconds: float | None) -> str:
    """``"2.5s"``, ``"45s"``, ``"4m 12s"``, ``"1h 02m"``; ``"-"`` when unknown."""
    if seconds is None or seconds < 0:
        return NO_VALUE
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def escape_cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (one line, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def _link_text(text: str) -> str:
    return escape_cell(text).replace("[", "\\[").replace("]", "\\]")


def pr_label(url: str) -> str:
    """``"PR #12"`` for a GitHub-style pull request URL, else ``"PR"``."""
    found = _PR_NUMBER.search(url)
    return f"PR #{found.group(1)}" if found else "PR"


def _link_cell(row: SubtaskRow) -> str:
    if row.pr_url:
        return f"[{pr_label(row.pr_url)}]({row.pr_url})"
    if row.branch:
        return f"`{escape_cell(row.branch).replace('`', '')}`"
    return NO_VALUE


def _subissue_cell(row: SubtaskRow) -> str:
    label = _link_text(f"{row.identifier} {row.title}" if row.identifier else row.title)
    return f"[{label}]({row.url})" if row.url else label


def _status_title(status: str) -> str:
    return STATUS_TITLES.get(status, status.replace("_", " "))


def _row_line(row: SubtaskRow) -> str:
    cells = (
        _subissue_cell(row),
        escape_cell(row.executor),
        escape_cell(_status_title(row.status)),
        escape_cell(row.verification),
        str(row.iterations),
        escape_cell(row.cost.format()),
        format_duration(row.duration_seconds),
        _link_cell(row),
    )
    return "| " + " | ".join(cells) + " |"


def _total_line(total: Total) -> str:
    line = TOTAL_LINE.format(total=total.format())
    if total.unpriced and total.priced:
        line += LOWER_BOUND_NOTE.format(priced=format_usd(total.usd))
    return line


def _today_line(spend: Total, limit: Decimal | None) -> str:
    if limit is None:
        return TODAY_WITHOUT_LIMIT.format(spent=spend.format())
    percent = int(spend.usd * 100 / limit) if limit > 0 else 100
    return TODAY_WITH_LIMIT.format(spent=spend.format(), limit=format_usd(limit), percent=percent)


def render_report(model: ReportModel) -> str:
    """The report comment's markdown (see the module contract)."""
    state = STATE_TITLES.get(model.state, model.state)
    parts = [
        marker(REPORT_PURPOSE, model.issue_id),
        REPORT_HEADING.format(identifier=model.issue_identifier, state=state),
    ]
    if model.stopped_by:
        parts.append(STOPPED_BY_LINE.format(who=escape_cell(model.stopped_by)))
    if model.rows:
        parts.append(TABLE_HEADER + "\n" + "\n".join(_row_line(row) for row in model.rows))
    else:
        parts.append(NO_SUBTASKS_YET)
    money = [_total_line(model.total)]
    if model.planning_cost is not None:
        money.insert(0, PLANNING_LINE.format(cost=model.planning_cost.format(noun="call")))
    money.append(_today_line(model.today_spend, model.daily_limit))
    parts.append("  \n".join(money))
    notes = [f"{row.identifier or row.key}: {row.note}" for row in model.rows if row.note]
    notes += list(model.notes)
    if notes:
        parts.append(NOTES_HEADING + "\n" + "\n".join(f"- {escape_cell(n)}" for n in notes))
    return "\n\n".join(parts) + "\n"


def tail(text: str, lines: int = OUTPUT_TAIL_LINES, chars: int = OUTPUT_TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters."""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return kept[-chars:]


def fenced(text: str) -> str:
    """``text`` in a code fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _check_lines(check: Evidence) -> str:
    line = RESULT_CHECK_LINE.format(
        mark=PASSED_MARK if check.passed else FAILED_MARK,
        command=check.command.replace("`", "'"),
        exit_code=NO_VALUE if check.exit_code is None else check.exit_code,
        expected=check.expect_exit,
        duration=format_duration(check.duration_seconds),
        reason=f": {check.reason}" if check.reason else "",
    )
    output = tail(check.output_tail)
    if not output:
        return line
    summary = RESULT_OUTPUT_SUMMARY.format(lines=plural(len(output.splitlines()), "line"))
    details = f"<details><summary>{summary}</summary>\n\n{fenced(output)}\n\n</details>"
    indented = "\n".join(f"  {text}" if text else "" for text in details.splitlines())
    return f"{line}\n\n{indented}\n"


def render_subtask_result(
    *,
    issue_id: str,
    status: str,
    summary: str,
    cost: Total,
    iterations: int,
    checks: Sequence[Evidence] = (),
    pr_urls: Sequence[str] = (),
    branch: str | None = None,
    executor: str | None = None,
    duration_seconds: float | None = None,
    note: str | None = None,
    review: str | None = None,
) -> str:
    """A sub-issue's result comment (see the module contract); ``issue_id`` is the sub-issue's.
    ``review``: the peer review's section, shown after the verification."""
    parts = [
        marker(RESULT_PURPOSE, issue_id),
        RESULT_HEADING.format(status=_status_title(status)),
    ]
    if summary.strip():
        parts.append(summary.strip())
    if executor:
        parts.append(RESULT_EXECUTOR_LINE.format(executor=executor))
    if note:
        parts.append(f"_{note}_")
    if pr_urls:
        links = ", ".join(f"[{pr_label(url)}]({url})" for url in pr_urls)
        parts.append(RESULT_PR_LINE.format(links=links))
    elif branch:
        parts.append(RESULT_BRANCH_LINE.format(branch=branch.replace("`", "")))
    verification = RESULT_VERIFICATION_HEADING.format(summary=verification_summary(checks))
    if checks:
        verification += "\n\n" + "\n".join(_check_lines(check) for check in checks)
    parts.append(verification)
    if review:
        parts.append(review)
    cost_line = RESULT_COST_LINE.format(cost=cost.format(), iterations=iterations)
    if duration_seconds is not None:
        cost_line += RESULT_DURATION_LINE.format(duration=format_duration(duration_seconds))
    parts.append(cost_line)
    return "\n\n".join(parts) + "\n"
