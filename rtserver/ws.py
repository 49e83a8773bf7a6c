"""The WebSocket adapter: a thin pump between one socket and the hub.

It holds no domain logic. It authenticates the socket (``hello``), then runs
two tasks: the reader decodes each frame, hands the command to the node and
queues the reply; the writer drains the socket's bounded queue into the
socket. Events from anywhere reach the socket only through that queue (a
``deque`` with a wake-up, no stream or event per frame: see
:mod:`rtserver.hub.connections`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from rtserver.clock import to_wire
from rtserver.errors import BadFrame, RateLimited, RtError, Unauthenticated
from rtserver.hub.connections import CLOSE_SLOW_READER, Connection
from rtserver.protocol import Codec, FrameError, choose_subprotocol, error, ok, parse_frame
from rtserver.schemas import Hello
from rtserver.storage.db import new_id
from rtserver.storage.users import User

if TYPE_CHECKING:
    from rtserver.app import Node

log = logging.getLogger("rtserver.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_GOING_AWAY = 1001
# The user already holds --sockets-per-user sockets on this node (an extension).
CLOSE_TOO_MANY_SOCKETS = 4429


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Starlette endpoint for ``/ws``."""
    node: Node = websocket.app.state.node
    await Socket(node, websocket).run()


class Socket:
    """One client socket, from handshake to close."""

    def __init__(self, node: Node, websocket: WebSocket) -> None:
        self.node = node
        self.ws = websocket
        self.codec = Codec(binary=False)

    async def run(self) -> None:
        """Accept, authenticate, then pump until either side closes."""
        offered = list(self.ws.scope.get("subprotocols", []))
        subprotocol = choose_subprotocol(offered)
        self.codec = Codec.for_subprotocol(subprotocol)
        await self.ws.accept(subprotocol=subprotocol)
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
        peer = self.ws.client.host if self.ws.client else None
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
        conn = Connection(
            new_id("c"), user, self.codec, node.settings.send_queue, on_overflow=self._overflow
        )
        first = node.registry.add(conn)
        node.sockets[conn.id] = self
        node.metrics.connections.inc()
        self.conn = conn
        log.info("socket open conn=%s user=%s role=%s", conn.id, user.id, user.role)
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
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write, conn, tg.cancel_scope)
                tg.start_soon(self._expire, conn, token_exp)
                await self._read(conn)
                tg.cancel_scope.cancel()
        finally:
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

    async def _expire(self, conn: Connection, token_exp: float) -> None:
        """The token of this socket runs out: the socket ends with it (4401).

        The client logs in again and reconnects; a socket never outlives the
        credentials it was opened with. (Expiry is wall-clock time, as the
        token's own check is.)
        """
        await anyio.sleep(max(0.0, token_exp - time.time()))
        log.info("token expired conn=%s user=%s", conn.id, conn.user.id)
        conn.close_after_queue(CLOSE_UNAUTHENTICATED, "token expired")

    async def _authenticate(self) -> tuple[User, Any, float] | None:
        """Wait for ``hello``; close 4401 on anything else, or on silence."""
        node = self.node
        try:
            with anyio.fail_after(node.settings.hello_timeout):
                message = await self.ws.receive()
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
        data = self.codec.encode(frame)
        try:
            if isinstance(data, bytes):
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def _close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.close(code, reason)

    async def _read(self, conn: Connection) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes", b"")
            reply = await self.node.handle(conn, data)
            if reply is not None:
                conn.send_nowait(reply)

    async def _write(self, conn: Connection, scope: anyio.CancelScope) -> None:
        # The ASGI message is built here rather than by send_text/send_bytes: one
        # call less per frame on the hottest path of the node.
        send = self.ws.send
        try:
            while await conn.wait_queued():
                while (data := conn.pop_nowait()) is not None:
                    if isinstance(data, bytes):
                        await send({"type": "websocket.send", "bytes": data})
                    else:
                        await send({"type": "websocket.send", "text": data})
        except (WebSocketDisconnect, RuntimeError, OSError):
            scope.cancel()
            return
        if conn.overflowed:
            await self._close(CLOSE_SLOW_READER, "reader too slow")
        elif conn.close_code is not None:
            await self._close(conn.close_code, conn.close_reason)
        else:
            await self._close(self.close_code, "server going away")
        scope.cancel()

    close_code = CLOSE_GOING_AWAY

    def _overflow(self, conn: Connection) -> None:
        self.node.metrics.slow_closes.inc()
        log.warning("closing slow reader conn=%s user=%s code=4408", conn.id, conn.user.id)

    def going_away(self) -> None:
        """Shutdown: flush what is queued, then close with 1001."""
        self.close_code = CLOSE_GOING_AWAY
        self.conn.close_queue()


def _seconds(value: float) -> int | float:
    """Whole seconds as an integer (the contract's ``25``), a fraction as is."""
    return int(value) if value == int(value) else value
