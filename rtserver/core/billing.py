"""Billable time, pure: a running clock that only counts what was observed.

Billable time runs between ``billing.start`` and ``billing.pause`` (or the
end), on the server's clock. While it runs, a liveness check runs every
``--billing-check`` seconds on some node and credits the time since the
previous check, when that stretch was observed:

- a stretch between two checks is credited when both participants are
  connected at the later check;
- while a participant is gone, the observed stretches are *held*; if he is
  back within ``--disconnect-grace`` they are credited (a short drop costs
  the expert nothing), and if not, billing pauses at the last moment both
  were known connected (``absent_since_ms``) and the held time is dropped;
- a stretch longer than ``stale`` with no check at all (every node was down,
  or the one node restarted) was not observed and is never credited: a
  restart never invents time, and what was credited before it is stored, so
  it never loses any.

All times are milliseconds since the epoch; seconds shown are whole seconds,
rounded down.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Billing:
    """A session's billing clock as stored."""

    running: bool = False
    # Credited so far, milliseconds.
    billed_ms: int = 0
    # While running: the last check (or the start); later time is not yet credited.
    checked_ms: int | None = None
    # While running: the last moment both were known connected, if one is gone now.
    absent_since_ms: int | None = None
    # While one is gone: observed time to credit if he comes back within the grace.
    held_ms: int = 0

    def _observed(self, now_ms: int, stale_ms: int) -> int:
        if self.checked_ms is None:
            return 0
        gap = max(0, now_ms - self.checked_ms)
        return gap if gap <= stale_ms else 0

    def seconds(self, now_ms: int, stale_ms: int) -> int:
        """Billable whole seconds as of now (what a pause now would leave)."""
        pending = 0
        if self.running and self.absent_since_ms is None:
            pending = self._observed(now_ms, stale_ms)
        return (self.billed_ms + pending) // 1000

    def start(self, now_ms: int) -> Billing:
        """Start (a no-op when already running)."""
        if self.running:
            return self
        return Billing(True, self.billed_ms, now_ms, None, 0)

    def pause(self, now_ms: int, stale_ms: int) -> Billing:
        """Pause; credits the time since the last check unless someone is gone."""
        if not self.running:
            return self
        credit = 0 if self.absent_since_ms is not None else self._observed(now_ms, stale_ms)
        return Billing(False, self.billed_ms + credit)

    def check(self, now_ms: int, both_present: bool, grace_ms: int, stale_ms: int) -> Billing:
        """One liveness check; the state after it (maybe paused)."""
        if not self.running or self.checked_ms is None:
            return self
        observed = self._observed(now_ms, stale_ms)
        if both_present:
            return Billing(True, self.billed_ms + self.held_ms + observed, now_ms, None, 0)
        absent_since = self.absent_since_ms
        if absent_since is None:
            absent_since = self.checked_ms
        if now_ms - absent_since >= grace_ms:
            # Gone past the grace: stop at the last moment both were connected.
            return Billing(False, self.billed_ms)
        return Billing(True, self.billed_ms, now_ms, absent_since, self.held_ms + observed)
