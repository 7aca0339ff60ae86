"""``cancel_and_wait`` and ``wait_ended`` never swallow the caller's own cancel.

Each case drives the event loop deterministically: the caller's cancel is placed with a
done callback or an event, never with a sleep.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
from pathlib import Path

import pytest

from edge_worker.tasks import cancel_and_wait, wait_ended

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "edge_worker"


async def _forever(cleaned: list[str]) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        cleaned.append("child")


async def test_it_cancels_the_task_waits_for_its_clean_up_and_returns() -> None:
    cleaned: list[str] = []
    child = asyncio.create_task(_forever(cleaned))
    await asyncio.sleep(0)  # let the child reach its wait

    await cancel_and_wait(child)

    assert child.cancelled()
    assert cleaned == ["child"]


async def test_a_task_that_already_finished_is_left_as_it_was() -> None:
    child = asyncio.create_task(asyncio.sleep(0, result="done"))
    await child

    await cancel_and_wait(child)

    assert child.result() == "done"


async def test_the_tasks_own_error_propagates() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("clean-up failed") from None

    child = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="clean-up failed"):
        await cancel_and_wait(child)


async def test_a_cancel_of_the_caller_during_the_tasks_clean_up_propagates() -> None:
    release = asyncio.Event()
    cleaned: list[str] = []

    async def slow_clean_up() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()
            cleaned.append("child")
            raise

    child = asyncio.create_task(slow_clean_up())
    await asyncio.sleep(0)

    async def caller() -> str:
        await cancel_and_wait(child)
        return "carried on after being cancelled"

    outer = asyncio.create_task(caller())
    while not child.cancelling():  # the caller has cancelled the child and waits on it
        await asyncio.sleep(0)
    outer.cancel()
    release.set()

    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled()
    assert cleaned == ["child"], "the child's clean-up ran before the caller's cancel"


async def test_a_cancel_landing_in_the_turn_the_task_ends_propagates() -> None:
    """The ``asyncio.wait_for`` race: the task has ended and the caller's wake-up is
    queued when the caller is cancelled. ``suppress(CancelledError)`` loses this cancel."""

    async def ends_quietly_on_cancel() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # what a careless task does
            await asyncio.Event().wait()
        return "ended"

    child = asyncio.create_task(ends_quietly_on_cancel())
    await asyncio.sleep(0)
    outer: asyncio.Task[str]

    async def caller() -> str:
        await cancel_and_wait(child)
        return "carried on after being cancelled"

    # Registered before the caller awaits the child, so it runs first once the child
    # ends: the caller's wake-up is already queued and its cancel lands in that turn.
    child.add_done_callback(lambda _: outer.cancel())
    outer = asyncio.create_task(caller())

    with pytest.raises(asyncio.CancelledError):
        await outer
    assert child.result() == "ended"
    assert outer.cancelled()


async def test_wait_ended_ignores_how_the_task_ended() -> None:
    async def fails() -> None:
        raise RuntimeError("the owner reports this")

    failed = asyncio.create_task(fails())
    cancelled = asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    cancelled.cancel()

    await wait_ended(failed)
    await wait_ended(cancelled)

    assert isinstance(failed.exception(), RuntimeError)
    assert cancelled.cancelled()


async def test_wait_ended_lets_the_callers_cancel_through_and_the_task_go_on() -> None:
    release = asyncio.Event()

    async def supervised() -> str:
        await release.wait()
        return "finished"

    child = asyncio.create_task(supervised())

    async def caller() -> str:
        await wait_ended(child)
        return "carried on after being cancelled"

    outer = asyncio.create_task(caller())
    await asyncio.sleep(0)  # the caller is waiting
    outer.cancel()

    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not child.done()
    release.set()
    assert await child == "finished"


def _swallows_cancel(node: ast.AST) -> bool:
    """A ``with suppress(..., CancelledError, ...)`` statement."""
    if not isinstance(node, ast.With | ast.AsyncWith):
        return False
    for item in node.items:
        call = item.context_expr
        if (
            isinstance(call, ast.Call)
            and ast.unparse(call.func).endswith("suppress")
            and any(ast.unparse(arg).endswith("CancelledError") for arg in call.args)
        ):
            return True
    return False


def test_the_daemon_never_suppresses_cancelled_error() -> None:
    """Awaiting a cancelled task goes through :mod:`edge_worker.tasks` instead."""
    offenders = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if _swallows_cancel(node)
    ]
    assert offenders == []


def test_the_scan_finds_a_suppressed_cancel() -> None:
    found = ast.parse("with contextlib.suppress(KeyError, asyncio.CancelledError):\n    pass\n")
    assert _swallows_cancel(found.body[0])
