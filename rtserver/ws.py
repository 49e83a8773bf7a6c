"""The WebSocket adapter: a thin pump between one socket and the hub.

It holds no domain logic. It authenticates the socket (``hello``), then the
socket's own task reads: it decodes each frame, hands the command to the node
and sends the reply. Replies and events from anywhere go through the socket's
:class:`~rtserver.hub.connections.Connection`: written at once when the
transport takes writes and nothing waits before them (the server's
``rtserver.frames`` extension, :mod:`rtserver.http.websocket`), else put on its
bounded queue, which one more task, the writer, drains into the socket through
the ASGI ``send`` (a list with a wake-up, no stream or event per frame).

It speaks ASGI to uvicorn directly, without Starlette's ``WebSocket`` wrapper,
and runs plain asyncio, not an anyio task group: an idle socket is what
thousands of clients hold, and each wrapper, task and cancel scope it holds is
kept for its whole life (issue 9, docs/benchmarks.md: the task group, its
token-expiry sleeper and the wrapper were about 7 KB of the 40 KB a socket took).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import anyio
from starlette.types import Message, Receive, Scope, Send

from rtserver.clock import to_wire
from rtserver.errors import BadFrame, RateLimited, RtError, Unauthenticated
from rtserver.hub.connections import CLOSE_SLOW_READER, Connection
from rtserver.protocol import Codec, FrameError, choose_subprotocol, error, ok, parse_frame
from rtserver.schemas import Hello

if TYPE_CHECKING:
    from rtserver.app import Node
    from rtserver.storage.users import User

log = logging.getLogger("rtserver.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_GOING_AWAY = 1001
# The user already holds --sockets-per-user sockets on this node (an extension).
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_INTERNAL = 1011
# What sending on a socket the client has left raises: uvicorn's ClientDisconnected
# is an OSError; a send after the close, a RuntimeError.
_GONE = (OSError, RuntimeError)
# Socket ids: this process's random prefix and a count (unique across nodes and
# restarts without a call to the system's random source per socket, as new_id makes).
_SOCKET_PREFIX = secrets.token_hex(4)
_SOCKET_IDS = (f"c_{_SOCKET_PREFIX}_{n}" for n in itertools.count(1))


class _Endpoint:
    """The ASGI app of ``/ws``: one :class:`Socket` per connection.

    An object, not a function, so that Starlette's route hands it the raw ASGI
    ``receive`` and ``send`` instead of wrapping them in a ``WebSocket``.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await Socket(scope["app"].state.node, scope, receive, send).run()


websocket_endpoint = _Endpoint()


