"""Stopping the outbox dispatcher ends it whenever the stop lands, even as a wake-up fires.

CI once hung a daemon's shutdown for five minutes: the intake's commit woke the
dispatcher in the same loop turn as the lifespan cancelled it, and ``asyncio.wait_for``
(Python 3.11) returned the wake-up instead of raising the cancellation, so the loop went
on and ``stop()`` waited for it forever. The stop is tried at every turn around a wake-up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_worker.orchestration.dispatch import Dispatcher
from edge_worker.storage.db import create_engine_for, create_tables


@pytest.mark.parametrize("turns_after_wake", range(8))
async def test_stop_ends_the_dispatcher_when_it_lands_with_a_wake_up(
    tmp_path: Path, turns_after_wake: int
) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'state.db'}")
    create_tables(engine)
    dispatcher = Dispatcher(engine, poll_seconds=60.0)
    dispatcher.start()
    for _ in range(3):  # let the loop reach its wait for a wake-up
        await asyncio.sleep(0)
    dispatcher.wake.set()
    for _ in range(turns_after_wake):
        await asyncio.sleep(0)
    stopping = asyncio.ensure_future(dispatcher.stop())
    # generous: a working stop takes a loop turn or one pass over an empty outbox
    done, _ = await asyncio.wait([stopping], timeout=30)
    engine.dispose()
    assert done, "the dispatcher swallowed its cancellation and kept running"
