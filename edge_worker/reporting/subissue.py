"""The description of a sub-issue created from a plan's sub-task (sans-I/O)."""

from __future__ import annotations

from edge_worker.orchestration.plan import Subtask
from edge_worker.reporting.markers import marker

SUBISSUE_PURPOSE = "subtask"


def render_subissue_description(
    parent_id: str,
    subtask: Subtask,
    *,
    parent_url: str | None = None,
    report_url: str | None = None,
) -> str:
    """Objective and acceptance (the planner's text), role, dependencies, verification;
    with the parent issue's and its report's Linear URLs when known (Linear renders them
    as mentions)."""
    lines = [
        marker(SUBISSUE_PURPOSE, parent_id),
        subtask.description.strip(),
        "",
        f"**Role:** {subtask.role} · **Executor hint:** {subtask.executor} · "
        f"**Key:** `{subtask.key}`",
    ]
    if subtask.depends_on:
        lines.append("**Depends on:** " + ", ".join(f"`{d}`" for d in subtask.depends_on))
    if subtask.verification:
        lines += ["", "**Verification** (run by edge-worker where the work lives):", "```sh"]
        for check in subtask.verification:
            suffix = "" if check.expect_exit == 0 else f"  # expect exit {check.expect_exit}"
            lines.append(check.command + suffix)
        lines.append("```")
    links = [
        f"Part of {parent_url}" if parent_url else "",
        f"report: {report_url}" if report_url else "",
    ]
    if any(links):
        lines += ["", " · ".join(link for link in links if link)]
    return "\n".join(lines)