class Socket:
    """One client socket, from handshake to close."""

    # Thousands of these live at once: no per-instance dict.
    __slots__ = ("close_code", "codec", "conn", "node", "receive", "scope", "send")

    def __init__(self, node: Node, scope: Scope, receive: Receive, send: Send) -> None:
        self.node = node
        self.scope = scope
        self.receive = receive
        self.send = send
        self.codec = Codec(binary=False)
        self.conn: Connection | None = None
        # The close code once the queue is drained, unless the connection names one.
        self.close_code = CLOSE_GOING_AWAY

    async def run(self) -> None:
        """Accept, authenticate, then pump until either side closes."""
        if (await self.receive())["type"] != "websocket.connect":
            return
        subprotocol = choose_subprotocol(list(self.scope.get("subprotocols", ())))
        self.codec = Codec.for_subprotocol(subprotocol)
        try:
            await self.send({"type": "websocket.accept", "subprotocol": subprotocol})
        except _GONE:
            return
        hello = await self._authenticate()
        if hello is None:
            return
        user, hello_id, token_exp = hello
        node = self.node
        # Checked and added with no await between, so that sockets opened at once
        # cannot all pass. The newcomer is refused, not the oldest closed: a client
        # that reconnects on close would otherwise push out the next oldest, round
        # and round; the refused one retries with its backoff and gets in once a
        # socket closes (a dead one within two heartbeats).
        client = self.scope.get("client")
        peer = client[0] if client else None
        if (
            node.limits.address(peer) is not None
            and len(node.registry.of(user.id)) >= node.settings.sockets_per_user
        ):
            log.warning(
                "socket refused user=%s: already %d sockets (close 4429)",
                user.id,
                node.settings.sockets_per_user,
            )
            node.metrics.error(RateLimited.code)
            refused = RateLimited(
                f"too many sockets: at most {node.settings.sockets_per_user} per user"
            )
            await self._send_now(error(hello_id, refused))
            await self._close(CLOSE_TOO_MANY_SOCKETS, "too many sockets for this user")
            return
        conn = self.conn = Connection(
            next(_SOCKET_IDS),
            user,
            self.codec,
            node.settings.send_queue,
            on_overflow=self._overflow,
        )
        # uvicorn's own protocols offer no such path: there every frame is queued
        # for the writer.
        frames = self.scope.get("extensions", {}).get("rtserver.frames")
        if frames is not None:
            conn.direct = frames["send_nowait"]
        first = node.registry.add(conn)
        node.sockets[conn.id] = self
        node.metrics.connections.inc()
        log.info("socket open conn=%s user=%s role=%s", conn.id, user.id, user.role)
        loop = asyncio.get_running_loop()
        # The token's end closes the socket (4401): the client logs in again and
        # reconnects, so that a socket never outlives the credentials it was opened
        # with. A timer, not a sleeping task: it costs a handle, not a task and its
        # frame, for the socket's whole life. (Expiry is wall-clock time, as the
        # token's own check is.)
        expiry = loop.call_at(loop.time() + max(0.0, token_exp - time.time()), self._expired, conn)
        writer: asyncio.Task[None] | None = None
        try:
            if first:
                await node.bus.user_connected(user.id)
                if user.role == "expert" and user.presence == "available":
                    await node.hub.expert_free(user.id)
            reply = ok(
                hello_id,
                user=user.public(),
                server_time=to_wire(node.clock.now()),
                heartbeat=_seconds(node.settings.heartbeat),
            )
            conn.send_first([reply, await node.hub.state(user)])
            # The writer is this socket's one extra task; the reader is this one.
            # The writer ends by closing the socket, which ends the reader (uvicorn
            # hands it a disconnect); the reader ends when the client leaves, and the
            # writer is cancelled then. An error in either ends both.
            writer = loop.create_task(self._write(conn))
            await self._read(conn)
        finally:
            expiry.cancel()
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await node.rooms.disconnected(conn)
            node.sockets.pop(conn.id, None)
            node.metrics.connections.dec()
            last = node.registry.remove(conn)
            conn.close_queue()
            if last:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await node.bus.user_disconnected(user.id)
            log.info("socket closed conn=%s user=%s", conn.id, user.id)

    @staticmethod
    def _expired(conn: Connection) -> None:
        log.info("token expired conn=%s user=%s", conn.id, conn.user.id)
        conn.close_after_queue(CLOSE_UNAUTHENTICATED, "token expired")

    async def _authenticate(self) -> tuple[User, Any, float] | None:
        """Wait for ``hello``; close 4401 on anything else, or on silence."""
        node = self.node
        try:
            async with asyncio.timeout(node.settings.hello_timeout):
                message = await self.receive()
        except TimeoutError:
            await self._close(CLOSE_UNAUTHENTICATED, "no hello in time")
            return None
        if message["type"] == "websocket.disconnect":
            return None
        data = message.get("text")
        if data is None:
            data = message.get("bytes", b"")
        re = None
        try:
            cmd = parse_frame(self.codec.decode(data))
            re = cmd.id
            if not isinstance(cmd, Hello):
                raise Unauthenticated("the first frame must be hello")
            user_id, token_exp = node.auth.verify_claims(cmd.token)
            user = await node.hub.users.by_id(user_id)
            if user is None:
                raise Unauthenticated("no such user")
            if user.suspended:
                raise Unauthenticated("account suspended")
        except (FrameError, BadFrame) as exc:
            # Whatever is wrong with a first frame, a frame that does not decode
            # included, it is not a hello: ``unauthenticated`` (docs/protocol.md).
            err = exc.error if isinstance(exc, FrameError) else exc
            frame_re = exc.re if isinstance(exc, FrameError) else None
            await self._send_now(error(frame_re, Unauthenticated(err.message)))
            await self._close(CLOSE_UNAUTHENTICATED, "hello expected")
            return None
        except RtError as exc:
            await self._send_now(error(re, exc))
            await self._close(CLOSE_UNAUTHENTICATED, exc.message[:100])
            return None
        return user, cmd.id, token_exp

    async def _send_now(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(*_GONE):
            await self.send(_message(self.codec.encode(frame)))

    async def _close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(*_GONE):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def _read(self, conn: Connection) -> None:
        receive = self.receive
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if conn.closed:
                continue  # the socket is closing: what the client still sends is dropped
            data = message.get("text")
            if data is None:
                data = message.get("bytes", b"")
            reply = await self.node.handle(conn, data)
            if reply is not None:
                conn.send_nowait(reply)

    async def _write(self, conn: Connection) -> None:
        # The ASGI message is built here: one call less per frame on the hottest
        # path of the node.
        send = self.send
        try:
            while await conn.wait_queued():
                while (data := conn.pop_nowait()) is not None:
                    if isinstance(data, bytes):
                        await send({"type": "websocket.send", "bytes": data})
                    else:
                        await send({"type": "websocket.send", "text": data})
        except _GONE:
            return  # the client is gone: the reader has its disconnect
        except Exception:
            # Closed, so that the reader gets its disconnect and the socket ends.
            log.exception("writer failed conn=%s user=%s", conn.id, conn.user.id)
            await self._close(CLOSE_INTERNAL, "internal error")
            raise
        if conn.overflowed:
            await self._close(CLOSE_SLOW_READER, "reader too slow")
        elif conn.close_code is not None:
            await self._close(conn.close_code, conn.close_reason)
        else:
            await self._close(self.close_code, "server going away")

    def _overflow(self, conn: Connection) -> None:
        self.node.metrics.slow_closes.inc()
        log.warning("closing slow reader conn=%s user=%s code=4408", conn.id, conn.user.id)

    def going_away(self) -> None:
        """Shutdown: flush what is queued, then close with 1001."""
        self.close_code = CLOSE_GOING_AWAY
        if self.conn is not None:
            self.conn.close_queue()


def _message(data: bytes | str) -> Message:
    if isinstance(data, bytes):
        return {"type": "websocket.send", "bytes": data}
    return {"type": "websocket.send", "text": data}


def _seconds(value: float) -> int | float:
    """Whole seconds as an integer (the contract's ``25``), a fraction as is."""
    return int(value) if value == int(value) else value
