"""Fetch a file uploaded to Linear (``uploads.linear.app``) with the Linear token.

Contract:
- :func:`fetch_upload` GETs ``url`` with ``Authorization`` and streams the body to
  ``dest``, never holding more than one chunk in memory. A body over ``max_bytes`` (by its
  ``Content-Length`` or while streaming) raises :class:`UploadTooLarge` and leaves no
  file; any other failure (a non-200 answer, the network) raises :class:`UploadFailed`
  with a short reason fit for a note. Redirects are followed; httpx drops the
  ``Authorization`` header when a redirect leaves the origin, so the token goes nowhere
  else. The caller decides which URLs may be fetched (:func:`...attachments.is_upload`).
- Returns the number of bytes written and the media type the server declared.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

CHUNK_BYTES = 64 * 1024


class UploadTooLarge(Exception):
    """The file is over the cap; ``size`` is its size, or at least that much."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


class UploadFailed(Exception):
    """The file could not be fetched; ``reason`` is short and fit for a note."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def fetch_upload(
    url: str,
    dest: Path,
    *,
    authorization: str,
    max_bytes: int,
    timeout_seconds: float = 60.0,
    http: httpx.AsyncClient | None = None,
) -> tuple[int, str | None]:
    """Download ``url`` to ``dest``; ``(bytes written, declared media type)``."""
    client = http or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        async with client.stream(
            "GET", url, headers={"Authorization": authorization}, follow_redirects=True
        ) as response:
            if response.status_code != 200:
                raise UploadFailed(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise UploadTooLarge(int(declared))
            written = 0
            dest.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as out:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    written += len(chunk)
                    if written > max_bytes:
                        raise UploadTooLarge(written)
                    out.write(chunk)
            partial.replace(dest)
            return written, response.headers.get("content-type")
    except httpx.TimeoutException:
        raise UploadFailed("Linear did not answer in time") from None
    except httpx.HTTPError:
        raise UploadFailed("Linear could not be reached") from None
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        if http is None:
            await client.aclose()
