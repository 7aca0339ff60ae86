"""Exact money arithmetic for cost accounting (sans-I/O).

Contract:
- Amounts are held as integer micro-dollars (1 USD = 1,000,000 micros): sums are exact and
  the same on every database. Floats from executors (Claude Code's ``total_cost_usd``) are
  read through their shortest decimal representation, so ``0.1`` is 100,000 micros, not
  99,999.
- Rounding to the cent happens only for display (half up): ``format_usd(3.415) == "$3.42"``.
- A :class:`Total` carries the priced USD *and* how many parts were unpriced, so a total
  with unpriced parts never pretends to be complete: ``"$3.42 + 2 unpriced runs"``; when
  nothing was priced it reads ``"unpriced"``, never a made-up ``"$0.00"``. Parts whose
  figure is uncertain (a CLI's session totals that did not add up) are counted too, and the
  total then reads ``"$3.42 (uncertain)"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")

UNPRICED = "unpriced"
"""What a total with no priced part at all reads as."""

UNCERTAIN_SUFFIX = " (uncertain)"
"""Added to a total with a part whose figure is uncertain."""

Amount = Decimal | float | int | str
"""Anything :func:`to_decimal` accepts as a USD amount."""


def to_decimal(value: Amount) -> Decimal:
    """``value`` in USD as an exact :class:`Decimal` (floats via their shortest repr).

    Raises ``ValueError`` for NaN, infinities, negative amounts and unparsable strings.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a USD amount: {value!r}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a USD amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite USD amount: {value!r}")
    if amount < 0:
        raise ValueError(f"a cost cannot be negative: {value!r}")
    return amount


def to_micros(value: Amount) -> int:
    """``value`` in USD as integer micro-dollars, rounded half up to the micro."""
    return int((to_decimal(value) * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    """Integer micro-dollars as an exact USD :class:`Decimal` (six decimal places)."""
    return (Decimal(micros) / MICROS_PER_USD).quantize(MICRO)


def format_usd(value: Amount) -> str:
    """``value`` rounded half up to the cent, with thousands separators: ``"$1,234.57"``."""
    cents = to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    return f"${cents:,.2f}"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``"1 run"``, ``"2 runs"`` (``plural_noun`` for irregular ones: entry, entries)."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_noun or noun + 's'}"


@dataclass(frozen=True, slots=True)
class Total:
    """A sum of costs: exact priced micro-dollars plus the count of parts with no price.

    ``priced`` counts the parts that had a price (possibly zero); ``unpriced`` those that
    had none; ``uncertain`` those (of either) whose figure is the executor's report that it
    could not confirm. ``Total()`` is the empty sum.
    """

    micros: int = 0
    priced: int = 0
    unpriced: int = 0
    uncertain: int = 0

    def __post_init__(self) -> None:
        if self.micros < 0 or self.priced < 0 or self.unpriced < 0 or self.uncertain < 0:
            raise ValueError(f"a total cannot be negative: {self!r}")

    @classmethod
    def of(cls, usd: Amount | None) -> Total:
        """The total of one part: priced at ``usd``, or unpriced when ``usd`` is ``None``."""
        if usd is None:
            return cls(unpriced=1)
        return cls(micros=to_micros(usd), priced=1)

    @classmethod
    def sum(cls, parts: Iterable[Total | Amount | None]) -> Total:
        """The total of ``parts`` (totals, amounts, or ``None`` for an unpriced part)."""
        total = cls()
        for part in parts:
            total = total + (part if isinstance(part, Total) else cls.of(part))
        return total

    def __add__(self, other: Total) -> Total:
        if not isinstance(other, Total):
            return NotImplemented
        return Total(
            micros=self.micros + other.micros,
            priced=self.priced + other.priced,
            unpriced=self.unpriced + other.unpriced,
            uncertain=self.uncertain + other.uncertain,
        )

    def add(self, usd: Amount | None) -> Total:
        """This total plus one part (``None`` = unpriced)."""
        return self + Total.of(usd)

    @property
    def usd(self) -> Decimal:
        """The priced part in USD, exact to the micro (unpriced parts count as nothing)."""
        return from_micros(self.micros)

    @property
    def parts(self) -> int:
        """How many parts were summed."""
        return self.priced + self.unpriced

    @property
    def is_complete(self) -> bool:
        """True when every part had a price."""
        return self.unpriced == 0

    def format(self, noun: str = "run") -> str:
        """``"$3.42"``, ``"$3.42 + 2 unpriced runs"``, or ``"unpriced"`` (nothing priced),
        followed by ``" (uncertain)"`` when a part's figure is uncertain.

        The empty total reads ``"$0.00"``: nothing was spent, which is a true statement.
        """
        suffix = UNCERTAIN_SUFFIX if self.uncertain else ""
        if self.unpriced and not self.priced:
            return UNPRICED + suffix
        shown = format_usd(self.usd)
        if self.unpriced:
            return f"{shown} + {plural(self.unpriced, 'unpriced ' + noun)}{suffix}"
        return shown + suffix

    def __str__(self) -> str:
        return self.format()

    def to_json(self) -> dict[str, object]:
        """Plain data for scripts: USD as a number, the counts, and the display text."""
        return {
            "usd": float(self.usd),
            "priced": self.priced,
            "unpriced": self.unpriced,
            "uncertain": self.uncertain,
            "display": self.format(),
        }
