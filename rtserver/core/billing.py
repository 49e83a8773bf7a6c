"""Billable time, pure: a running clock that only counts what was vouched for.

Billable time runs between ``billing.start`` and ``billing.pause`` (or the
end), on the server's clock. While it runs, a liveness check runs every
``interval`` seconds on some node and *vouches* for the time since the last
check when both participants are connected. So:

- time is credited in small steps, each backed by a check (or by the
  expert's own start, pause or end);
- a participant gone for less than ``grace`` costs nothing: when he is back,
  the whole stretch since the last good check is credited;
- a participant gone for ``grace`` or more pauses billing, and the pause
  takes effect at the last moment both were known connected (the last good
  check), so nobody pays for the time nobody could work;
- a stretch longer than ``stale`` seconds with no check at all (every node
  was down, or the node restarted) is not credited: a restart never invents
  time, and what was credited before it is stored, so it never loses any.

All times are milliseconds since the epoch; seconds shown are whole seconds,
rounded down.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Billing:
    """A session's billing clock as stored."""

    running: bool = False
    # Credited so far, milliseconds.
    billed_ms: int = 0
    # While running: the last vouched moment; time after it is not yet credited.
    since_ms: int | None = None
    # While running: the first check that found a participant missing, if any.
    absent_since_ms: int | None = None

    def seconds(self, now_ms: int, stale_ms: int) -> int:
        """Billable whole seconds as of now (what a pause now would leave)."""
        return (self.billed_ms + self._pending(now_ms, stale_ms)) // 1000

    def _pending(self, now_ms: int, stale_ms: int) -> int:
        if not self.running or self.since_ms is None or self.absent_since_ms is not None:
            return 0
        elapsed = max(0, now_ms - self.since_ms)
        return elapsed if elapsed <= stale_ms else 0

    def start(self, now_ms: int) -> Billing:
        """Start (a no-op when already running)."""
        if self.running:
            return self
        return Billing(True, self.billed_ms, now_ms, None)

    def pause(self, now_ms: int, stale_ms: int) -> Billing:
        """Pause, crediting the time since the last vouched moment."""
        if not self.running:
            return self
        return Billing(False, self.billed_ms + self._pending(now_ms, stale_ms), None, None)

    def check(self, now_ms: int, both_present: bool, grace_ms: int, stale_ms: int) -> Billing:
        """One liveness check; the state after it (maybe paused).

        The moment a participant left is not known, only that he was there at
        ``since_ms``; so the absence is counted from there.
        """
        if not self.running or self.since_ms is None:
            return self
        elapsed = max(0, now_ms - self.since_ms)
        if both_present:
            # Back (or never gone): the stretch is credited, a short absence too,
            # unless nobody checked for longer than either bound allows.
            bound = max(stale_ms, grace_ms if self.absent_since_ms is not None else 0)
            credit = elapsed if elapsed <= bound else 0
            return Billing(True, self.billed_ms + credit, now_ms, None)
        if elapsed >= grace_ms:
            # Stop at the last moment both were known connected: since_ms.
            return Billing(False, self.billed_ms, None, None)
        absent = self.absent_since_ms if self.absent_since_ms is not None else now_ms
        return replace(self, absent_since_ms=absent)
