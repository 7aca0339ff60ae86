"""The delta rule: a run's own usage from the session totals a CLI reports."""

from __future__ import annotations

from edge_worker.executors.base import Usage
from edge_worker.executors.session_usage import (
    SESSION_USAGE_BEFORE,
    UNKNOWN_BEFORE,
    before_from_extra,
    before_to_extra,
    total_after,
    usage_since,
)

FIRST = Usage(
    input_tokens=2000,
    cached_input_tokens=400,
    cache_write_input_tokens=100,
    output_tokens=100,
    reasoning_output_tokens=40,
)
AFTER_RESUME = Usage(
    input_tokens=3000,
    cached_input_tokens=600,
    cache_write_input_tokens=150,
    output_tokens=150,
    reasoning_output_tokens=60,
)


def test_a_first_run_used_what_it_reported() -> None:
    own = usage_since(FIRST, None)
    assert own.usage == FIRST and not own.uncertain


def test_a_resumed_run_used_the_difference_kind_by_kind() -> None:
    own = usage_since(AFTER_RESUME, FIRST)
    assert own.usage == Usage(
        input_tokens=1000,
        cached_input_tokens=200,
        cache_write_input_tokens=50,
        output_tokens=50,
        reasoning_output_tokens=20,
    )
    assert not own.uncertain


def test_a_lower_total_is_kept_as_reported_and_uncertain() -> None:
    lower = AFTER_RESUME.model_copy(update={"cached_input_tokens": 300})
    own = usage_since(lower, AFTER_RESUME)
    assert own.usage == lower and own.uncertain


def test_an_unknown_total_before_is_uncertain() -> None:
    own = usage_since(AFTER_RESUME, UNKNOWN_BEFORE)
    assert own.usage == AFTER_RESUME and own.uncertain


def test_the_total_before_round_trips_through_a_handles_extra() -> None:
    assert before_to_extra(None) == {}
    assert before_from_extra({}) is None
    assert before_from_extra(before_to_extra(FIRST)) == FIRST
    assert before_from_extra(before_to_extra(UNKNOWN_BEFORE)) == UNKNOWN_BEFORE
    assert before_from_extra({SESSION_USAGE_BEFORE: {"input_tokens": "many"}}) == UNKNOWN_BEFORE


def test_a_run_that_reported_nothing_leaves_the_last_known_total() -> None:
    assert total_after(None, FIRST) == FIRST
    assert total_after(AFTER_RESUME, FIRST) == AFTER_RESUME
    assert total_after(None, None) is None
