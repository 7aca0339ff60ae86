"""Put the issue's files into a local agent's worktree, out of git's reach.

Contract: :func:`place_attachments` copies each file to
``<worktree>/.edge-worker/attachments/<name>`` (replacing an older copy) and writes
``<worktree>/.edge-worker/.gitignore`` with ``*``, so nothing there is ever committed
(not even by the leftover commit after a run). A missing source file is skipped and
logged. Returns the names placed. Repeating it is harmless.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import structlog

from edge_worker.executors.base import TaskAttachment
from edge_worker.executors.task_prompt import ATTACHMENTS_DIR

log = structlog.get_logger(__name__)

IGNORE_EVERYTHING = "# edge-worker: files for the agent, never committed\n*\n"


def place_attachments(worktree: Path, attachments: Iterable[TaskAttachment]) -> list[str]:
    """Copy ``attachments`` into ``worktree``; the names placed."""
    files = list(attachments)
    if not files:
        return []
    target = worktree / ATTACHMENTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    (target.parent / ".gitignore").write_text(IGNORE_EVERYTHING)
    placed = []
    for file in files:
        name = Path(file.name).name  # never a path out of the directory
        try:
            shutil.copyfile(file.path, target / name)
        except OSError as exc:
            log.warning("attachment_not_placed", name=name, error=exc.strerror)
            continue
        placed.append(name)
    return placed
