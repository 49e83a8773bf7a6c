"""Rate limits, pure: token buckets, one per key in a bounded map. The caller passes the time.

A :class:`Limit` is written ``count/period`` (``20/2m``): at most ``count`` at
once, refilled at ``count`` per ``period``. A :class:`Limiter` keeps one bucket
per key (a user id, a client address) in a map of at most ``max_keys``,
least recently used first out, so that a flood of distinct keys costs bounded
memory. Forgetting a key only forgets how much of its burst it had spent; the
least recently used key is also the one whose bucket is most likely full again.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

# Keys one limiter remembers: about 250 bytes each, so about 12 MB at worst.
MAX_KEYS = 50_000


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough; False (nothing spent) if not."""
        self._refill(now)
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def give(self, now: float, cost: float = 1.0) -> None:
        """Give back ``cost`` tokens spent on something that did not count."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + cost)

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0 if they are now)."""
        self._refill(now)
        missing = cost - self.tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Limit:
    """``count`` at once, and ``count`` more each ``period`` seconds."""

    count: float
    period: float

    @property
    def rate(self) -> float:
        """Tokens a second."""
        return self.count / self.period

    def __str__(self) -> str:
        count = int(self.count) if self.count == int(self.count) else self.count
        return f"{count}/{self.period:g}s"


class Limiter:
    """One token bucket per key, at most ``max_keys`` keys (least recently used out)."""

    def __init__(self, limit: Limit, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.limit.rate, self.limit.count)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` of ``key``'s tokens: 0.0 when spent, else the seconds to wait
        (nothing spent)."""
        bucket = self._bucket(key)
        if bucket.take(now, cost):
            return 0.0
        return max(bucket.wait(now, cost), 1e-3)

    def give(self, key: str, now: float, cost: float = 1.0) -> None:
        """Give back tokens spent on something that does not count (a login that worked)."""
        self._bucket(key).give(now, cost)

    def __len__(self) -> int:
        return len(self._buckets)


def address_key(host: str | None) -> str:
    """The key of a client address: IPv4 as it is, IPv6 by its /64 (one subscriber
    usually holds a whole /64, so single addresses would not limit anyone)."""
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(addr) >> 64 << 64, 64)))
    return str(addr)
