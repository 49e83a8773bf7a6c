"""This node's sockets: bounded send queues and a registry by user.

Fan-out never waits for a reader: :meth:`Connection.send_nowait` puts an
encoded frame on the socket's bounded queue and, when the queue is full,
marks the socket as a slow reader, to be closed with 4408 by its writer. The
socket's own writer task is the only one that awaits the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from rtserver.protocol import Codec
from rtserver.storage.users import User

log = logging.getLogger("rtserver.connections")

CLOSE_SLOW_READER = 4408
# A manager suspended the account: the socket is closed, the client must not reconnect.
CLOSE_SUSPENDED = 4403
# The event that closes every socket of its user after it is delivered.
ACCOUNT_SUSPENDED = "account.suspended"
Frame = bytes | str


class Connection:
    """One authenticated socket of this node."""

    def __init__(
        self,
        conn_id: str,
        user: User,
        codec: Codec,
        queue_size: int,
        on_overflow: Callable[[Connection], None] = lambda c: None,
    ) -> None:
        self.id = conn_id
        self.user = user
        self.codec = codec
        self.queue_size = queue_size
        self.send_stream: MemoryObjectSendStream[Frame]
        self.receive_stream: MemoryObjectReceiveStream[Frame]
        self.send_stream, self.receive_stream = anyio.create_memory_object_stream[Frame](
            max_buffer_size=queue_size
        )
        self.overflowed = False
        self._on_overflow = on_overflow
        # While the hello reply and the state snapshot are being made, events wait
        # here, so that the client sees ok, then state, then what came after.
        self._held: list[Frame] | None = []
        # Rooms this socket has joined (filled in by the rooms).
        self.joined: set[str] = set()
        # Set when the server closes the socket for a reason of its own (4403).
        self.close_code: int | None = None
        self.close_reason = ""

    def send_nowait(self, frame: dict[str, Any]) -> bool:
        """Queue a frame; False if the socket is closed or was just found too slow."""
        return self.send_encoded_nowait(self.codec.encode(frame))

    def send_encoded_nowait(self, data: Frame) -> bool:
        """Queue an already encoded frame (fan-out encodes once per codec)."""
        if self.overflowed:
            return False
        if self._held is not None and len(self._held) < self.queue_size:
            self._held.append(data)
            return True
        try:
            self.send_stream.send_nowait(data)
        except anyio.WouldBlock:
            self.overflowed = True
            log.warning("slow reader conn=%s user=%s: send queue full", self.id, self.user.id)
            self.send_stream.close()
            self._on_overflow(self)
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def send_first(self, frames: list[dict[str, Any]]) -> None:
        """Queue the hello reply and ``state``, then every event held meanwhile."""
        held, self._held = self._held or [], None
        for frame in frames:
            self.send_nowait(frame)
        for data in held:
            self.send_encoded_nowait(data)

    def close_queue(self) -> None:
        """No more frames: the writer drains what is queued and stops."""
        self.send_stream.close()

    def close_after_queue(self, code: int, reason: str = "account suspended") -> None:
        """Deliver what is queued, then close the socket with ``code``."""
        self.close_code = code
        self.close_reason = reason
        self.send_stream.close()


class Registry:
    """Connections of this node by user. Not a global: one per app."""

    def __init__(self) -> None:
        self._by_user: dict[str, set[Connection]] = {}

    def add(self, conn: Connection) -> bool:
        """Register a socket; True if it is its user's first on this node."""
        conns = self._by_user.setdefault(conn.user.id, set())
        conns.add(conn)
        return len(conns) == 1

    def remove(self, conn: Connection) -> bool:
        """Forget a socket; True if it was its user's last on this node."""
        conns = self._by_user.get(conn.user.id)
        if conns is None:
            return False
        conns.discard(conn)
        if conns:
            return False
        del self._by_user[conn.user.id]
        return True

    def of(self, user_id: str) -> set[Connection]:
        """A user's sockets on this node."""
        return self._by_user.get(user_id, set())

    def users(self) -> set[str]:
        """Users with at least one socket on this node."""
        return set(self._by_user)

    def all(self) -> list[Connection]:
        """Every socket of this node."""
        return [c for conns in self._by_user.values() for c in conns]

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_user.values())

    def deliver(
        self, user_ids: Iterable[str], event: dict[str, Any], skip: Connection | None = None
    ) -> int:
        """Queue an event on every local socket of these users; how many got it.

        The event is encoded once per codec, not once per socket.
        """
        encoded: dict[bool, Frame] = {}
        sent = 0
        # Decided once per event, not per socket: this loop is the fan-out's hot path.
        closes = event.get("type") == ACCOUNT_SUSPENDED
        for uid in user_ids:
            for conn in self._by_user.get(uid, ()):
                if conn is skip:
                    continue
                data = encoded.get(conn.codec.binary)
                if data is None:
                    data = encoded[conn.codec.binary] = conn.codec.encode(event)
                sent += conn.send_encoded_nowait(data)
                if closes:
                    conn.close_after_queue(CLOSE_SUSPENDED)
        return sent

    def statistics(self) -> dict[str, int]:
        """Counts for logs and benches."""
        return {"connections": len(self), "users": len(self._by_user)}
