"""When a failed unit of work (a durable timer, one outbox message) is tried again, pure.

A failure is tried again after an exponential delay with jitter, capped; after
``attempts`` failed tries the work is retired (a dead letter a manager can see
and retry) instead of being tried forever. The jitter is drawn from the upper
half of the delay, ``[d/2, d]``: the nodes of a cluster and the messages of one
outage do not all come back at the same instant, and a retry never comes much
sooner than its step (as the node's loops back off, ``rtserver.health``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Draw = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap, and the tries before retiring.

    ``base``: the delay after the first failure, seconds; it doubles with every
    further failure up to ``cap``. ``attempts``: the tries in all (the first one
    included) before the work is retired.
    """

    base: float
    cap: float
    attempts: int

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("a retry policy needs 0 < base <= cap")
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def step(self, failures: int) -> float:
        """The delay before the next try after ``failures`` failed ones, before jitter."""
        # Past 2**62 the doubling is past any cap; the exponent stays small.
        return float(min(self.cap, self.base * 2 ** min(max(failures, 1) - 1, 62)))

    def delay(self, failures: int, draw: Draw = random.uniform) -> float | None:
        """Seconds to wait after ``failures`` failed tries; None: retire the work."""
        if failures >= self.attempts:
            return None
        step = self.step(failures)
        return draw(step / 2, step)
