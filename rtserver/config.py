"""Settings: one typed, frozen object built from an injectable mapping.

``Settings.from_mapping`` takes flag names (``offer_ttl``) or environment names
(``RT_OFFER_TTL``) with string or typed values, so that the CLI, the
environment and tests all go through the same parsing.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtserver.core.ratelimit import Limit

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``250ms``, ``90s``, ``10m``, ``1h``, ``14d`` or plain seconds."""
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration: {value}")
        return float(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"not a duration: {value!r} (write 250ms, 90s, 10m, 1h, 14d or seconds)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_limit(value: str | Limit) -> Limit:
    """A rate limit written ``count/period``: ``20/2m`` is 20 at once and 20 more every
    2 minutes (a token bucket); ``600/1h``, ``10/30s``."""
    if isinstance(value, Limit):
        return value
    count, sep, period = str(value).partition("/")
    try:
        limit = Limit(float(count), parse_duration(period.strip()))
    except ValueError:
        limit = Limit(0.0, 0.0)
    if not (sep and 1 <= limit.count < float("inf") and limit.period > 0):
        raise ValueError(f"not a limit: {value!r} (write count/period, as 20/2m or 600/1h)")
    return limit


def parse_durations(value: str | tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """A comma-separated list of durations, largest first (``30m,10m``)."""
    if isinstance(value, tuple | list):
        items = [parse_duration(v) for v in value]
    else:
        items = [parse_duration(v) for v in value.split(",") if v.strip()]
    return tuple(sorted(set(items), reverse=True))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node is configured with. Defaults follow the contract."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./rtserver-data")
    # None: one node with the embedded hub. Set: Redis carries claims, presence
    # and fan-out, so that nodes sharing it and the data dir act as one server.
    redis_url: str | None = None
    # None: SQLite in the data dir (nodes may share it on one host). Set
    # (postgresql://...): every node on every host shares this PostgreSQL database,
    # which then holds the attachments and the signing key too.
    database_url: str | None = None
    # The product's rule: an instant request notifies several qualified experts
    # at the same time, and an expert answers in about 60 seconds on average.
    offer_batch: int = 5
    offer_ttl: float = 60.0
    request_ttl: float = 600.0
    # The product's rule: reminders 30 and 10 minutes before; start up to 10
    # minutes early; cancelled when not both joined 10 minutes after the start.
    reminders: tuple[float, ...] = (1800.0, 600.0)
    early_start: float = 600.0
    no_show: float = 600.0
    cancellation_fee: int = 500
    platform_fee: int = 20
    max_frame: int = 65536
    max_attachment: int = 26214400
    hello_timeout: float = 10.0
    # Extensions (documented in docs/protocol.md).
    # Seconds between protocol pings; a peer silent for two of them is dead.
    heartbeat: float = 25.0
    # Frames queued per socket before it counts as a slow reader (close 4408).
    send_queue: int = 256
    # How long a login token stays valid.
    token_ttl: float = 7 * 24 * 3600.0
    # How long a node's presence survives in Redis without a refresh: the
    # experts of a dead node stop being offered work within this time.
    presence_ttl: float = 6.0
    # A name for this node in logs and metrics; random when not set.
    node_id: str = field(default_factory=lambda: secrets.token_hex(4))
    log_level: str = "info"
    # Argon2id cost. The defaults are the library's recommendation; tests and
    # benches lower them to register thousands of users quickly.
    kdf_memory_kib: int = 65536
    kdf_time_cost: int = 3
    # Prefix of every Redis key, so that several servers can share one Redis.
    redis_prefix: str = "rt:"
    # synchronous=FULL: survive power loss too, at the cost of an fsync per commit.
    fsync: bool = False
    # Billing pauses by itself when a participant has been gone this long.
    disconnect_grace: float = 60.0
    # How often a running session's billing is vouched for (both connected).
    billing_check: float = 5.0
    # Chat messages and typing per user (all his sockets on a node): a rate per
    # second and a burst.
    message_rate: float = 10.0
    message_burst: float = 30.0
    # Most messages one transcript commit carries (1 turns group commit off).
    commit_batch: int = 256
    # How long a scheduled session is taken to last, for overlaps: an expert
    # cannot book two sessions that start closer than this.
    session_length: float = 3600.0
    # Cancelling a scheduled session this close to its start costs the
    # canceller the cancellation fee; earlier, it is free.
    late_cancel: float = 3600.0
    # How long after a session's end its customer may claim a refund.
    refund_window: float = 14 * 86400.0
    # A request's headers must be complete within this of its first byte, and a
    # body that receives nothing for this long is cut off (slow-loris). 20 s is
    # Apache mod_reqtimeout's header deadline: generous to a poor mobile link.
    request_timeout: float = 20.0
    # Connections served at once, WebSockets included; past it, 503. About
    # 13,000 idle sockets fit in a GiB (docs/benchmarks.md): 20,000 is well
    # above the benches' 5,000 experts and their customers.
    max_connections: int = 20000
    # Rate limits (docs/protocol.md, "Limits"), each count/period: count at once,
    # refilled at count per period. The defaults are far above what one person
    # does, so that only floods meet them; tests and benches raise the ones per
    # client address (all their clients are 127.0.0.1).
    # Failed logins per client address: 20, then one each 6 s. A brute force from
    # one address gets ~14,000 guesses a day; an office behind one NAT never waits.
    login_limit: Limit = field(default_factory=lambda: Limit(20, 120))
    # Failed logins per account, from any address: 10, then one a minute. A
    # password guessed from many addresses gets ~1,400 tries a day; its owner,
    # who succeeds, spends nothing.
    login_account_limit: Limit = field(default_factory=lambda: Limit(10, 600))
    # Accounts registered per client address: 30 at once (a class behind one
    # NAT), then 30 an hour.
    register_limit: Limit = field(default_factory=lambda: Limit(30, 3600))
    # Per customer, across nodes: requests created that were not accepted (open,
    # cancelled, expired, declined) in the last period. Those page experts for
    # nothing; requests that are taken do not count, so a busy customer or a
    # bench that keeps one in flight is never held back.
    create_limit: Limit = field(default_factory=lambda: Limit(30, 60))
    # Per user, over all his sockets: messages about requests and presence
    # changes (each may start a round of matching). Far above a person.
    request_message_limit: Limit = field(default_factory=lambda: Limit(60, 60))
    presence_limit: Limit = field(default_factory=lambda: Limit(30, 60))
    # Sockets one user may hold on one node; one more is refused (close 4429).
    # Ten tabs and devices is more than a person uses; a reconnect loop stops here.
    sockets_per_user: int = 10
    # Memory Argon2 may use at once: hashes run at most budget / kdf_memory_kib
    # at a time (8 at the defaults), so a flood of logins cannot exhaust memory.
    kdf_memory_budget_kib: int = 524288
    # How long a write waits for the database's write lock when another process
    # holds it (a backup, a sqlite3 shell), retrying with backoff, before it
    # answers `internal` (HTTP 503): under a command's 60 s deadline, so that the
    # answer says why.
    lock_wait: float = 30.0
    # Reverse proxies whose X-Forwarded-For is believed: comma-separated
    # addresses or networks, * for any. Empty: the TCP peer is the client, since
    # a header anyone can send must not choose whose rate limit is spent.
    trusted_proxies: str = ""
    # Whether the limits per client address also count loopback peers (127.0.0.1,
    # ::1). Off: a loopback peer is a proxy not named above, or the operator's own
    # tools, and one bucket for all its users would lock everyone out.
    limit_loopback: bool = False

    # With Redis: the longest one Redis call on a command's path may take (a
    # claim, a publish, a presence lookup). Redis answers in well under a
    # millisecond; a stall of a second is already an incident (a fork on a big
    # dataset). Past this the command answers `internal` ("try again"), or its
    # relay waits in the bus outbox, instead of holding its reply while Redis
    # is hung (SIGSTOP); 2 s keeps a reply within a few seconds.
    redis_timeout: float = 2.0
    # The longest one WebSocket command may run. Every part a command waits on is
    # bounded on its own (the write lock by lock_wait, Redis by redis_timeout):
    # this is the last guard against one that is not. Past it the command is
    # cut, answers `internal`, and the socket stays open.
    command_deadline: float = 60.0
    # How long an essential part (a background loop: the bus reader, outbox or
    # heartbeat, the timers, the transcript flusher, the database watch) may
    # fail before /healthz answers 503: past a blip (a Redis failover, one
    # failed commit), within a load balancer's first checks.
    health_grace: float = 5.0
    # Durable timers (reminders, waves, no-shows, each outbox message): a node
    # holds a timer by a lease it renews every third of this while the handler
    # runs; a node that dies loses it within this time. 30 s: three renewals
    # may fail in a row (a locked database) before another node runs it twice.
    timer_lease: float = 30.0
    # A failed timer is tried again after timer_retry, doubling (with jitter) up
    # to timer_retry_max, and retired into a dead letter after timer_attempts
    # tries in all. 2 s first: a wave or an expiry that failed on a passing
    # fault (the write lock held, Redis restarting) runs again within seconds,
    # not after the offer has gone stale. Doubling over 12 tries spans about an
    # hour (34-68 min with the jitter): a message rides out an e-mail or SMS
    # provider's outage of that order, and a failure that lasts longer reaches
    # a manager within the hour instead of being tried forever.
    timer_retry: float = 2.0
    timer_retry_max: float = 3600.0
    timer_attempts: int = 12

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Build settings from flag or ``RT_`` names; unknown names are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            name = key.lower()
            if name.startswith("rt_"):
                name = name[3:]
            name = name.replace("-", "_")
            if name not in names or raw is None or raw == "":
                continue
            kwargs[name] = _convert(name, raw)
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings that cannot work, with the reason."""
        if self.offer_batch < 1:
            raise ValueError("offer_batch must be at least 1")
        if not 0 <= self.platform_fee <= 100:
            raise ValueError("platform_fee is a percentage, 0 to 100")
        if self.cancellation_fee < 0:
            raise ValueError("cancellation_fee must not be negative")
        if self.max_frame < 1024:
            raise ValueError("max_frame must be at least 1024 bytes")
        if self.send_queue < 1:
            raise ValueError("send_queue must be at least 1")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.sockets_per_user < 1:
            raise ValueError("sockets_per_user must be at least 1")
        if self.kdf_memory_budget_kib < 1:
            raise ValueError("kdf_memory_budget_kib must be at least 1")
        # Zero here would spin a loop (billing checks, presence refreshes) or make
        # every session, token or offer end at once.
        positive = (
            "offer_ttl",
            "request_ttl",
            "hello_timeout",
            "heartbeat",
            "token_ttl",
            "presence_ttl",
            "billing_check",
            "session_length",
            "redis_timeout",
            "command_deadline",
            "request_timeout",
            "lock_wait",
            "timer_lease",
            "timer_retry",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.timer_retry_max < self.timer_retry:
            raise ValueError("timer_retry_max must be at least timer_retry")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("database_url must be a postgresql:// URL")
        if self.timer_attempts < 1:
            raise ValueError("timer_attempts must be at least 1")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_DURATIONS = {
    "offer_ttl",
    "request_ttl",
    "early_start",
    "no_show",
    "hello_timeout",
    "heartbeat",
    "token_ttl",
    "presence_ttl",
    "disconnect_grace",
    "billing_check",
    "session_length",
    "late_cancel",
    "refund_window",
    "redis_timeout",
    "command_deadline",
    "health_grace",
    "request_timeout",
    "lock_wait",
    "timer_lease",
    "timer_retry",
    "timer_retry_max",
}
_LIMITS = {
    "login_limit",
    "login_account_limit",
    "register_limit",
    "create_limit",
    "request_message_limit",
    "presence_limit",
}
_FLOATS = {"message_rate", "message_burst"}
_INTS = {
    "port",
    "offer_batch",
    "cancellation_fee",
    "platform_fee",
    "max_frame",
    "max_attachment",
    "send_queue",
    "kdf_memory_kib",
    "kdf_time_cost",
    "commit_batch",
    "max_connections",
    "sockets_per_user",
    "kdf_memory_budget_kib",
    "timer_attempts",
}


def _convert(name: str, raw: Any) -> Any:
    if name in _DURATIONS:
        return parse_duration(raw)
    if name in _INTS:
        return int(raw)
    if name in _LIMITS:
        return parse_limit(raw)
    if name in _FLOATS:
        return float(raw)
    if name == "reminders":
        return parse_durations(raw)
    if name in ("fsync", "limit_loopback"):
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if name == "data_dir":
        return Path(raw)
    return raw
