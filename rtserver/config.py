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
    # The seeds: "notifications are sent to a number of qualified experts at the
    # same time" and "the average response time is about 60 seconds".
    offer_batch: int = 5
    offer_ttl: float = 60.0
    request_ttl: float = 600.0
    # The seeds: reminders 30 and 10 minutes before; start up to 10 minutes
    # early; cancelled when not both joined 10 minutes after the start.
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
    # Chat messages and typing per socket: a rate per second and a burst.
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
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

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
}


def _convert(name: str, raw: Any) -> Any:
    if name in _DURATIONS:
        return parse_duration(raw)
    if name in _INTS:
        return int(raw)
    if name in _FLOATS:
        return float(raw)
    if name == "reminders":
        return parse_durations(raw)
    if name == "fsync":
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if name == "data_dir":
        return Path(raw)
    return raw
