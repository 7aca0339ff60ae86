"""Files and images on an issue: which to fetch, what to call them, what to say (sans-I/O).

An issue carries files in two ways: Linear attachments (``Issue.attachments``: a title
and a URL, often a link to another system) and uploads linked from the description or a
comment (``![screenshot](https://uploads.linear.app/...)``). Only uploads are fetched:
they live on Linear's upload hosts and need the Linear token, which must never be sent
anywhere else. Other attachments stay links the planner is told about.

Contract:
- :func:`find_references` lists the distinct URLs worth handing on, in order (attachments
  first, then the description, then comments), each marked ``fetch`` when its host is one
  of ``upload_hosts`` and at most ``max_files`` of those.
- :func:`file_name` gives each fetched file a unique, safe name for the worktree.
- :func:`kind_of` classifies a media type / name as ``image`` (one the Anthropic API
  accepts), ``text`` or ``file``.
- :func:`too_large` is the note for a file over the size cap (``None`` when it fits).
- :class:`AttachmentRef` is what the workflow keeps and the planner and agents are given.
"""

from __future__ import annotations

import mimetypes
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

Kind = Literal["image", "text", "file", "link"]

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""The image media types the Anthropic Messages API accepts as image blocks."""
TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/x-yaml", "application/yaml"}
)
TEXT_SUFFIXES = frozenset(
    {".txt", ".md", ".log", ".csv", ".json", ".yaml", ".yml", ".xml", ".diff", ".patch"}
)
MAX_TEXT_CHARS = 20_000
"""How much of a text file the planner reads (the agents get the whole file)."""

TOO_LARGE_TEXT = (
    "Attachment {name} was not fetched: it is {size} and the limit is {limit} "
    "(setting EDGE_WORKER_ATTACHMENTS__MAX_BYTES)."
)
TOO_MANY_TEXT = (
    "{count} more uploads were not fetched: at most {limit} files are fetched per issue "
    "(setting EDGE_WORKER_ATTACHMENTS__MAX_FILES)."
)
FETCH_FAILED_TEXT = "Attachment {name} could not be fetched from Linear ({reason})."

# Markdown links and images, then bare URLs.
_MARKDOWN_URL = re.compile(r"!?\[([^\]]*)\]\((\S+?)(?:\s+\"[^\"]*\")?\)")
_BARE_URL = re.compile(r"https?://[^\s)>\]\"']+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class AttachmentRef(BaseModel):
    """One file or link of the issue, and what became of it."""

    name: str
    url: str
    title: str | None = None
    kind: Kind = "link"
    media_type: str | None = None
    size: int | None = None
    path: str | None = None
    """The fetched file on the daemon's host (``None`` when not fetched)."""
    text: str | None = None
    """A text file's content (up to :data:`MAX_TEXT_CHARS`), for the planner."""
    skipped: str | None = None
    """Why the file was not fetched, in words a user can act on."""

    @property
    def fetched(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class Reference:
    """A URL found on the issue: where it came from and whether to fetch it."""

    url: str
    title: str | None
    fetch: bool


def host_of(url: str) -> str:
    """The lower-cased host of ``url`` (empty when it has none)."""
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def is_upload(url: str, upload_hosts: Iterable[str]) -> bool:
    """True when ``url`` is on one of Linear's upload hosts (and so wants the token)."""
    parts = urllib.parse.urlsplit(url)
    hosts = {h.lower() for h in upload_hosts}
    host = (parts.hostname or "").lower()
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts.scheme in ("https", "http") and bool(host) and host in hosts


def find_references(
    attachments: Iterable[dict[str, Any]],
    texts: Iterable[str | None],
    *,
    upload_hosts: Sequence[str],
    max_files: int,
) -> tuple[list[Reference], int]:
    """The issue's references in order, and how many uploads were left out by ``max_files``.

    ``attachments`` are ``{"title", "url"}`` objects (Linear attachments); ``texts`` the
    description and comment bodies, whose upload URLs are included (other links in them
    are text the planner reads anyway).
    """
    seen: set[str] = set()
    found: list[Reference] = []
    uploads = dropped = 0

    def add(url: str, title: str | None, *, only_uploads: bool) -> None:
        nonlocal uploads, dropped
        url = url.strip().rstrip(".,;")
        if not url.startswith(("http://", "https://")) or url in seen:
            return
        fetch = is_upload(url, upload_hosts)
        if only_uploads and not fetch:
            return
        seen.add(url)
        if fetch:
            if uploads >= max_files:
                dropped += 1
                return
            uploads += 1
        found.append(Reference(url=url, title=title or None, fetch=fetch))

    for attachment in attachments:
        url = attachment.get("url")
        if isinstance(url, str):
            title = attachment.get("title")
            add(url, title if isinstance(title, str) else None, only_uploads=False)
    for text in texts:
        if not text:
            continue
        for match in _MARKDOWN_URL.finditer(text):
            add(match.group(2), match.group(1), only_uploads=True)
        for match in _BARE_URL.finditer(text):
            add(match.group(0), None, only_uploads=True)
    return found, dropped


def file_name(reference: Reference, taken: set[str], media_type: str | None = None) -> str:
    """A safe, unique file name for ``reference`` (``taken`` is updated)."""
    last = urllib.parse.unquote(urllib.parse.urlsplit(reference.url).path.rsplit("/", 1)[-1])
    base = reference.title if reference.title and "." in reference.title else last
    name = _UNSAFE_NAME.sub("-", base or "").strip("-.")[:80] or "attachment"
    if "." not in name and media_type:
        name += mimetypes.guess_extension(media_type.split(";")[0].strip()) or ""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate, counter = name, 1
    while candidate.lower() in taken:
        counter += 1
        candidate = f"{stem}-{counter}.{suffix}" if suffix else f"{name}-{counter}"
    taken.add(candidate.lower())
    return candidate


def kind_of(media_type: str | None, name: str) -> Kind:
    """``image`` for images the planner can see, ``text`` for readable text, else ``file``."""
    media = (media_type or "").split(";")[0].strip().lower()
    if not media or media == "application/octet-stream":
        media = mimetypes.guess_type(name)[0] or ""
    if media in IMAGE_TYPES:
        return "image"
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if media.startswith("text/") or media in TEXT_TYPES or suffix in TEXT_SUFFIXES:
        return "text"
    return "file"


def media_type_of(media_type: str | None, name: str) -> str:
    """The media type to declare for a file: the server's, else a guess from its name."""
    media = (media_type or "").split(";")[0].strip().lower()
    if media and media != "application/octet-stream":
        return media
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def human_size(size: int) -> str:
    """``1.5 MB`` style size."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def too_large(name: str, size: int, limit: int) -> str | None:
    """The note for a file of ``size`` bytes over ``limit``, or ``None`` when it fits."""
    if size <= limit:
        return None
    return TOO_LARGE_TEXT.format(name=name, size=human_size(size), limit=human_size(limit))


def skipped_notes(refs: Iterable[AttachmentRef], dropped: int, max_files: int) -> list[str]:
    """The report's notes on files that were not fetched."""
    notes = [ref.skipped for ref in refs if ref.skipped]
    if dropped:
        notes.append(TOO_MANY_TEXT.format(count=dropped, limit=max_files))
    return notes
