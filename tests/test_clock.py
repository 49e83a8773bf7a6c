"""Time on the wire and in storage, and the injectable clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtserver.clock import (
    Clock,
    FakeClock,
    SystemClock,
    from_ms,
    from_wire,
    monotonic,
    to_ms,
    to_wire,
)

PURE = settings(database=None, deadline=None)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))
MINUS_05 = timezone(timedelta(hours=-5))

# --- to_wire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "wire"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "2026-01-02T03:04:05.678Z"),
        # Milliseconds are truncated, never rounded up into the next second.
        (datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 1000, tzinfo=UTC), "2026-01-02T03:04:05.001Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        # Other offsets are converted to UTC.
        (datetime(2026, 1, 2, 8, 34, 5, 42000, tzinfo=PLUS_0530), "2026-01-02T03:04:05.042Z"),
        (
            datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            "2025-12-31T23:00:00.000Z",
        ),
        (datetime(2025, 12, 31, 22, 0, tzinfo=MINUS_05), "2026-01-01T03:00:00.000Z"),
    ],
)
def test_to_wire(t: datetime, wire: str) -> None:
    assert to_wire(t) == wire


def test_to_wire_shape() -> None:
    wire = to_wire(datetime(2026, 7, 9, 10, 11, 12, 345678, tzinfo=UTC))
    assert wire.endswith("Z")
    assert len(wire) == len("2026-07-09T10:11:12.345Z")
    assert wire[19] == "."
    assert wire[20:23] == "345"


# --- from_wire ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "t"),
    [
        ("2026-01-02T03:04:05.678Z", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+00:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T05:04:05.5+02:00", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("2026-01-02T08:34:05+05:30", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-12-31T22:00:00-05:00", datetime(2026, 1, 1, 3, 0, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
    ],
)
def test_from_wire_converts_to_utc(wire: str, t: datetime) -> None:
    parsed = from_wire(wire)
    assert parsed == t
    assert parsed.tzinfo is UTC
    assert parsed.hour == t.hour  # the same wall time in UTC, not merely the same instant


@pytest.mark.parametrize("wire", ["2026-01-02T03:04:05", "2026-01-02T03:04:05.678", "2026-01-02"])
def test_from_wire_refuses_naive_times(wire: str) -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        from_wire(wire)


@pytest.mark.parametrize("wire", ["", "yesterday", "2026-13-01T00:00:00Z", "12:00Z"])
def test_from_wire_refuses_garbage(wire: str) -> None:
    with pytest.raises(ValueError):
        from_wire(wire)


def test_wire_round_trip_examples() -> None:
    for wire in [
        "2026-01-02T03:04:05.678Z",
        "2000-02-29T23:59:59.999Z",
        "1970-01-01T00:00:00.000Z",
    ]:
        assert to_wire(from_wire(wire)) == wire


MS_TIMES = st.integers(min_value=0, max_value=to_ms(datetime(2200, 1, 1, tzinfo=UTC))).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)


@PURE
@given(MS_TIMES)
def test_wire_round_trip(t: datetime) -> None:
    assert from_wire(to_wire(t)) == t


# --- to_ms / from_ms ------------------------------------------------------------------


def test_to_ms_examples() -> None:
    assert to_ms(EPOCH) == 0
    assert to_ms(datetime(2026, 1, 1, tzinfo=UTC)) == 1_767_225_600_000
    assert to_ms(datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)) == 1_767_225_600_123
    # Sub-millisecond parts are dropped.
    assert to_ms(datetime(2026, 1, 1, 0, 0, 0, 123999, tzinfo=UTC)) == 1_767_225_600_123
    # The offset does not matter, only the instant.
    assert to_ms(datetime(2026, 1, 1, 5, 30, tzinfo=PLUS_0530)) == 1_767_225_600_000


def test_from_ms_examples() -> None:
    assert from_ms(0) == EPOCH
    assert from_ms(1_767_225_600_123) == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert from_ms(1_767_225_600_123).tzinfo is UTC


def test_ms_round_trip_where_floats_lose_a_millisecond() -> None:
    # t.timestamp() * 1000 gives 2185447768252.9998 for this time.
    t = datetime(2039, 4, 3, 12, 49, 28, 253000, tzinfo=UTC)
    assert to_ms(t) == 2_185_447_768_253
    assert from_ms(2_185_447_768_253) == t
    assert to_ms(EPOCH + timedelta(microseconds=2_171_932_850_410_000)) == 2_171_932_850_410


@PURE
@given(st.integers(min_value=0, max_value=to_ms(datetime(9000, 1, 1, tzinfo=UTC))))
def test_ms_round_trip(ms: int) -> None:
    assert to_ms(from_ms(ms)) == ms


@PURE
@given(st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)))
def test_to_ms_floors_to_the_millisecond(t: datetime) -> None:
    ms = to_ms(t)
    assert ms == (t - EPOCH) // timedelta(milliseconds=1)
    assert from_ms(ms) == t.replace(microsecond=t.microsecond // 1000 * 1000)


# --- clocks ---------------------------------------------------------------------------


def test_fake_clock_default_start() -> None:
    clock = FakeClock()
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_fake_clock_stands_still_until_advanced() -> None:
    start = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    clock = FakeClock(start)
    assert clock.now() == start
    assert clock.now() == start
    clock.advance(1.5)
    assert clock.now() == start + timedelta(seconds=1.5)
    clock.advance(0.001)
    assert clock.now() == start + timedelta(milliseconds=1501)
    clock.advance(3600)
    assert clock.now() == datetime(2030, 6, 1, 13, 0, 1, 501000, tzinfo=UTC)


def test_fake_clock_is_a_clock() -> None:
    def read(clock: Clock) -> datetime:
        return clock.now()

    assert read(FakeClock(EPOCH)) == EPOCH


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert now.utcoffset() == timedelta(0)
    assert to_wire(now).endswith("Z")


def test_monotonic_never_goes_back() -> None:
    a = monotonic()
    b = monotonic()
    assert b >= a
