"""The description of a sub-issue created from a plan's sub-task (sans-I/O)."""

from __future__ import annotations

from edge_worker.orchestration.plan import Subtask
from edge_worker.reporting.markers import marker

SUBISSUE_PURPOSE = "subtask"


def render_subissue_description(parent_id: str, subtask: Subtask) -> str:
    """Objective and acceptance (the planner's text), role, dependencies, verification."""
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
    return "\n".join(lines)
