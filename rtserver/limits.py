"""The node's rate limits: which bucket each command and each HTTP route spends from.

The buckets are :class:`rtserver.core.ratelimit.Limiter` maps, one per limit,
built once from the settings and kept by the node (nothing global). Limits per
user count every socket of the user on this node; limits per client address
count the TCP peer (or what a trusted proxy says it is: ``--trusted-proxies``).
Over a limit: :class:`rtserver.errors.RateLimited` with the seconds to wait,
before anything is read or stored. Memory is bounded by ``MAX_KEYS`` per limit.
"""

from __future__ import annotations

import ipaddress
import math
import time

from rtserver.config import Settings
from rtserver.core.ratelimit import Limit, Limiter, address_key
from rtserver.errors import RateLimited
from rtserver.protocol import retry_seconds
from rtserver.schemas import Command, MessageSend, Presence, RequestMessage, Typing


class Limits:
    """Every rate limit of one node."""

    def __init__(self, settings: Settings) -> None:
        self.limit_loopback = settings.limit_loopback
        # Failed logins, by client address and by account (its e-mail key).
        self.login = Limiter(settings.login_limit)
        self.login_account = Limiter(settings.login_account_limit)
        self.register = Limiter(settings.register_limit)
        # Chat messages and typing share one bucket per user, as they did per socket.
        burst, rate = settings.message_burst, settings.message_rate
        chat = Limiter(Limit(burst, burst / rate if rate > 0 else math.inf))
        self._commands: dict[type[Command], tuple[Limiter, str]] = {
            RequestMessage: (Limiter(settings.request_message_limit), "too many messages"),
            Presence: (Limiter(settings.presence_limit), "too many presence changes"),
            MessageSend: (chat, "too many messages"),
            Typing: (chat, "too many messages"),
        }

    @staticmethod
    def now() -> float:
        """The limits' clock: monotonic, the node's own (not the domain clock)."""
        return time.monotonic()

    def spend(self, limiter: Limiter, key: str | None, what: str) -> None:
        """Spend one of ``key``'s tokens; :class:`RateLimited` (nothing spent) if none is left.

        ``key`` None: a client that is not limited (see :meth:`address`).
        """
        if key is None:
            return
        wait = limiter.take(key, self.now())
        if wait:
            raise RateLimited(f"{what}: try again in {retry_seconds(wait)} s", retry_after=wait)

    def refund(self, limiter: Limiter, key: str | None) -> None:
        """Give back a token spent on something that does not count (a login that worked)."""
        if key is None:
            return
        limiter.give(key, self.now())

    def command(self, user_id: str, cmd: Command) -> None:
        """Spend from the user's bucket for this command, if it has one."""
        entry = self._commands.get(type(cmd))
        if entry is not None:
            limiter, what = entry
            self.spend(limiter, user_id, what)

    def address(self, host: str | None) -> str | None:
        """The key of a client address (IPv6 by its /64); None for a loopback peer,
        unless ``--limit-loopback``.

        A loopback peer is this host: a reverse proxy not named in
        ``--trusted-proxies`` (every user would share its one bucket, and thirty
        registrations an hour would lock the whole site out), or the operator's
        own tools and benches (the shared bench's W3 opens 3,000 sockets of one
        user from here). Limits per account and per user still apply; the cap on
        sockets per user follows this rule too (``ws.Socket``).
        """
        if not self.limit_loopback and _is_loopback(host):
            return None
        return address_key(host)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
