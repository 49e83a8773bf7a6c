"""Money in integer cents. Pure functions.

Rounding is half up to the cent, done in integers so that no float ever
touches money: ``round_half_up(n, d)`` is ``floor(n / d + 1/2)`` for n, d >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_PER_RATE_UNIT = 900  # rates are per 15 minutes


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for non-negative integers."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one session costs and who gets what."""

    billable_seconds: int
    discount_pct: int
    charge_cents: int
    platform_fee_cents: int
    expert_earnings_cents: int


def charge(
    rate_cents_per_15min: int, billable_seconds: int, discount_pct: int, platform_fee_pct: int
) -> Charge:
    """The contract's rule 5.

    ``charge = rate * seconds / 900 * (100 - discount) / 100``, rounded half up
    once at the end; the platform keeps ``platform_fee_pct`` of the charge,
    rounded half up, and the expert earns the rest.
    """
    if not 0 <= discount_pct <= 100:
        raise ValueError("discount_pct is 0 to 100")
    if not 0 <= platform_fee_pct <= 100:
        raise ValueError("platform_fee_pct is 0 to 100")
    if rate_cents_per_15min < 0 or billable_seconds < 0:
        raise ValueError("rate and seconds must not be negative")
    cents = round_half_up(
        rate_cents_per_15min * billable_seconds * (100 - discount_pct),
        SECONDS_PER_RATE_UNIT * 100,
    )
    fee = round_half_up(cents * platform_fee_pct, 100)
    return Charge(billable_seconds, discount_pct, cents, fee, cents - fee)
