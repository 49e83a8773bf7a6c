"""Billable time and the message rate limit, pure: explicit times, no clock, no sockets.

``Billing`` only credits time that was vouched for (a start, a good liveness
check, a pause); ``TokenBucket`` is the message limit (per user). The last
test walks one session's clock through to the charge of contract rule 5.
"""

from __future__ import annotations

import pytest

from rtserver.core.billing import Billing
from rtserver.core.money import Charge, charge, round_half_up
from rtserver.core.ratelimit import TokenBucket

pytestmark = pytest.mark.both_backends

GRACE = 10_000
STALE = 15_000

# --- Billing: start, pause, checks ---------------------------------------------------------


def test_a_new_clock_is_stopped_and_empty() -> None:
    b = Billing()
    assert b.running is False
    assert b.seconds(1_000_000, STALE) == 0
    # Pausing a stopped clock changes nothing.
    assert b.pause(5_000, STALE) == b


def test_time_between_good_checks_is_credited() -> None:
    b = Billing().start(1_000)
    assert b.running and b.billed_ms == 0
    b = b.check(3_000, True, GRACE, STALE)
    assert (b.running, b.billed_ms) == (True, 2_000)
    b = b.check(5_500, True, GRACE, STALE)
    assert (b.running, b.billed_ms) == (True, 4_500)
    # What has not been vouched for yet is shown too (a pause now would credit it).
    assert b.seconds(6_600, STALE) == 5


def test_pause_credits_the_time_since_the_last_check() -> None:
    b = Billing().start(0).check(2_000, True, GRACE, STALE)
    paused = b.pause(3_500, STALE)
    assert paused.running is False
    assert paused.billed_ms == 3_500
    # A stopped clock does not move.
    assert paused.seconds(100_000, STALE) == 3
    # Pausing again is a no-op.
    assert paused.pause(9_000, STALE) == paused


def test_start_after_a_pause_adds_to_what_was_billed() -> None:
    b = Billing().start(0).pause(4_000, STALE).start(10_000)
    assert b.running and b.billed_ms == 4_000
    assert b.seconds(10_000, STALE) == 4
    # The stopped stretch 4 s .. 10 s is not billed.
    assert b.pause(11_000, STALE).billed_ms == 5_000


def test_start_when_running_is_a_no_op() -> None:
    b = Billing().start(1_000).check(2_000, True, GRACE, STALE)
    again = b.start(5_000)
    assert again == b
    # Not restarted at 5 s: the 2 s .. 5 s stretch still counts.
    assert again.pause(5_000, STALE).billed_ms == 4_000
    assert again.check(6_000, True, GRACE, STALE).billed_ms == 5_000


def test_a_stale_gap_with_no_check_is_not_credited() -> None:
    b = Billing().start(0).check(1_000, True, GRACE, STALE)
    assert b.billed_ms == 1_000
    # Nobody checked for 20 s (> stale 15 s): every node was down, say.
    late = b.check(21_000, True, GRACE, STALE)
    assert late.running is True
    assert late.billed_ms == 1_000  # the gap is not credited
    # ...but billing goes on from now.
    assert late.check(23_000, True, GRACE, STALE).billed_ms == 3_000
    # Neither shown nor credited by a pause after such a gap.
    assert b.seconds(21_000, STALE) == 1
    assert b.pause(21_000, STALE).billed_ms == 1_000
    # A gap of exactly the stale bound is still credited.
    assert b.check(1_000 + STALE, True, GRACE, STALE).billed_ms == 1_000 + STALE


def test_an_absence_shorter_than_the_grace_is_credited_when_he_is_back() -> None:
    b = Billing().start(0).check(1_000, True, GRACE, STALE)
    gone = b.check(2_000, False, GRACE, STALE)
    assert gone.running is True
    assert gone.billed_ms == 1_000  # nothing credited while he is missing
    # Gone since the last good check (1 s): that is all that is known.
    assert gone.absent_since_ms == 1_000
    # While someone is missing, nothing pending is shown.
    assert gone.seconds(4_000, STALE) == 1
    still = gone.check(4_000, False, GRACE, STALE)
    assert still.running is True and still.billed_ms == 1_000
    assert still.absent_since_ms == 1_000
    back = still.check(6_000, True, GRACE, STALE)
    assert back.running is True
    assert back.billed_ms == 6_000  # the whole stretch since the last good check
    assert back.absent_since_ms is None
    # And billing goes on normally after it.
    assert back.check(7_000, True, GRACE, STALE).billed_ms == 7_000
    assert back.pause(7_500, STALE).billed_ms == 7_500


def test_a_short_absence_longer_than_stale_is_still_credited() -> None:
    # Checks ran all along (no stale gap), they just found someone missing.
    stale = 3_000
    b = Billing().start(0)
    b = b.check(1_000, False, GRACE, stale)
    b = b.check(4_000, False, GRACE, stale)
    b = b.check(7_000, False, GRACE, stale)
    back = b.check(9_000, True, GRACE, stale)
    assert back.running is True and back.billed_ms == 9_000


