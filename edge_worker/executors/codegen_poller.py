"""One poller per organisation that follows every watched run with as few calls as it can.

Contract:
- ``async with poller.watch(run_id) as watch: update = await watch.next()``: every poll
  round (one ``interval`` apart, on the injected ``sleep``) that *starts after* the watch
  began delivers exactly one :class:`PollUpdate` to it, even when the round learned nothing
  (``run`` is None and ``error`` says why), so followers can enforce their own time limits.
- A round lists the organisation's runs (newest first, 100 a page) while pages keep paying
  for themselves, then fetches each run still missing with one ``GET``: 500 recent runs cost
  5 calls a round. A single watched run is fetched directly.
- :meth:`RunPoller.abandon` ends every watch of a run at once (``abandoned=True``).
- The background task starts with the first watch and ends when nobody watches; an
  unexpected error in a round is logged and the next round runs as usual.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from edge_worker.executors.base import ExecutorUnavailable
from edge_worker.executors.codegen_api import (
    MAX_PAGE_SIZE,
    AgentRun,
    CodegenClient,
    CodegenError,
    CodegenNotFound,
)
from edge_worker.executors.rate_limit import Sleep
from edge_worker.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PollUpdate:
    """What one round learned about one run."""

    run: AgentRun | None = None
    error: str | None = None
    gone: bool = False
    abandoned: bool = False


class Watch:
    """A follower's mailbox of poll updates."""

    def __init__(self, run_id: int, first_round: int) -> None:
        self.run_id = run_id
        self.first_round = first_round
        self._updates: asyncio.Queue[PollUpdate] = asyncio.Queue()

    async def next(self) -> PollUpdate:
        """Wait for the next round's update about this run."""
        return await self._updates.get()

    def _deliver(self, update: PollUpdate) -> None:
        self._updates.put_nowait(update)


class RunPoller:
    """Batches the polling of every followed run of one organisation."""

    def __init__(
        self,
        client: CodegenClient,
        *,
        interval: float,
        sleep: Sleep = asyncio.sleep,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        self._client = client
        self._interval = interval
        self._sleep = sleep
        self._page_size = page_size
        self._watches: dict[int, set[Watch]] = {}
        self._task: asyncio.Task[None] | None = None
        self._rounds = 0

    @property
    def watched(self) -> frozenset[int]:
        """Run ids followed now."""
        return frozenset(self._watches)

    @asynccontextmanager
    async def watch(self, run_id: int) -> AsyncIterator[Watch]:
        """Follow ``run_id`` for the duration of the block."""
        # Only rounds that start after this point: a round already in flight may carry the
        # state from before a resume that was just posted.
        watch = Watch(run_id, first_round=self._rounds + 1)
        self._watches.setdefault(run_id, set()).add(watch)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="codegen-poller")
        try:
            yield watch
        finally:
            watchers = self._watches.get(run_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[run_id]

    def abandon(self, run_id: int) -> None:
        """Stop following ``run_id``: every watch of it receives ``abandoned=True``."""
        for watch in self._watches.pop(run_id, set()):
            watch._deliver(PollUpdate(abandoned=True))

    async def aclose(self) -> None:
        """Stop the background task (watchers receive nothing more)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            await cancel_and_wait(task)

    async def _loop(self) -> None:
        while self._watches:
            await self._sleep(self._interval)
            wanted = set(self._watches)
            if not wanted:
                break
            self._rounds += 1
            this_round = self._rounds
            try:
                updates = await self.sweep(wanted)
            except (CodegenError, ExecutorUnavailable) as exc:
                log.warning("codegen.poll_failed", runs=len(wanted), error=str(exc))
                updates = {run_id: PollUpdate(error=str(exc)) for run_id in wanted}
            except Exception as exc:  # a bug must not leave every follower waiting forever
                log.exception("codegen.poll_crashed", runs=len(wanted))
                updates = {run_id: PollUpdate(error=f"poll failed: {exc!r}") for run_id in wanted}
            for run_id, watchers in list(self._watches.items()):
                update = updates.get(run_id, PollUpdate(error="not polled this round"))
                for watch in list(watchers):
                    if watch.first_round <= this_round:
                        watch._deliver(update)

    async def sweep(self, wanted: set[int]) -> dict[int, PollUpdate]:
        """Fetch the current state of ``wanted`` runs with as few calls as practical."""
        found: dict[int, AgentRun] = {}
        if len(wanted) > 1:
            found = await self._list_until_found(wanted)
        updates = {run_id: PollUpdate(run=run) for run_id, run in found.items()}
        for run_id in sorted(wanted - found.keys()):
            try:
                updates[run_id] = PollUpdate(run=await self._client.get_run(run_id))
            except CodegenNotFound:
                updates[run_id] = PollUpdate(error="Codegen run not found", gone=True)
            except CodegenError as exc:
                updates[run_id] = PollUpdate(error=str(exc))
        return updates

    async def _list_until_found(self, wanted: set[int]) -> dict[int, AgentRun]:
        found: dict[int, AgentRun] = {}
        pages_expected = math.ceil(len(wanted) / self._page_size)
        skip = pages = 0
        while len(found) < len(wanted):
            page = await self._client.list_runs(skip=skip, limit=self._page_size)
            pages += 1
            hits = 0
            for run in page.items:
                if run.id in wanted and run.id not in found:
                    found[run.id] = run
                    hits += 1
            skip += len(page.items)
            if not page.items or skip >= page.total:
                break
            # Past the pages our runs would fill, another page is worth its one call only if
            # the last one found at least two runs; a lone straggler is cheaper by GET.
            missing = len(wanted) - len(found)
            if missing < 2 or (pages >= pages_expected and hits < 2):
                break
        return found
