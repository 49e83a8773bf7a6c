"""Rules of scheduled sessions, pure: overlaps, reminders, the start window, no-shows.

Times are timezone-aware UTC datetimes; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rtserver.core.money import round_half_up


def overlaps(a: datetime, b: datetime, length: float) -> bool:
    """Two sessions of ``length`` seconds starting at ``a`` and ``b`` overlap."""
    return abs((a - b).total_seconds()) < length


def free_times(
    proposed: Iterable[datetime], booked: Iterable[datetime], length: float, now: datetime
) -> list[datetime]:
    """The proposed times still ahead that overlap none of the booked sessions."""
    taken = list(booked)
    return [t for t in proposed if t > now and not any(overlaps(t, b, length) for b in taken)]


@dataclass(frozen=True, slots=True)
class Reminder:
    """One reminder: how long before the start, and when it is due."""

    seconds_before: float
    due: datetime

    @property
    def minutes_before(self) -> float:
        """The contract's ``minutes_before``: fractional under a minute."""
        m = self.seconds_before / 60
        return int(m) if m == int(m) else round(m, 3)


def reminders(starts_at: datetime, offsets: Iterable[float], now: datetime) -> list[Reminder]:
    """The reminders still ahead for a session booked now (past ones are skipped)."""
    out = [Reminder(o, starts_at - timedelta(seconds=o)) for o in offsets]
    return [r for r in out if r.due > now]


def may_join(now: datetime, starts_at: datetime, early_start: float) -> bool:
    """A scheduled session opens ``early_start`` seconds before its time."""
    return now >= starts_at - timedelta(seconds=early_start)


@dataclass(frozen=True, slots=True)
class Fee:
    """A cancellation fee: who pays, and where it goes."""

    charged_user_id: str | None
    fee_cents: int
    # The other side's compensation and the platform's cut (they add up to the fee).
    compensated_user_id: str | None
    compensation_cents: int
    platform_cents: int


NO_FEE = Fee(None, 0, None, 0, 0)


def split_fee(charged: str, other: str, fee_cents: int, platform_fee_pct: int) -> Fee:
    """The side at fault pays the fee; the other side gets it, less the platform's percent."""
    cut = round_half_up(fee_cents * platform_fee_pct, 100)
    return Fee(charged, fee_cents, other, fee_cents - cut, cut)


def no_show_fee(
    customer_id: str,
    expert_id: str,
    customer_joined: bool,
    expert_joined: bool,
    fee_cents: int,
    platform_fee_pct: int,
) -> Fee:
    """Who pays when the session is cancelled for a no-show.

    The side that did not join pays; when neither joined, nobody can be
    said to have kept the appointment, so nobody pays.
    """
    if customer_joined == expert_joined:
        return NO_FEE
    charged, other = (expert_id, customer_id) if customer_joined else (customer_id, expert_id)
    return split_fee(charged, other, fee_cents, platform_fee_pct)


def cancel_fee(
    canceller: str,
    other: str,
    now: datetime,
    starts_at: datetime,
    late_window: float,
    fee_cents: int,
    platform_fee_pct: int,
) -> Fee:
    """A cancellation before the start is free unless it comes within the late window."""
    if now < starts_at - timedelta(seconds=late_window):
        return NO_FEE
    return split_fee(canceller, other, fee_cents, platform_fee_pct)
