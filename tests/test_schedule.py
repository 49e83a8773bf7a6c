"""The pure rules of scheduled sessions: overlaps, free times, reminders, the window, fees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rtserver.core.schedule import (
    NO_FEE,
    Fee,
    Reminder,
    cancel_fee,
    free_times,
    may_join,
    no_show_fee,
    overlaps,
    reminders,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0
CUSTOMER = "u_customer"
EXPERT = "u_expert"


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


# -- overlaps -------------------------------------------------------------------------


def test_the_same_start_overlaps() -> None:
    assert overlaps(at(60), at(60), HOUR)


@pytest.mark.parametrize("delta", [1, 30, 59, 59.99])
def test_starts_closer_than_the_length_overlap_in_either_order(delta: float) -> None:
    assert overlaps(at(60), at(60 + delta), HOUR)
    assert overlaps(at(60 + delta), at(60), HOUR)


@pytest.mark.parametrize("delta", [60, 61, 180])
def test_starts_a_length_or_more_apart_do_not_overlap(delta: float) -> None:
    assert not overlaps(at(60), at(60 + delta), HOUR)
    assert not overlaps(at(60 + delta), at(60), HOUR)


def test_overlap_follows_the_length() -> None:
    assert overlaps(at(0), at(90), 2 * HOUR)
    assert not overlaps(at(0), at(90), HOUR)


# -- free times ---------------------------------------------------------------------------


def test_free_times_with_nothing_booked_are_the_future_ones_in_order() -> None:
    proposed = [at(60), at(120), at(180)]
    assert free_times(proposed, [], HOUR, NOW) == proposed


def test_free_times_drop_past_times_and_now() -> None:
    proposed = [at(-30), NOW, at(1), at(120)]
    assert free_times(proposed, [], HOUR, NOW) == [at(1), at(120)]


def test_free_times_drop_times_overlapping_a_booking() -> None:
    booked = [at(120)]
    proposed = [at(60), at(90), at(120), at(150), at(180), at(240)]
    # 60 and 180 are exactly one length away: free.
    assert free_times(proposed, booked, HOUR, NOW) == [at(60), at(180), at(240)]


def test_free_times_against_several_bookings() -> None:
    booked = [at(120), at(300)]
    proposed = [at(100), at(200), at(330), at(400)]
    assert free_times(proposed, booked, HOUR, NOW) == [at(200), at(400)]


def test_free_times_can_be_empty() -> None:
    assert free_times([at(-10), at(120)], [at(100)], HOUR, NOW) == []


def test_free_times_accepts_iterators() -> None:
    proposed = iter([at(60), at(180)])
    booked = iter([at(60)])
    assert free_times(proposed, booked, HOUR, NOW) == [at(180)]


# -- reminders ------------------------------------------------------------------------------


def test_reminders_are_due_their_offset_before_the_start() -> None:
    start = at(60)
    got = reminders(start, [1800.0, 600.0], NOW)
    assert [(r.seconds_before, r.due) for r in got] == [(1800.0, at(30)), (600.0, at(50))]
    assert [r.minutes_before for r in got] == [30, 10]


def test_reminders_already_past_are_skipped() -> None:
    # Booked 20 minutes ahead: the 30-minute reminder is past, the 10-minute one is not.
    got = reminders(at(20), [1800.0, 600.0], NOW)
    assert [r.seconds_before for r in got] == [600.0]
    assert got[0].due == at(10)


def test_a_reminder_due_exactly_now_is_skipped() -> None:
    assert reminders(at(10), [600.0], NOW) == []


def test_no_reminders_for_a_session_about_to_start() -> None:
    assert reminders(at(1), [1800.0, 600.0], NOW) == []


def test_no_offsets_no_reminders() -> None:
    assert reminders(at(60), [], NOW) == []


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(1800.0, 30), (600.0, 10), (90.0, 1.5), (45.0, 0.75), (4.0, 0.067), (2.0, 0.033)],
)
def test_minutes_before(seconds: float, minutes: float) -> None:
    assert Reminder(seconds, NOW).minutes_before == minutes


def test_whole_minutes_before_are_integers() -> None:
    m = Reminder(1800.0, NOW).minutes_before
    assert m == 30 and isinstance(m, int)
    assert isinstance(Reminder(45.0, NOW).minutes_before, float)


# -- the start window -------------------------------------------------------------------------


def test_may_join_from_early_start_before_the_start() -> None:
    start = at(60)
    early = 600.0
    assert not may_join(at(49), start, early)
    assert not may_join(start - timedelta(seconds=600, milliseconds=1), start, early)
    assert may_join(start - timedelta(seconds=600), start, early)
    assert may_join(at(55), start, early)
    assert may_join(start, start, early)
    assert may_join(at(65), start, early)


def test_may_join_with_no_early_start_only_from_the_start() -> None:
    start = at(60)
    assert not may_join(start - timedelta(milliseconds=1), start, 0)
    assert may_join(start, start, 0)


# -- no-show fees -----------------------------------------------------------------------------


def test_absent_customer_pays_and_the_expert_is_compensated() -> None:
    fee = no_show_fee(CUSTOMER, EXPERT, False, True, 500, 20)
    assert fee == Fee(CUSTOMER, 500, EXPERT, 400, 100)


def test_absent_expert_pays_and_the_customer_is_compensated() -> None:
    fee = no_show_fee(CUSTOMER, EXPERT, True, False, 500, 20)
    assert fee == Fee(EXPERT, 500, CUSTOMER, 400, 100)


@pytest.mark.parametrize("joined", [False, True])
def test_both_absent_or_both_present_nobody_pays(joined: bool) -> None:
    fee = no_show_fee(CUSTOMER, EXPERT, joined, joined, 500, 20)
    assert fee == NO_FEE
    assert fee.charged_user_id is None and fee.fee_cents == 0
    assert fee.compensated_user_id is None
    assert fee.compensation_cents == 0 and fee.platform_cents == 0


def test_no_show_split_rounds_the_platform_cut_half_up() -> None:
    # 333 * 15% = 49.95 -> 50; the expert gets the rest.
    fee = no_show_fee(CUSTOMER, EXPERT, False, True, 333, 15)
    assert (fee.platform_cents, fee.compensation_cents) == (50, 283)
    # 10 * 25% = 2.5 -> 3 (half up).
    fee = no_show_fee(CUSTOMER, EXPERT, False, True, 10, 25)
    assert (fee.platform_cents, fee.compensation_cents) == (3, 7)


@pytest.mark.parametrize(
    ("pct", "platform", "compensation"), [(0, 0, 500), (100, 500, 0), (20, 100, 400)]
)
def test_no_show_split_always_adds_up_to_the_fee(
    pct: int, platform: int, compensation: int
) -> None:
    fee = no_show_fee(CUSTOMER, EXPERT, True, False, 500, pct)
    assert (fee.platform_cents, fee.compensation_cents) == (platform, compensation)
    assert fee.platform_cents + fee.compensation_cents == fee.fee_cents == 500


def test_a_zero_fee_charges_nothing_but_names_the_absent_side() -> None:
    fee = no_show_fee(CUSTOMER, EXPERT, False, True, 0, 20)
    assert fee.fee_cents == 0 and fee.platform_cents == 0 and fee.compensation_cents == 0


# -- cancelling --------------------------------------------------------------------------------


def test_cancelling_before_the_late_window_is_free() -> None:
    start = at(180)
    fee = cancel_fee(CUSTOMER, EXPERT, at(60), start, HOUR, 500, 20)
    assert fee == NO_FEE
    # One millisecond before the window opens: still free.
    just_before = start - timedelta(seconds=HOUR, milliseconds=1)
    assert cancel_fee(CUSTOMER, EXPERT, just_before, start, HOUR, 500, 20) == NO_FEE


def test_cancelling_within_the_late_window_costs_the_canceller() -> None:
    start = at(180)
    for now in (start - timedelta(seconds=HOUR), at(150), at(179), start, at(185)):
        fee = cancel_fee(CUSTOMER, EXPERT, now, start, HOUR, 500, 20)
        assert fee == Fee(CUSTOMER, 500, EXPERT, 400, 100), now


def test_the_expert_cancelling_late_pays_the_customer() -> None:
    fee = cancel_fee(EXPERT, CUSTOMER, at(170), at(180), HOUR, 500, 20)
    assert fee.charged_user_id == EXPERT
    assert fee.compensated_user_id == CUSTOMER
    assert (fee.fee_cents, fee.compensation_cents, fee.platform_cents) == (500, 400, 100)


def test_no_late_window_means_free_until_the_start() -> None:
    start = at(10)
    assert cancel_fee(CUSTOMER, EXPERT, at(9), start, 0, 500, 20) == NO_FEE
    assert cancel_fee(CUSTOMER, EXPERT, start, start, 0, 500, 20).fee_cents == 500
