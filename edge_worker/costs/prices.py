"""Token prices per model, and pricing a run's token usage (sans-I/O).

Contract:
- :data:`DEFAULT_PRICES` holds published list prices (USD per million tokens: input, cached
  input, output, cache write) for the models the executors use; :func:`price_table` merges
  the configuration's ``prices`` over them, the configuration winning per model.
- Model names are matched case-insensitively, first exactly, then without a dated snapshot
  suffix (``claude-sonnet-4-5-20250929`` and ``gpt-5-2025-08-07`` price as their family).
  No looser matching: ``gpt-5-mini`` must never be priced as ``gpt-5``.
- :func:`price_usage` returns ``None`` for an unknown (or absent) model: the run is
  "unpriced", never a made-up ``0.0``.
- The usage priced here counts ``input_tokens`` without the cache reads:
  ``cached_input_tokens`` are priced at the cached rate on top;
  ``cache_write_input_tokens`` are the part of ``input_tokens`` written to the cache,
  priced at the cache-write rate instead of the input rate (a model whose price names no
  cache-write rate is then unpriced, and the log names it); ``output_tokens`` include the
  reasoning tokens, so ``reasoning_output_tokens`` cost nothing extra. An executor whose CLI
  counts cache reads inside ``input_tokens`` (Codex) converts with
  :func:`usage_without_cache_reads` first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

import structlog

from edge_worker.costs.money import MICRO, to_decimal
from edge_worker.executors.base import Usage
from edge_worker.settings import Price, Settings

log = structlog.get_logger(__name__)

TOKENS_PER_PRICE_UNIT = 1_000_000

DEFAULT_PRICES: Mapping[str, Price] = {
    # Anthropic list prices; cached input = prompt cache read, cache write = 5-minute
    # cache write (1.25 x input).
    "claude-opus-4-5": Price(input=5.0, cached_input=0.50, output=25.0, cache_write_input=6.25),
    "claude-opus-4-1": Price(input=15.0, cached_input=1.50, output=75.0, cache_write_input=18.75),
    "claude-opus-4": Price(input=15.0, cached_input=1.50, output=75.0, cache_write_input=18.75),
    "claude-sonnet-4-5": Price(input=3.0, cached_input=0.30, output=15.0, cache_write_input=3.75),
    "claude-sonnet-4": Price(input=3.0, cached_input=0.30, output=15.0, cache_write_input=3.75),
    "claude-3-7-sonnet": Price(input=3.0, cached_input=0.30, output=15.0, cache_write_input=3.75),
    "claude-haiku-4-5": Price(input=1.0, cached_input=0.10, output=5.0, cache_write_input=1.25),
    "claude-3-5-haiku": Price(input=0.80, cached_input=0.08, output=4.0, cache_write_input=1.0),
    # OpenAI list prices for the models Codex runs; OpenAI bills a cache write as input.
    "gpt-5": Price(input=1.25, cached_input=0.125, output=10.0, cache_write_input=1.25),
    "gpt-5-codex": Price(input=1.25, cached_input=0.125, output=10.0, cache_write_input=1.25),
    "gpt-5.1": Price(input=1.25, cached_input=0.125, output=10.0, cache_write_input=1.25),
    "gpt-5.1-codex": Price(input=1.25, cached_input=0.125, output=10.0, cache_write_input=1.25),
    "gpt-5-mini": Price(input=0.25, cached_input=0.025, output=2.0, cache_write_input=0.25),
    "gpt-5.1-codex-mini": Price(input=0.25, cached_input=0.025, output=2.0, cache_write_input=0.25),
    "gpt-5-nano": Price(input=0.05, cached_input=0.005, output=0.40, cache_write_input=0.05),
    "o4-mini": Price(input=1.10, cached_input=0.275, output=4.40, cache_write_input=1.10),
    "codex-mini-latest": Price(input=1.50, cached_input=0.375, output=6.0, cache_write_input=1.50),
    # Google list prices (prompts up to 200k tokens) for the models the Gemini CLI runs;
    # implicit caching has no write charge, so a cache write is billed as input.
    "gemini-3-pro-preview": Price(input=2.0, cached_input=0.20, output=12.0, cache_write_input=2.0),
    "gemini-2.5-pro": Price(input=1.25, cached_input=0.125, output=10.0, cache_write_input=1.25),
    "gemini-2.5-flash": Price(input=0.30, cached_input=0.03, output=2.50, cache_write_input=0.30),
    "gemini-2.5-flash-lite": Price(
        input=0.10, cached_input=0.01, output=0.40, cache_write_input=0.10
    ),
}

_SNAPSHOT_SUFFIX = re.compile(r"(?:-\d{8}|-\d{4}-\d{2}-\d{2}|@\d{8})$")


def normalise_model(model: str) -> str:
    """The lookup key for ``model``: stripped and lower-cased."""
    return model.strip().lower()


def price_table(configured: Mapping[str, Price] | None = None) -> dict[str, Price]:
    """:data:`DEFAULT_PRICES` with ``configured`` merged over them (configuration wins)."""
    table = {normalise_model(name): price for name, price in DEFAULT_PRICES.items()}
    for name, price in (configured or {}).items():
        table[normalise_model(name)] = price
    return table


def prices_from_settings(settings: Settings) -> dict[str, Price]:
    """The price table the daemon uses: defaults overridden by ``settings.prices``."""
    return price_table(settings.prices)


def find_price(prices: Mapping[str, Price], model: str | None) -> Price | None:
    """The price of ``model`` in ``prices`` (a :func:`price_table`), or ``None`` if unknown."""
    if not model:
        return None
    key = normalise_model(model)
    if key in prices:
        return prices[key]
    family = _SNAPSHOT_SUFFIX.sub("", key)
    return prices.get(family)


def price_usage_exact(
    prices: Mapping[str, Price], model: str | None, usage: Usage
) -> Decimal | None:
    """What ``usage`` on ``model`` cost in USD, exact to the micro-dollar; ``None`` if unknown."""
    price = find_price(prices, model)
    if price is None:
        return None
    writes = min(usage.cache_write_input_tokens, usage.input_tokens)
    if writes and price.cache_write_input is None:
        log.warning("prices.cache_write_unpriced", model=model, cache_write_input_tokens=writes)
        return None
    write_rate = to_decimal(price.cache_write_input or 0)
    total = (
        Decimal(usage.input_tokens - writes) * to_decimal(price.input)
        + Decimal(writes) * write_rate
        + Decimal(usage.cached_input_tokens) * to_decimal(price.cached_input)
        + Decimal(usage.output_tokens) * to_decimal(price.output)
    ) / TOKENS_PER_PRICE_UNIT
    return total.quantize(MICRO, rounding=ROUND_HALF_UP)


def price_usage(prices: Mapping[str, Price], model: str | None, usage: Usage) -> float | None:
    """What ``usage`` on ``model`` cost in USD; ``None`` ("unpriced") for an unknown model."""
    exact = price_usage_exact(prices, model, usage)
    return None if exact is None else float(exact)


def usage_without_cache_reads(usage: Usage) -> Usage:
    """``usage`` whose ``input_tokens`` include the cache reads, as priced here (without)."""
    return usage.model_copy(
        update={"input_tokens": max(usage.input_tokens - usage.cached_input_tokens, 0)}
    )
