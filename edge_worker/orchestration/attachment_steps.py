"""The durable steps that fetch an issue's files for the planner and the agents.

Contract:
- :func:`fetch_attachments_step` finds the issue's attachments and uploads
  (:func:`~edge_worker.orchestration.attachments.find_references`), fetches the uploads
  with the Linear token into ``<state dir>/attachments/<issue id>/`` within the size cap
  and returns the :class:`AttachmentRef` list (as JSON) and the notes on what was not
  fetched. Repeating it fetches again into the same files: safe to repeat.
- :func:`ensure_files` fetches again any file missing on this host (a sub-task run
  by another daemon than the one that planned), before an agent is given the files.
- Nothing here raises for a file: a failed fetch becomes a note, the work goes on.
- :func:`sweep_attachments` (at start-up) removes issue directories untouched for
  ``keep_days``; a file needed again later is fetched again.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import structlog
from dbos import DBOS

from edge_worker import services
from edge_worker.executors.base import TaskAttachment
from edge_worker.linear.uploads import UploadFailed, UploadTooLarge, fetch_upload
from edge_worker.orchestration.attachments import (
    FETCH_FAILED_TEXT,
    MAX_TEXT_CHARS,
    AttachmentRef,
    Reference,
    file_name,
    find_references,
    kind_of,
    media_type_of,
    skipped_notes,
    too_large,
)
from edge_worker.orchestration.wiring import installed_adapters

log = structlog.get_logger(__name__)

ATTACHMENTS_DIR = "attachments"


def attachments_dir(issue_id: str) -> Path:
    """Where the issue's fetched files live on this host."""
    settings = services.current().settings
    return settings.resolved_state_dir / ATTACHMENTS_DIR / issue_id


async def _authorization() -> str:
    return await installed_adapters().linear.authorization()


async def _fetch(reference: Reference, directory: Path, taken: set[str]) -> AttachmentRef:
    settings = services.current().settings.attachments
    temporary = directory / f".fetching-{hashlib.sha256(reference.url.encode()).hexdigest()[:16]}"
    label = reference.title or reference.url.rsplit("/", 1)[-1]
    try:
        size, declared = await fetch_upload(
            reference.url,
            temporary,
            authorization=await _authorization(),
            max_bytes=settings.max_bytes,
        )
    except UploadTooLarge as exc:
        name = file_name(reference, taken)
        note = too_large(name, exc.size, settings.max_bytes)
        log.info("attachment_too_large", name=name, size=exc.size, limit=settings.max_bytes)
        return AttachmentRef(
            name=name, url=reference.url, title=reference.title, kind="file", skipped=note
        )
    except UploadFailed as exc:
        name = file_name(reference, taken)
        log.warning("attachment_fetch_failed", name=name, reason=exc.reason)
        return AttachmentRef(
            name=name,
            url=reference.url,
            title=reference.title,
            kind="file",
            skipped=FETCH_FAILED_TEXT.format(name=label, reason=exc.reason),
        )
    name = file_name(reference, taken, declared)
    path = directory / name
    temporary.replace(path)
    media_type = media_type_of(declared, name)
    kind = kind_of(media_type, name)
    text = None
    if kind == "text":
        with path.open("rb") as source:
            text = source.read(MAX_TEXT_CHARS * 4).decode("utf-8", "replace")[:MAX_TEXT_CHARS]
    return AttachmentRef(
        name=name,
        url=reference.url,
        title=reference.title,
        kind=kind,
        media_type=media_type,
        size=size,
        path=str(path),
        text=text,
    )


@DBOS.step()
async def fetch_attachments_step(issue_id: str, issue: dict[str, Any]) -> dict[str, Any]:
    """Fetch the issue's uploads; ``{"attachments": [...], "notes": [...]}``."""
    settings = services.current().settings.attachments
    texts = [issue.get("description")] + [c.get("body") for c in issue.get("comments", [])]
    references, dropped = find_references(
        issue.get("attachments", []),
        texts,
        upload_hosts=settings.upload_hosts,
        max_files=settings.max_files,
    )
    directory = attachments_dir(issue_id)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    taken: set[str] = set()
    found: list[AttachmentRef] = []
    for reference in references:
        if reference.fetch:
            found.append(await _fetch(reference, directory, taken))
        else:
            found.append(
                AttachmentRef(
                    name=reference.title or reference.url,
                    url=reference.url,
                    title=reference.title,
                    kind="link",
                )
            )
    if found:
        log.info(
            "attachments_fetched",
            fetched=sum(1 for ref in found if ref.fetched),
            links=sum(1 for ref in found if ref.kind == "link"),
            skipped=sum(1 for ref in found if ref.skipped) + dropped,
        )
    return {
        "attachments": [ref.model_dump(mode="json") for ref in found],
        "notes": skipped_notes(found, dropped, settings.max_files),
    }


async def ensure_files(files: list[TaskAttachment]) -> list[TaskAttachment]:
    """``files`` that exist on this host, fetching again those that are missing."""
    settings = services.current().settings.attachments
    present = []
    for file in files:
        path = Path(file.path)
        if not path.is_file():
            if not file.url:
                continue
            try:
                await fetch_upload(
                    file.url,
                    path,
                    authorization=await _authorization(),
                    max_bytes=settings.max_bytes,
                )
            except (UploadFailed, UploadTooLarge) as exc:
                log.warning("attachment_refetch_failed", name=file.name, error=str(exc))
                continue
        present.append(file)
    return present


def sweep_attachments(root: Path, *, keep_days: float, now: float | None = None) -> list[Path]:
    """Remove the issue directories under ``root`` not modified for ``keep_days``."""
    if not root.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - keep_days * 86_400
    removed = []
    for directory in root.iterdir():
        try:
            if directory.is_dir() and directory.stat().st_mtime < cutoff:
                shutil.rmtree(directory)
                removed.append(directory)
        except OSError as exc:
            log.warning("attachment_sweep_failed", directory=str(directory), error=exc.strerror)
    return removed
