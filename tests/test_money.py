"""Money in integer cents: rounding half up, and the contract's rule 5."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtserver.core.money import SECONDS_PER_RATE_UNIT, Charge, charge, round_half_up

# No example database on disk, and no per-example deadline (no timing in tests).
PURE = settings(database=None, deadline=None)

# --- round_half_up --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (0, 1, 0),
        (0, 7, 0),
        (10, 5, 2),  # exact
        (4, 10, 0),  # 0.4
        (5, 10, 1),  # 0.5: half goes up
        (6, 10, 1),  # 0.6
        (14, 10, 1),  # 1.4
        (15, 10, 2),  # 1.5
        (25, 10, 3),  # 2.5: up, not to even (banker's would give 2)
        (1, 2, 1),  # 0.5
        (5, 2, 3),  # 2.5
        (7, 2, 4),  # 3.5
        (1, 3, 0),  # 0.333…
        (2, 3, 1),  # 0.666…
        (499, 1000, 0),
        (500, 1000, 1),
        (1499, 1000, 1),
        (1500, 1000, 2),
        (10**30 + 5, 10, 10**29 + 1),  # no float anywhere
    ],
)
def test_round_half_up(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up(numerator, denominator) == expected


@pytest.mark.parametrize(("numerator", "denominator"), [(-1, 2), (-10, 5), (1, 0), (1, -1), (0, 0)])
def test_round_half_up_refuses_bad_arguments(numerator: int, denominator: int) -> None:
    with pytest.raises(ValueError, match="non-negative numerator and a positive denominator"):
        round_half_up(numerator, denominator)


@PURE
@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**6))
def test_round_half_up_matches_exact_fractions(numerator: int, denominator: int) -> None:
    assert round_half_up(numerator, denominator) == math.floor(
        Fraction(numerator, denominator) + Fraction(1, 2)
    )


# --- charge, worked by hand -----------------------------------------------------------


def test_rate_unit_is_fifteen_minutes() -> None:
    assert SECONDS_PER_RATE_UNIT == 900


@pytest.mark.parametrize(
    ("rate", "seconds", "discount", "fee_pct", "charge_cents", "fee_cents", "earnings"),
    [
        # 1000¢ per 15 min for exactly 15 min: 1000; 20% of it is 200.
        (1000, 900, 0, 20, 1000, 200, 800),
        # Half of 15 min: 500; fee 100.
        (1000, 450, 0, 20, 500, 100, 400),
        # 10% off 500 is 450; 20% of 450 is 90.
        (1000, 450, 10, 20, 450, 90, 360),
        # One hour at 2500¢: 10000; fee 2000.
        (2500, 3600, 0, 20, 10000, 2000, 8000),
        # 2500 * 61 / 900 = 169.44…, less 15%: 2500*61*85/90000 = 144.027… -> 144.
        # Fee: 144 * 20% = 28.8 -> 29; expert 115.
        (2500, 61, 15, 20, 144, 29, 115),
        # 1¢ * 450 / 900 = 0.5 exactly -> 1 (half up). Fee 0.2 -> 0.
        (1, 450, 0, 20, 1, 0, 1),
        # 1¢ * 449 / 900 = 0.4988… -> 0.
        (1, 449, 0, 20, 0, 0, 0),
        # 3¢ * 150 / 900 = 0.5 -> 1.
        (3, 150, 0, 20, 1, 0, 1),
        # 1¢ for 15 min, 50% off: 0.5 -> 1. The discount is applied before the one rounding.
        (1, 900, 50, 20, 1, 0, 1),
        # 5¢, fee 10%: 0.5 -> 1 (half up); expert 4.
        (5, 900, 0, 10, 5, 1, 4),
        # 2¢, fee 25%: 0.5 -> 1; expert 1.
        (2, 900, 0, 25, 2, 1, 1),
        # 15¢, fee 10%: 1.5 -> 2; expert 13.
        (15, 900, 0, 10, 15, 2, 13),
        # 1999 * 1234 * 67 / 90000 = 165273322 / 90000 = 1836.37… -> 1836.
        # Fee 1836 * 20% = 367.2 -> 367; expert 1469.
        (1999, 1234, 33, 20, 1836, 367, 1469),
        # Rounding once at the end: 7¢ * 1 s = 0.00777… each second; 129 s = 1.003… -> 1,
        # 0.5 would be reached at 64.28… s.
        (7, 129, 0, 20, 1, 0, 1),
        (7, 64, 0, 20, 0, 0, 0),
        (7, 65, 0, 20, 1, 0, 1),
        # No platform fee: all to the expert; full fee: all to the platform.
        (1000, 900, 0, 0, 1000, 0, 1000),
        (1000, 900, 0, 100, 1000, 1000, 0),
        # Nothing billed, or free of charge.
        (1000, 0, 0, 20, 0, 0, 0),
        (0, 3600, 0, 20, 0, 0, 0),
        # 100% discount: free, whatever the time.
        (1000, 3600, 100, 20, 0, 0, 0),
        # 99% off an hour at 1000: 4000 * 1% = 40.
        (1000, 3600, 99, 20, 40, 8, 32),
    ],
)
def test_charge_examples(
    rate: int,
    seconds: int,
    discount: int,
    fee_pct: int,
    charge_cents: int,
    fee_cents: int,
    earnings: int,
) -> None:
    assert charge(rate, seconds, discount, fee_pct) == Charge(
        billable_seconds=seconds,
        discount_pct=discount,
        charge_cents=charge_cents,
        platform_fee_cents=fee_cents,
        expert_earnings_cents=earnings,
    )


def test_full_discount_is_free() -> None:
    c = charge(123_456, 86_400, 100, 20)
    assert c.charge_cents == 0
    assert c.platform_fee_cents == 0
    assert c.expert_earnings_cents == 0
    assert c.discount_pct == 100
    assert c.billable_seconds == 86_400


@pytest.mark.parametrize(
    ("rate", "seconds", "discount", "fee_pct", "message"),
    [
        (1000, 900, -1, 20, "discount_pct is 0 to 100"),
        (1000, 900, 101, 20, "discount_pct is 0 to 100"),
        (1000, 900, 0, -1, "platform_fee_pct is 0 to 100"),
        (1000, 900, 0, 101, "platform_fee_pct is 0 to 100"),
        (-1, 900, 0, 20, "rate and seconds must not be negative"),
        (1000, -1, 0, 20, "rate and seconds must not be negative"),
    ],
)
def test_charge_refuses_bad_arguments(
    rate: int, seconds: int, discount: int, fee_pct: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        charge(rate, seconds, discount, fee_pct)


def test_charge_is_frozen() -> None:
    c = charge(1000, 900, 0, 20)
    with pytest.raises(AttributeError):
        c.charge_cents = 1  # type: ignore[misc]


# --- charge, properties ---------------------------------------------------------------

RATES = st.integers(min_value=0, max_value=10_000_000)
SECONDS = st.integers(min_value=0, max_value=30 * 24 * 3600)
PERCENT = st.integers(min_value=0, max_value=100)


def exact_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


@PURE
@given(RATES, SECONDS, PERCENT, PERCENT)
def test_charge_is_fee_plus_earnings(rate: int, seconds: int, discount: int, fee: int) -> None:
    c = charge(rate, seconds, discount, fee)
    assert c.charge_cents == c.platform_fee_cents + c.expert_earnings_cents
    assert 0 <= c.platform_fee_cents <= c.charge_cents
    assert 0 <= c.expert_earnings_cents <= c.charge_cents


@PURE
@given(RATES, SECONDS, PERCENT, PERCENT)
def test_charge_matches_exact_rounding(rate: int, seconds: int, discount: int, fee: int) -> None:
    c = charge(rate, seconds, discount, fee)
    exact = Fraction(rate * seconds, 900) * Fraction(100 - discount, 100)
    cents = exact_half_up(exact)
    assert c.charge_cents == cents
    assert c.platform_fee_cents == exact_half_up(Fraction(cents * fee, 100))
    assert c.expert_earnings_cents == cents - exact_half_up(Fraction(cents * fee, 100))
    assert c.billable_seconds == seconds
    assert c.discount_pct == discount


@PURE
@given(RATES, SECONDS, PERCENT)
def test_more_discount_never_costs_more(rate: int, seconds: int, fee: int) -> None:
    charges = [charge(rate, seconds, d, fee).charge_cents for d in range(0, 101, 10)]
    assert charges == sorted(charges, reverse=True)
    assert charges[-1] == 0
