"""Token prices: published defaults, configuration winning, unknown models unpriced."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from edge_worker.costs.prices import (
    DEFAULT_PRICES,
    find_price,
    price_table,
    price_usage,
    price_usage_exact,
    prices_from_settings,
    usage_without_cache_reads,
)
from edge_worker.executors.base import Usage
from edge_worker.settings import Price, load_settings

MILLION = 1_000_000


@pytest.mark.parametrize(
    "model",
    [
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "gpt-5",
        "gpt-5-codex",
        "gpt-5-mini",
    ],
)
def test_the_executors_models_have_a_default_price(model: str) -> None:
    price = DEFAULT_PRICES[model]
    assert price.input > 0 and price.output > price.input
    assert 0 < price.cached_input < price.input


def test_each_token_kind_is_priced_at_its_own_rate() -> None:
    prices = price_table()
    million_each = Usage(input_tokens=MILLION, cached_input_tokens=MILLION, output_tokens=MILLION)
    assert price_usage_exact(prices, "claude-sonnet-4-5", million_each) == Decimal("18.3")
    assert price_usage(prices, "claude-opus-4-1", Usage(output_tokens=MILLION)) == 75.0
    assert price_usage(prices, "gpt-5-mini", Usage(cached_input_tokens=MILLION)) == 0.025


def test_small_counts_are_exact_to_the_micro_rounding_half_up() -> None:
    usage = Usage(input_tokens=1234, output_tokens=5678)
    # 1234 * 1.25 / 1e6 + 5678 * 10 / 1e6 = 0.0583225 -> 0.058323
    assert price_usage_exact(price_table(), "gpt-5", usage) == Decimal("0.058323")


def test_unknown_or_missing_model_is_unpriced_not_free() -> None:
    prices = price_table()
    usage = Usage(input_tokens=10, output_tokens=10)
    assert price_usage(prices, "some-new-model", usage) is None
    assert price_usage(prices, None, usage) is None
    assert price_usage(prices, "", usage) is None


def test_dated_snapshots_price_as_their_family_but_no_looser() -> None:
    prices = price_table()
    assert find_price(prices, "claude-sonnet-4-5-20250929") == DEFAULT_PRICES["claude-sonnet-4-5"]
    assert find_price(prices, "gpt-5-2025-08-07") == DEFAULT_PRICES["gpt-5"]
    assert find_price(prices, "Claude-Haiku-4-5") == DEFAULT_PRICES["claude-haiku-4-5"]
    assert find_price(prices, "gpt-5-mini") == DEFAULT_PRICES["gpt-5-mini"]
    assert find_price(prices, "gpt-5-turbo-extra") is None


def test_configured_prices_win_over_defaults_and_add_models() -> None:
    configured = {
        "GPT-5": Price(input=2.0, cached_input=0.2, output=20.0),
        "local-llama": Price(input=0.0, output=0.0),
    }
    prices = price_table(configured)
    assert price_usage(prices, "gpt-5", Usage(output_tokens=MILLION)) == 20.0
    assert price_usage(prices, "local-llama", Usage(output_tokens=MILLION)) == 0.0
    assert price_usage(prices, "gpt-5-mini", Usage(output_tokens=MILLION)) == 2.0


def test_prices_come_from_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "edge-worker.toml"
    config.write_text(
        '[prices."claude-sonnet-4-5"]\ninput = 4.0\ncached_input = 0.4\noutput = 16.0\n'
    )
    monkeypatch.setenv("EDGE_WORKER_CONFIG", str(config))
    prices = prices_from_settings(load_settings())
    assert price_usage(prices, "claude-sonnet-4-5", Usage(input_tokens=MILLION)) == 4.0
    assert price_usage(prices, "gpt-5", Usage(input_tokens=MILLION)) == 1.25


def test_cache_writes_are_priced_at_the_models_cache_write_rate() -> None:
    # 700 fresh input (of which 100 written to the cache), 200 cache reads, 50 output.
    usage = Usage(
        input_tokens=700,
        cached_input_tokens=200,
        cache_write_input_tokens=100,
        output_tokens=50,
        reasoning_output_tokens=20,
    )
    # sonnet: 600 x 3 + 100 x 3.75 + 200 x 0.30 + 50 x 15 = 2985 per million
    assert price_usage_exact(price_table(), "claude-sonnet-4-5", usage) == Decimal("0.002985")


def test_reasoning_tokens_are_output_already_and_cost_nothing_more() -> None:
    plain = Usage(input_tokens=100, output_tokens=50)
    reasoning = plain.model_copy(update={"reasoning_output_tokens": 30})
    prices = price_table()
    assert price_usage_exact(prices, "gpt-5", reasoning) == price_usage_exact(
        prices, "gpt-5", plain
    )


def test_cache_writes_without_a_configured_rate_leave_the_run_unpriced() -> None:
    prices = price_table({"local-llama": Price(input=1.0, output=2.0)})
    assert price_usage(prices, "local-llama", Usage(input_tokens=10, output_tokens=10)) == 0.00003
    writing = Usage(input_tokens=10, cache_write_input_tokens=5, output_tokens=10)
    assert price_usage(prices, "local-llama", writing) is None


def test_cache_reads_come_out_of_input_for_clis_that_count_them_inside() -> None:
    codex = Usage(input_tokens=1000, cached_input_tokens=200, output_tokens=50)
    assert usage_without_cache_reads(codex) == Usage(
        input_tokens=800, cached_input_tokens=200, output_tokens=50
    )
