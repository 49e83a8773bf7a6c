"""Reconnection policy, pure: how long to wait, and whether to come back at all.

The same rules as the browser client (rtserver/static/conn.js): exponential
backoff from 1 s up to 30 s, each delay spread by a random half so that the
clients of a node that died do not all come back in the same instant; a node
going away (1001, 1012) is reconnected to at once (spread over 250 ms), since
another node (or the same one restarted) is expected to serve.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

# Close codes (RFC 6455 and the contract's 44xx).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SUSPENDED = 4403
CLOSE_SLOW_READER = 4408
CLOSE_TOO_MANY_SOCKETS = 4429


class CloseAction(enum.Enum):
    """What a close code tells the client to do."""

    RECONNECT = "reconnect"  # with backoff
    RECONNECT_SOON = "reconnect_soon"  # the node is going away: another one serves
    STOP_AUTH = "stop_auth"  # the token is no longer valid: log in again
    STOP_SUSPENDED = "stop_suspended"  # never come back


def close_action(code: int | None) -> CloseAction:
    """The action for a socket closed with ``code`` (None: no close frame, a network loss).

    1009 (a frame too large) is our own bug, not the network's, but a later
    frame may fit, so it reconnects with backoff like any other failure.
    """
    if code == CLOSE_UNAUTHENTICATED:
        return CloseAction.STOP_AUTH
    if code == CLOSE_SUSPENDED:
        return CloseAction.STOP_SUSPENDED
    if code in (CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART):
        return CloseAction.RECONNECT_SOON
    return CloseAction.RECONNECT


@dataclass(frozen=True, slots=True)
class Backoff:
    """Jittered exponential backoff: ``base * 2**attempt`` capped at ``cap``, times a
    random factor in ``[1 - jitter, 1]``; ``soon`` is the first delay after a going-away."""

    base: float = 1.0
    cap: float = 30.0
    soon: float = 0.25
    jitter: float = 0.5

    def delay(self, attempt: int, action: CloseAction, random: Callable[[], float]) -> float:
        """Seconds to wait before attempt ``attempt`` (0 for the first after a success)."""
        if action is CloseAction.RECONNECT_SOON and attempt == 0:
            raw = self.soon
        else:
            raw = min(self.cap, self.base * 2 ** min(attempt, 32))
        return raw * (1 - self.jitter + self.jitter * random())
