"""Exact money: micro-dollar sums, cent display, totals that name their unpriced parts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edge_worker.costs.money import Total, format_usd, from_micros, plural, to_decimal, to_micros


def test_floats_are_read_through_their_shortest_representation() -> None:
    assert to_micros(0.1) == 100_000
    assert to_micros(0.000001) == 1
    assert to_micros("3.4213") == 3_421_300
    assert to_decimal(0.1) == Decimal("0.1")


def test_sub_micro_amounts_round_half_up() -> None:
    assert to_micros("0.0000005") == 1
    assert to_micros("0.00000049") == 0


def test_float_sums_that_drift_in_binary_are_exact_in_micros() -> None:
    total = Total.sum([0.1] * 10)
    assert total.usd == Decimal("1.000000")
    assert sum([0.1] * 10) != 1.0  # what a float accumulator would have said


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("3.415", "$3.42"),
        ("3.414999", "$3.41"),
        ("0.005", "$0.01"),
        ("0", "$0.00"),
        ("1234.5", "$1,234.50"),
        (2, "$2.00"),
    ],
)
def test_display_rounds_half_up_to_the_cent(amount: str | int, shown: str) -> None:
    assert format_usd(amount) == shown


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf"), "abc", True])
def test_bad_amounts_are_refused_with_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match=r"amount|negative"):
        to_micros(bad)  # type: ignore[arg-type]


def test_a_total_names_its_unpriced_parts() -> None:
    assert Total.sum([1.5, 1.92]).format() == "$3.42"
    assert Total.sum([1.5, None, 1.92, None]).format() == "$3.42 + 2 unpriced runs"
    assert Total.sum([1.5, None]).format() == "$1.50 + 1 unpriced run"
    assert Total.sum([None, None]).format() == "unpriced"
    assert Total.sum([None]).format(noun="call") == "unpriced"
    assert Total.sum([0.5, None]).format(noun="call") == "$0.50 + 1 unpriced call"


def test_a_priced_zero_is_not_unpriced() -> None:
    assert Total.of(0).format() == "$0.00"
    assert Total.of(0).is_complete
    assert not Total.of(None).is_complete
    assert Total().format() == "$0.00"


def test_totals_add_exactly_and_count_parts() -> None:
    left = Total.sum(["0.333333", None])
    right = Total.sum(["0.666667"])
    both = left + right
    assert both == Total(micros=1_000_000, priced=2, unpriced=1)
    assert both.parts == 3
    assert both.usd == Decimal("1.000000")
    assert left.add(None).unpriced == 2
    assert Total.sum([left, right, 0.5]).usd == Decimal("1.5")


def test_a_total_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        Total(micros=-1)


def test_json_carries_number_counts_and_text() -> None:
    assert Total.sum(["3.4213", None]).to_json() == {
        "usd": 3.4213,
        "priced": 1,
        "unpriced": 1,
        "uncertain": 0,
        "display": "$3.42 + 1 unpriced run",
    }


def test_a_total_with_an_uncertain_part_says_so() -> None:
    doubtful = Total(micros=2_000_000, priced=1, uncertain=1)
    assert (Total.of("1.00") + doubtful).format() == "$3.00 (uncertain)"
    assert (Total(unpriced=1, uncertain=1) + Total.of(None)).format() == "unpriced (uncertain)"
    assert (doubtful + Total.of(None)).to_json()["display"] == "$2.00 + 1 unpriced run (uncertain)"
    assert Total.of("1.00").format() == "$1.00"


def test_micros_round_trip() -> None:
    assert from_micros(3_421_300) == Decimal("3.421300")
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(3, "entry", "entries") == "3 entries"
