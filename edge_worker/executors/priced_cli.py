"""What the Codex and Gemini executors share: a local CLI that reports tokens, not money.

Contract: :class:`PricedCliExecutor` is a
:class:`~edge_worker.executors.local_cli.LocalCliExecutor` built with a ``pricer``
(``pricer(model, usage)`` -> USD, or None when the model has no price); :meth:`price`
prices a run's tokens with the cache reads taken out of ``input_tokens`` (the pricer's
convention, :mod:`edge_worker.costs.prices`). None means unpriced, never $0. Neither CLI
has a system-prompt option, so a first run's prompt starts with the role prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from edge_worker.costs.prices import usage_without_cache_reads
from edge_worker.executors.base import Usage
from edge_worker.executors.local_cli import LocalCliExecutor, SettingsT
from edge_worker.executors.worktrees import WorktreeManager

Pricer = Callable[[str | None, Usage], float | None]
"""``pricer(model, usage)`` -> USD, or None when the model has no price (``usage`` without
the cache reads in ``input_tokens``, as :mod:`edge_worker.costs.prices` prices it)."""


class PricedCliExecutor(LocalCliExecutor[SettingsT]):
    """A local CLI whose runs are priced from the tokens it reports."""

    role_in_prompt: ClassVar[bool] = True

    def __init__(
        self,
        settings: SettingsT,
        worktrees: WorktreeManager,
        *,
        pricer: Pricer,
        verification_timeout_seconds: float = 600.0,
    ) -> None:
        super().__init__(
            settings, worktrees, verification_timeout_seconds=verification_timeout_seconds
        )
        self.pricer = pricer

    def price(self, model: str | None, usage: Usage) -> float | None:
        """``usage`` of ``model`` in USD (cache reads out of ``input_tokens``), or None."""
        return self.pricer(model, usage_without_cache_reads(usage))
