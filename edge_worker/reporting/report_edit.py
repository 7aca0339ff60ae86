"""Edit one sub-issue's row of a rendered report in place (sans-I/O).

Contract: :func:`with_row_status` returns the report's markdown with the status cell of
the row for sub-issue ``identifier`` replaced by ``status``'s title, or ``None`` when the
report has no such row or the row already says so. Every other character is kept, so the
edit is safe to repeat. Used when something after the orchestration ended (a pull request
closed without merging) changes a sub-task's outcome.
"""

from __future__ import annotations

import re

from edge_worker.reporting.report import STATUS_TITLES, escape_cell

STATUS_CELL = 2
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def with_row_status(body: str, identifier: str, status: str) -> str | None:
    """See the module contract."""
    title = f" {escape_cell(STATUS_TITLES.get(status, status.replace('_', ' ')))} "
    lines = body.split("\n")
    for number, line in enumerate(lines):
        if not (line.startswith("| [") and f"[{identifier} " in line):
            continue
        cells = _CELL_SPLIT.split(line)
        index = STATUS_CELL + 1  # the line starts with a pipe: cells[0] is empty
        if len(cells) <= index + 1 or cells[index] == title:
            return None
        cells[index] = title
        lines[number] = "|".join(cells)
        return "\n".join(lines)
    return None