def test_a_pause_while_someone_is_gone_credits_nothing_after_the_last_good_check() -> None:
    b = Billing().start(0).check(1_000, True, GRACE, STALE)
    gone = b.check(2_000, False, GRACE, STALE).check(3_000, False, GRACE, STALE)
    paused = gone.pause(3_500, STALE)
    assert paused.running is False and paused.billed_ms == 1_000


def test_an_absence_reaching_the_grace_pauses_at_the_last_good_check() -> None:
    b = Billing().start(0).check(1_000, True, GRACE, STALE)
    gone = b.check(3_000, False, GRACE, STALE)
    assert gone.running is True
    # Still missing just short of the grace (counted from the last good check).
    almost = gone.check(1_000 + GRACE - 1, False, GRACE, STALE)
    assert almost.running is True and almost.billed_ms == 1_000
    paused = almost.check(1_000 + GRACE, False, GRACE, STALE)
    assert paused.running is False
    assert paused.billed_ms == 1_000  # stopped at the last good check: nothing after it
    # Nothing after it ever counts: not shown, not by a later pause, not by a later check.
    assert paused.seconds(60_000, STALE) == 1
    assert paused.pause(60_000, STALE).billed_ms == 1_000
    assert paused.check(12_000, True, GRACE, STALE) == paused
    # Coming back after the pause is not credited either: billing must be started again.
    restarted = paused.start(20_000)
    assert restarted.billed_ms == 1_000
    assert restarted.check(21_000, True, GRACE, STALE).billed_ms == 2_000


def test_an_absence_found_late_pauses_at_the_last_good_check() -> None:
    # The first check that sees him missing is already past the grace.
    b = Billing().start(5_000).check(7_000, True, GRACE, STALE)
    paused = b.check(7_000 + GRACE + 3_000, False, GRACE, STALE)
    assert paused.running is False and paused.billed_ms == 2_000


def test_seconds_round_down() -> None:
    assert Billing(False, 2_999).seconds(0, STALE) == 2
    assert Billing(False, 3_000).seconds(0, STALE) == 3
    running = Billing().start(10_000)
    assert running.seconds(10_999, STALE) == 0
    assert running.seconds(11_000, STALE) == 1
    assert running.seconds(11_999, STALE) == 1
    assert Billing(True, 1_500, 0).seconds(1_499, STALE) == 2
    # A clock that went backwards credits nothing rather than a negative.
    assert running.seconds(9_000, STALE) == 0
    assert running.check(9_000, True, GRACE, STALE).billed_ms == 0


# --- TokenBucket ---------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=1, burst=3)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert all(bucket.take(0.0) for _ in range(3))
    assert bucket.take(0.0) is False
    assert bucket.take(0.25) is False  # half a token
    assert bucket.take(0.5) is True  # one token after 0.5 s at 2/s
    assert bucket.take(0.5) is False
    # A long quiet time saves up no more than the burst.
    assert [bucket.take(1_000.0) for _ in range(4)] == [True, True, True, False]


def test_a_refusal_spends_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=3)
    assert all(bucket.take(0.0) for _ in range(3))
    # Many refusals at 0.5 s...
    assert [bucket.take(0.5) for _ in range(5)] == [False] * 5
    # ...and yet at 1 s the one refilled token is there.
    assert bucket.take(1.0) is True
    # A cost that does not fit is refused without spending what is there.
    bucket = TokenBucket(rate=1, burst=3)
    assert bucket.take(0.0, cost=2) is True  # 1 left
    assert bucket.take(0.0, cost=2) is False
    assert bucket.take(0.0, cost=1) is True


# --- Rule 5, from a session's clock to the money ---------------------------------------------


def test_rule_5_worked_example_from_a_session_clock() -> None:
    stale = 15_000
    grace = 60_000
    t0 = 1_700_000_000_000
    b = Billing().start(t0)
    for k in range(1, 13):  # good checks every 5 s for 60 s
        b = b.check(t0 + 5_000 * k, True, grace, stale)
    b = b.pause(t0 + 62_000, stale)  # 62 s
    b = b.start(t0 + 300_000)  # a break, not billed
    b = b.check(t0 + 305_000, True, grace, stale)
    b = b.check(t0 + 310_000, False, grace, stale)  # a short absence...
    b = b.check(t0 + 315_000, True, grace, stale)  # ...credited when he is back
    for k in range(1, 10):  # good checks every 5 s again, up to 360 s
        b = b.check(t0 + 315_000 + 5_000 * k, True, grace, stale)
    b = b.pause(t0 + 363_400, stale)  # 63.4 s more
    assert b.billed_ms == 125_400
    seconds = b.seconds(t0 + 999_999, stale)
    assert seconds == 125

    c = charge(6000, seconds, 10, 20)
    # round_half_up(6000 * 125 * 90 / (900 * 100)) = round_half_up(750.0) = 750
    assert c.charge_cents == round_half_up(6000 * 125 * 90, 900 * 100) == 750
    assert c == Charge(
        billable_seconds=125,
        discount_pct=10,
        charge_cents=750,
        platform_fee_cents=150,
        expert_earnings_cents=600,
    )
    assert c.platform_fee_cents + c.expert_earnings_cents == c.charge_cents
