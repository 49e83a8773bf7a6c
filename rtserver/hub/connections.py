"""This node's sockets: bounded send queues and a registry by user.

Fan-out never waits for a reader: :meth:`Connection.send_nowait` hands an
encoded frame to the socket at once when nothing waits before it and the
transport takes writes (the server's direct path, :attr:`Connection.direct`);
otherwise it puts it on the socket's bounded queue and, when the queue is full,
marks the socket as a slow reader, to be closed with 4408 by its writer. The
socket's own writer task is the only one that awaits the network: it drains
the queue once the transport takes writes again, and until it has, every
frame goes through the queue, so that the order is kept.

The queue is a plain list and the writer sleeps on a future made only when it
finds the queue empty: queueing a frame costs an append (and, for the first
frame after a lull, one wake-up), not a memory stream and an event per frame,
which the profile of issue 9 showed on every frame (docs/architecture.md). A
list, not a ``deque``: an empty deque takes 760 bytes and an empty list 56,
and thousands of idle sockets each hold one; the queue is short (the writer
drains it as it fills) and bounded, so taking from its front stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

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

    # Thousands of these live at once: no per-instance dict.
    __slots__ = (
        "_held",
        "_on_overflow",
        "_queue",
        "_waiter",
        "close_code",
        "close_reason",
        "closed",
        "codec",
        "command",
        "command_overdue",
        "command_since",
        "direct",
        "id",
        "joined",
        "overflowed",
        "queue_size",
        "user",
        "writing",
    )

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
        # Encoded frames waiting for the writer, at most queue_size of them.
        self._queue: list[Frame] = []
        # The writer's wake-up, there only while it waits on an empty queue.
        self._waiter: asyncio.Future[None] | None = None
        # The socket's own way to send a frame at once, when the server offers one
        # (rtserver.http.websocket): it returns False when the transport does not
        # take writes now, and the frame is queued for the writer instead.
        self.direct: Callable[[Frame], bool] | None = None
        # The writer has taken a frame off the queue and not yet sent it: until it
        # has, no frame may go out directly (it would overtake that one).
        self.writing = False
        # No more frames are taken (close_queue); the writer drains and stops.
        self.closed = False
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
        # The task running this socket's command, and since when (monotonic), while
        # one runs: the node's watchdog ends a command past --command-deadline
        # (rtserver.app.Node.handle).
        self.command: asyncio.Task[Any] | None = None
        self.command_since = 0.0
        self.command_overdue = False

    def send_nowait(self, frame: dict[str, Any]) -> bool:
        """Queue a frame; False if the socket is closed or was just found too slow."""
        return self.send_encoded_nowait(self.codec.encode(frame))

    def send_encoded_nowait(self, data: Frame) -> bool:
        """Queue an already encoded frame (fan-out encodes once per codec)."""
        if self.closed:
            return False
        if self._held is not None and len(self._held) < self.queue_size:
            self._held.append(data)
            return True
        queue = self._queue
        if (
            not queue
            and not self.writing
            and self._held is None
            and self.direct is not None
            and self.direct(data)
        ):
            # Nothing waits before it: out now, in order, with no wake-up of the writer.
            return True
        if len(queue) >= self.queue_size:
            self.overflowed = True
            log.warning("slow reader conn=%s user=%s: send queue full", self.id, self.user.id)
            self.close_queue()
            self._on_overflow(self)
            return False
        queue.append(data)
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pop_nowait(self) -> Frame | None:
        """The next queued frame, or None when the queue is empty (the writer's side).

        The writer calls it until None, sending each frame before the next call:
        from the first frame taken to that None, :attr:`writing` holds frames off
        the direct path, so that none overtakes the one being sent.
        """
        queue = self._queue
        if queue:
            self.writing = True
            return queue.pop(0)
        self.writing = False
        return None

    async def wait_queued(self) -> bool:
        """Wait until a frame is queued; False once the queue is closed and drained.

        Only the socket's writer calls this, so there is at most one waiter.
        """
        while not self._queue:
            if self.closed:
                return False
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
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
        self.closed = True
        self._wake()

    def close_after_queue(self, code: int, reason: str = "account suspended") -> None:
        """Deliver what is queued, then close the socket with ``code``."""
        self.close_code = code
        self.close_reason = reason
        self.close_queue()


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

    def connected(self, user_ids: Iterable[str]) -> set[str]:
        """Those of these users with a socket on this node (without copying
        :meth:`users`: a wave asks this of a few dozen among thousands)."""
        by_user = self._by_user
        return {u for u in user_ids if u in by_user}

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
