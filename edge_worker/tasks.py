"""Stopping a background task without losing the caller's own cancellation.

Contract: :func:`cancel_and_wait` cancels a task and waits until it has finished, so its
clean-up has run. The task's ``CancelledError`` is expected and ends quietly; the
caller's is not: when the caller is itself being cancelled (a stop, a shutdown, a
timeout), the ``CancelledError`` propagates. ``contextlib.suppress(CancelledError)``
around the await cannot tell the two apart, and swallowing the caller's cancel leaves it
running on after it was told to stop (the class of hang that ``asyncio.wait_for`` has on
Python 3.11). This module imports nothing of ``edge_worker``.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it to end.

    Returns once the task has ended cancelled or with a result. An exception the task
    raised propagates, as an ``await`` of it would. ``CancelledError`` propagates when
    the calling task is being cancelled, also when that cancel lands in the same loop
    turn as the task's end.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def wait_ended(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end without cancelling it; how it ended is not this caller's.

    Its result, its error and its own cancellation are all ignored. When the calling task
    is cancelled while it waits, ``CancelledError`` propagates and ``task`` goes on.
    """
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:  # the task's owner (whoever awaits its result) reports its error
        pass
