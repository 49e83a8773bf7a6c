"""Time, injectable so that tests control it.

The server's clock is the only source of "now" in the domain: billing, offer
expiry and timers all read it. Times are timezone-aware UTC datetimes inside,
and ISO-8601 strings ending in ``Z`` on the wire.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where the server reads the time."""

    def now(self) -> datetime:
        """The current UTC time, timezone-aware."""
        ...


class SystemClock:
    """The wall clock of the machine, in UTC."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to; for tests of the pure core."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """The time this clock was set to."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += timedelta(seconds=seconds)


def to_wire(t: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a ``Z``."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    # One %-format of the fields: under half the time of strftime (this runs for
    # every chat message), and always four digits of year, as ISO-8601 wants.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (faster than an f-string)
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.microsecond // 1000,
    )


def from_wire(s: str) -> datetime:
    """Parse an ISO-8601 time that carries an offset (``Z`` or ``+hh:mm``), to UTC."""
    t = datetime.fromisoformat(s.replace("z", "Z"))
    if t.tzinfo is None:
        raise ValueError("time has no UTC offset")
    return t.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(t: datetime) -> int:
    """Milliseconds since the epoch: how times are stored.

    Exact integer arithmetic: ``t.timestamp() * 1000`` loses a millisecond to
    float rounding for some times (from 2038 on).
    """
    return (t - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Inverse of :func:`to_ms`."""
    return _EPOCH + timedelta(milliseconds=ms)


def monotonic() -> float:
    """Seconds on a clock that never goes back; for latencies only."""
    return time.monotonic()
