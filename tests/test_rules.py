"""The state machines of requests and offers: accept, decline, cancel, times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rtserver.core.requests import (
    MAX_PROPOSED_TIMES,
    OfferView,
    RequestView,
    check_accept,
    check_cancel,
    check_decline,
    closed_error,
    offer_expiry,
    validate_proposed_times,
)
from rtserver.errors import (
    Conflict,
    InvalidField,
    InvalidState,
    NotFound,
    OfferExpired,
    OfferTaken,
    RequestCancelled,
    RtError,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = NOW + timedelta(days=1)
T2 = NOW + timedelta(days=2)
T3 = NOW + timedelta(days=3)

INSTANT = RequestView(
    id="r1",
    customer_id="c1",
    kind="instant",
    status="open",
    expires_at=NOW + timedelta(minutes=10),
)
SCHEDULED = RequestView(
    id="r2",
    customer_id="c1",
    kind="scheduled",
    status="open",
    expires_at=NOW + timedelta(hours=20),
    proposed_times=(T1, T2),
)
OFFER = OfferView(
    request_id="r1", expert_id="e1", status="open", expires_at=NOW + timedelta(seconds=60)
)


def raises(exc_type: type[RtError], fn: object, *args: object) -> RtError:
    with pytest.raises(exc_type) as info:
        fn(*args)  # type: ignore[operator]
    assert type(info.value) is exc_type
    return info.value


# --- check_accept ---------------------------------------------------------------------


def test_accept_instant_returns_none() -> None:
    assert check_accept(INSTANT, OFFER, NOW, None) is None


def test_accept_just_before_expiry() -> None:
    before = OFFER.expires_at - timedelta(microseconds=1)
    assert check_accept(INSTANT, OFFER, before, None) is None


@pytest.mark.parametrize(
    ("request_", "offer"), [(None, OFFER), (INSTANT, None), (None, None)], ids=str
)
def test_accept_without_request_or_offer_is_not_found(
    request_: RequestView | None, offer: OfferView | None
) -> None:
    err = raises(NotFound, check_accept, request_, offer, NOW, None)
    assert err.code == "not_found"


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        ("accepted", OfferTaken, "offer_taken"),
        ("cancelled", RequestCancelled, "request_cancelled"),
        ("expired", OfferExpired, "offer_expired"),
        ("declined", OfferExpired, "offer_expired"),
    ],
)
def test_accept_on_a_closed_request(status: str, error: type[RtError], code: str) -> None:
    request = replace(INSTANT, status=status)
    err = raises(error, check_accept, request, OFFER, NOW, None)
    assert err.code == code
    assert isinstance(err, Conflict)
    assert err.status == 409


def test_closed_request_wins_over_a_bad_offer() -> None:
    # Another expert won: the loser hears offer_taken even though his own
    # offer has since been revoked or has expired.
    request = replace(INSTANT, status="accepted")
    revoked = replace(OFFER, status="revoked", expires_at=NOW)
    raises(OfferTaken, check_accept, request, revoked, NOW, None)


def test_busy_expert_hears_why_before_his_revoked_offer() -> None:
    # His session's start revoked his other instant offers: invalid_state says
    # why; a request another expert won still says offer_taken; a scheduled
    # request does not care about an active session now.
    revoked = replace(OFFER, status="revoked")
    err = raises(InvalidState, check_accept, INSTANT, revoked, NOW, None, True)
    assert err.code == "invalid_state"
    raises(OfferTaken, check_accept, replace(INSTANT, status="accepted"), revoked, NOW, None, True)
    slot = SCHEDULED.proposed_times[0]
    assert check_accept(SCHEDULED, OFFER, NOW, slot, True) == slot


def test_accept_a_declined_offer_is_invalid_state() -> None:
    offer = replace(OFFER, status="declined")
    err = raises(InvalidState, check_accept, INSTANT, offer, NOW, None)
    assert err.code == "invalid_state"


@pytest.mark.parametrize("status", ["expired", "revoked"])
def test_accept_an_expired_or_revoked_offer(status: str) -> None:
    offer = replace(OFFER, status=status)
    raises(OfferExpired, check_accept, INSTANT, offer, NOW, None)


def test_accept_expired_by_time_exactly_at_expires_at() -> None:
    raises(OfferExpired, check_accept, INSTANT, OFFER, OFFER.expires_at, None)


def test_accept_expired_by_time_after_expires_at() -> None:
    later = OFFER.expires_at + timedelta(milliseconds=1)
    raises(OfferExpired, check_accept, INSTANT, OFFER, later, None)


def test_accept_an_already_accepted_offer_is_invalid_state() -> None:
    offer = replace(OFFER, status="accepted")
    err = raises(InvalidState, check_accept, INSTANT, offer, NOW, None)
    assert err.message == "offer is accepted"


def test_accept_after_the_request_expired() -> None:
    request = replace(INSTANT, expires_at=NOW)
    offer = replace(OFFER, expires_at=NOW + timedelta(seconds=30))
    err = raises(OfferExpired, check_accept, request, offer, NOW, None)
    assert err.message == "this request has expired"


def test_accept_instant_with_a_time_is_invalid_field() -> None:
    err = raises(InvalidField, check_accept, INSTANT, OFFER, NOW, T1)
    assert isinstance(err, InvalidField)
    assert err.field == "time"


def test_accept_scheduled_returns_the_booked_time() -> None:
    assert check_accept(SCHEDULED, OFFER, NOW, T2) == T2
    assert check_accept(SCHEDULED, OFFER, NOW, T1) == T1


def test_accept_scheduled_time_in_another_offset_is_the_same_instant() -> None:
    plus2 = T1.astimezone(timezone(timedelta(hours=2)))
    assert check_accept(SCHEDULED, OFFER, NOW, plus2) == T1


def test_accept_scheduled_without_time_is_invalid_field() -> None:
    err = raises(InvalidField, check_accept, SCHEDULED, OFFER, NOW, None)
    assert isinstance(err, InvalidField)
    assert err.field == "time"


def test_accept_scheduled_with_a_time_not_proposed_is_invalid_field() -> None:
    err = raises(InvalidField, check_accept, SCHEDULED, OFFER, NOW, T3)
    assert isinstance(err, InvalidField)
    assert err.field == "time"
    assert err.message == "time is not one of the proposed times"
    off_by_a_ms = T1 + timedelta(milliseconds=1)
    raises(InvalidField, check_accept, SCHEDULED, OFFER, NOW, off_by_a_ms)


# --- check_decline --------------------------------------------------------------------


def test_decline_an_open_offer() -> None:
    assert check_decline(INSTANT, OFFER) is None


@pytest.mark.parametrize(("request_", "offer"), [(None, OFFER), (INSTANT, None)], ids=str)
def test_decline_without_request_or_offer(
    request_: RequestView | None, offer: OfferView | None
) -> None:
    raises(NotFound, check_decline, request_, offer)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("accepted", OfferTaken),
        ("cancelled", RequestCancelled),
        ("expired", OfferExpired),
        ("declined", OfferExpired),
    ],
)
def test_decline_on_a_closed_request(status: str, error: type[RtError]) -> None:
    raises(error, check_decline, replace(INSTANT, status=status), OFFER)


@pytest.mark.parametrize("status", ["accepted", "declined", "expired", "revoked"])
def test_decline_an_answered_offer_is_invalid_state(status: str) -> None:
    err = raises(InvalidState, check_decline, INSTANT, replace(OFFER, status=status))
    assert err.message == f"offer is already {status}"


# --- check_cancel ---------------------------------------------------------------------


def test_cancel_own_open_request() -> None:
    assert check_cancel(INSTANT, "c1") is None
    assert check_cancel(SCHEDULED, "c1") is None


def test_cancel_missing_request_is_not_found() -> None:
    raises(NotFound, check_cancel, None, "c1")


def test_cancel_another_users_request_is_not_found() -> None:
    err = raises(NotFound, check_cancel, INSTANT, "c2")
    assert err.code == "not_found"
    # Even when closed: nothing reveals that it exists.
    raises(NotFound, check_cancel, replace(INSTANT, status="accepted"), "e1")


@pytest.mark.parametrize("status", ["accepted", "declined", "expired", "cancelled"])
def test_cancel_a_closed_request_is_invalid_state(status: str) -> None:
    err = raises(InvalidState, check_cancel, replace(INSTANT, status=status), "c1")
    assert err.message == f"request is already {status}"


def test_closed_error_codes() -> None:
    assert closed_error("accepted").code == "offer_taken"
    assert closed_error("cancelled").code == "request_cancelled"
    assert closed_error("expired").code == "offer_expired"
    assert closed_error("declined").code == "offer_expired"


# --- validate_proposed_times ----------------------------------------------------------


def test_instant_takes_no_times() -> None:
    assert validate_proposed_times("instant", [], NOW) == ()


def test_instant_with_times_is_invalid_field() -> None:
    err = raises(InvalidField, validate_proposed_times, "instant", [T1], NOW)
    assert isinstance(err, InvalidField)
    assert err.field == "proposed_times"


@pytest.mark.parametrize("count", [0, MAX_PROPOSED_TIMES + 1])
def test_scheduled_needs_one_to_five_times(count: int) -> None:
    times = [NOW + timedelta(hours=i + 1) for i in range(count)]
    err = raises(InvalidField, validate_proposed_times, "scheduled", times, NOW)
    assert isinstance(err, InvalidField)
    assert err.field == "proposed_times"


def test_scheduled_with_one_and_five_times() -> None:
    assert MAX_PROPOSED_TIMES == 5
    assert validate_proposed_times("scheduled", [T1], NOW) == (T1,)
    five = [NOW + timedelta(hours=h) for h in (5, 1, 4, 2, 3)]
    assert validate_proposed_times("scheduled", five, NOW) == tuple(
        NOW + timedelta(hours=h) for h in (1, 2, 3, 4, 5)
    )


def test_duplicate_times_are_invalid_field() -> None:
    err = raises(InvalidField, validate_proposed_times, "scheduled", [T1, T2, T1], NOW)
    assert err.message == "proposed_times must be distinct"


def test_the_same_instant_in_two_offsets_is_a_duplicate() -> None:
    plus2 = T1.astimezone(timezone(timedelta(hours=2)))
    err = raises(InvalidField, validate_proposed_times, "scheduled", [T1, plus2], NOW)
    assert err.message == "proposed_times must be distinct"


@pytest.mark.parametrize("delta", [timedelta(0), -timedelta(seconds=1), -timedelta(days=1)])
def test_past_or_present_times_are_invalid_field(delta: timedelta) -> None:
    err = raises(InvalidField, validate_proposed_times, "scheduled", [T1, NOW + delta], NOW)
    assert isinstance(err, InvalidField)
    assert err.field == "proposed_times"
    assert err.message == "proposed_times must be in the future"


def test_a_time_just_after_now_is_accepted() -> None:
    soon = NOW + timedelta(microseconds=1)
    assert validate_proposed_times("scheduled", [soon], NOW) == (soon,)


def test_earliest_lead() -> None:
    lead = timedelta(minutes=30)
    raises(
        InvalidField,
        validate_proposed_times,
        "scheduled",
        [NOW + lead],
        NOW,
        lead,
    )
    ok = NOW + lead + timedelta(seconds=1)
    assert validate_proposed_times("scheduled", [ok], NOW, lead) == (ok,)


def test_times_are_sorted() -> None:
    assert validate_proposed_times("scheduled", [T3, T1, T2], NOW) == (T1, T2, T3)


def test_times_in_other_offsets_are_returned_in_utc_and_sorted_by_instant() -> None:
    # 13:00+05:00 is 08:00Z, before 10:00Z; 06:00-03:00 is 09:00Z.
    day = T1.date()
    a = datetime(day.year, day.month, day.day, 13, 0, tzinfo=timezone(timedelta(hours=5)))
    b = datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC)
    c = datetime(day.year, day.month, day.day, 6, 0, tzinfo=timezone(timedelta(hours=-3)))
    out = validate_proposed_times("scheduled", [b, a, c], NOW)
    assert out == (
        datetime(day.year, day.month, day.day, 8, 0, tzinfo=UTC),
        datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC),
        datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC),
    )
    assert [t.utcoffset() for t in out] == [timedelta(0)] * 3
    assert all(t.tzinfo is UTC for t in out)


def test_naive_times_are_invalid_field() -> None:
    naive = T1.replace(tzinfo=None)
    err = raises(InvalidField, validate_proposed_times, "scheduled", [naive], NOW)
    assert isinstance(err, InvalidField)
    assert err.field == "proposed_times"


# --- offer_expiry ---------------------------------------------------------------------


def test_offer_expiry_is_one_wave() -> None:
    assert offer_expiry(NOW, 60, NOW + timedelta(minutes=10)) == NOW + timedelta(seconds=60)
    assert offer_expiry(NOW, 0.25, NOW + timedelta(minutes=10)) == NOW + timedelta(milliseconds=250)


def test_offer_expiry_is_capped_at_the_request_expiry() -> None:
    request_end = NOW + timedelta(seconds=20)
    assert offer_expiry(NOW, 60, request_end) == request_end


def test_offer_expiry_when_both_end_together() -> None:
    end = NOW + timedelta(seconds=60)
    assert offer_expiry(NOW, 60, end) == end
