"""uvicorn's ``websockets-sansio`` protocol, holding less per socket.

An idle socket is what a node holds thousands of, so what each one keeps for
its whole life is the node's memory (issue 9, docs/benchmarks.md). uvicorn's
protocol keeps three things it does not need to:

- its receive queue is an ``asyncio.Queue``: four ``deque``s (three in the
  queue, one in its ``Event``) of 760 bytes each, for a queue that holds one
  message at a time (uvicorn pauses reading until the app takes it). Here it is
  a list and a future;
- its ``writable`` flag is an ``asyncio.Event``: one more deque. Here it is a
  flag and a list of waiters made only while the transport is paused;
- the handshake's request and response stay referenced (the request by the
  frame parser of ``websockets``, the response by uvicorn) with their headers,
  and the scope holds a third copy of the request's: about 4 KB with the
  bench's few headers, more with a browser's (cookies, user agent). Here no
  request or response object is made (below), and the scope's headers are
  dropped once the 101 is sent: the app (``rtserver.ws``) reads what it needs
  of the scope (subprotocols, client address) before it accepts.

Each replacement offers just the methods uvicorn calls (``put_nowait``, ``get``,
``empty``; ``set``, ``clear``, ``wait``); ``tests/test_socket.py`` runs the
sockets through it.

It also answers the opening handshake itself, from the request h11 has already
parsed (:meth:`LeanWebSocketProtocol.upgrade`). uvicorn writes that request
back to bytes and has ``websockets`` parse it again, build a ``Request`` and a
``Response`` with their ``Headers``, format a date and serialise the response:
about 110 µs of the 0.8 ms a socket costs to open (issue 9, docs/benchmarks.md).
What RFC 6455 asks of the request is checked by ``websockets`` itself
(:func:`check_handshake`: ``ServerProtocol.process_request`` on h11's parsed
headers); no extension is negotiated, as permessage-deflate is off (``server.py``), and the
subprotocol is the one the app accepts with. ``websockets`` then only frames:
its protocol starts ``OPEN``, built once (uvicorn's ``__init__`` would build one
waiting for a request, then be replaced).

Frames the app sends in one turn of the loop go out in one write: they wait in
``websockets``' output for a ``call_soon`` flush (the hello's ``ok`` and
``state``: one system call, not two).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, WebSocketScope, WebSocketSendEvent
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, InvalidState
from websockets.headers import parse_subprotocol
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

if TYPE_CHECKING:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("rtserver.http")
# The logger uvicorn's protocol logs to (and hands websockets).
_UVICORN_LOG = logging.getLogger("uvicorn.error")


@dataclass(frozen=True, slots=True)
class Refusal:
    """An opening handshake refused: the status, why, and the whole HTTP response
    (made by ``websockets``), after which the connection is closed."""

    status: int
    reason: str
    response: bytes


def check_handshake(
    checker: ServerProtocol, method: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, list[str]] | Refusal:
    """Check an opening handshake (RFC 6455, section 4.2.1) with ``websockets``: the
    ``Sec-WebSocket-Accept`` value and the subprotocols offered, or the refusal.

    ``headers`` are h11's, already parsed: they are handed to ``websockets`` as
    its ``Request`` instead of being written back to bytes for it to parse again
    (uvicorn's way; about 110 µs of the 0.8 ms a socket cost to open). The checks
    are ``ServerProtocol.process_request``'s (``checker`` negotiates nothing: no
    extension, the subprotocol is the app's); a refusal's response is
    ``ServerProtocol.accept``'s, as ``websockets`` answers it (405, 505, 426 or
    400, with its reason).
    """
    request = Request(
        "/",
        Headers([(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]),
        method=method.decode("latin-1"),
        protocol="HTTP/" + http_version.decode("latin-1"),
    )
    try:
        accept, _extensions, _protocol = checker.process_request(request)
        offered = [
            str(subprotocol)
            for value in request.headers.get_all("Sec-WebSocket-Protocol")
            for subprotocol in parse_subprotocol(value)
        ]
    except InvalidHandshake as exc:
        # The rare path: websockets makes the response it would have sent.
        refuser = ServerProtocol(logger=_UVICORN_LOG)
        response = refuser.accept(request)
        if response.status_code == 101:  # only the subprotocol list was malformed
            response = refuser.reject(400, f"Failed to open a WebSocket connection: {exc}.\n")
        refuser.send_response(response)
        return Refusal(response.status_code, str(exc), b"".join(refuser.data_to_send()))
    return accept.encode("ascii"), offered


class _Inbox:
    """The socket's received events for its one reader, the app's ``receive``."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        """Add an event and wake the reader."""
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> ASGIReceiveEvent:
        """The oldest event, once there is one.

        One reader at a time (an ASGI app reads its socket from one task): a
        second would take the first's wake-up.
        """
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.pop(0)

    def empty(self) -> bool:
        """True if no event waits."""
        return not self._items


class _Gate:
    """Open while the transport takes writes; senders wait while it is paused."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        """Open, and wake every waiting sender."""
        self._open = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Close: senders wait until :meth:`set`."""
        self._open = False

    def is_set(self) -> bool:
        """True while open."""
        return self._open

    async def wait(self) -> bool:
        """Return once open."""
        while not self._open:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with the lighter parts above, answering
    the handshake h11 has parsed (see the module's doc)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's __init__, with the lighter parts, and not calling it: it builds a
        # websockets protocol waiting for a request (a uuid4 from the system's random
        # source, and a parser that holds it in a cycle, freed only by the collector),
        # an asyncio.Queue and an Event, all replaced at once (issue 9). Every
        # attribute uvicorn's methods use (uvicorn 0.55) is set here;
        # tests/test_ws_handshake.py runs a socket's whole life through them.
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = _UVICORN_LOG
        self.root_path = config.root_path
        self.asgi_version = config.asgi_version
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme: Literal["wss", "ws"] = "ws"
        self.queue = _Inbox()  # type: ignore[assignment]
        self.handshake_initiated = False
        self.handshake_complete = False
        self.close_sent = False
        self.disconnected = False
        self.close_timer: asyncio.TimerHandle | None = None
        self.close_timeout = 10.0
        self.initial_response: tuple[int, list[tuple[str, str]], bytes] | None = None
        # The handshake is answered here: websockets only frames, so it starts open,
        # and negotiates no extension (permessage-deflate is off: server.py).
        self.conn = ServerProtocol(state=OPEN, max_size=config.ws_max_size, logger=_UVICORN_LOG)
        self.read_paused = False
        self.writable = _Gate()  # type: ignore[assignment]
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.pending_ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.last_ping_rtt = 0.0
        self.frames: list[bytes] = []
        self.curr_msg_data_type: Literal["text", "bytes"] = "bytes"
        # Sec-WebSocket-Accept, once the request is checked; sent with the 101.
        self.accept_key = b""
        # A flush of the frames sent in this turn of the loop is scheduled.
        self.flush_soon = False

    def upgrade(self, http: H11Protocol, request: h11.Request) -> None:
        """Take over ``http``'s connection, whose upgrade request h11 has parsed:
        check it, then hand the app its ``websocket.connect`` (as uvicorn's
        ``connection_made`` and ``handle_connect`` do, without the second parse)."""
        self.connections.add(self)
        self.transport = http.transport
        self.server, self.client = http.server, http.client
        self.scheme = "wss" if http.scheme == "https" else "ws"
        self.handshake_initiated = True
        checked = check_handshake(self.conn, request.method, request.http_version, http.headers)
        if isinstance(checked, Refusal):
            log.info(
                "websocket handshake refused client=%s status=%d: %s",
                _peer(self.client),
                checked.status,
                checked.reason,
            )
            self.handshake_complete = True
            self.close_sent = True
            self.transport.write(checked.response)
            self.transport.close()
            return
        self.accept_key, subprotocols = checked
        raw_path, _, query_string = request.target.partition(b"?")
        root_path = self.root_path
        self.scope: WebSocketScope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path.decode("ascii")),
            "raw_path": root_path.encode("ascii") + raw_path,
            "query_string": query_string,
            "headers": http.headers,
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {
                "websocket.http.response": {},
                # The app's way to send a frame without the ASGI send (rtserver.ws).
                "rtserver.frames": {"send_nowait": self.send_frame_nowait},
            },
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def send(self, message: ASGISendEvent) -> None:
        """Send as uvicorn does, but answer the accept with the 101 built here."""
        if (
            message["type"] == "websocket.accept"
            and not self.handshake_complete
            and self.initial_response is None
        ):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._switch(message.get("subprotocol"), message.get("headers", ()))
            return
        if (
            message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
        ):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._queue_frame(message)
            return
        await super().send(message)

    def _queue_frame(self, message: WebSocketSendEvent) -> None:
        try:
            if (data := message.get("bytes")) is not None:
                self.conn.send_binary(data)
            elif (text := message.get("text")) is not None:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self._flush_soon()

    def send_frame_nowait(self, data: bytes | str) -> bool:
        """Send a frame now, without the ASGI ``send``: the app's fast path
        (``rtserver.frames`` in the scope's extensions).

        False, and nothing sent, unless the socket is open and its transport takes
        writes: the app then queues the frame for its own writer, which waits on
        ``send`` (the transport's back-pressure). A frame's way out through here is
        a method call; through ``send`` it was a task's wake-up, an ASGI message and
        an awaited coroutine (issue 9, docs/benchmarks.md).
        """
        if (
            not self.writable.is_set()
            or self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.conn.state is not OPEN
        ):
            return False
        if isinstance(data, bytes):
            self.conn.send_binary(data)
        else:
            self.conn.send_text(data.encode())
        self._flush_soon()
        return True

    def _flush_soon(self) -> None:
        # The frame waits in websockets' output until the end of this turn of the
        # loop, so that what the app sends at once (the hello's ok and state, an
        # event and a reply) goes out in one write, one system call. Whatever else
        # uvicorn writes (a pong, a ping, the close) takes the waiting frames
        # first, in order.
        if not self.flush_soon:
            self.flush_soon = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_soon = False
        data = b"".join(self.conn.data_to_send())
        if data and not self.transport.is_closing():
            self.transport.write(data)

    async def run_asgi(self) -> None:
        """Run the app as uvicorn does, but write the frames it sent last before the
        transport is closed when it returns without a close (a write after the
        close would be dropped)."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None:
            self._flush()
            self.transport.close()

    def _switch(self, subprotocol: str | None, extra: Any) -> None:
        head = [
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-accept: ",
            self.accept_key,
            b"\r\n",
        ]
        for name, value in (*self.default_headers, *extra):
            head += [name, b": ", value, b"\r\n"]
        if subprotocol:
            head += [b"sec-websocket-protocol: ", subprotocol.encode(), b"\r\n"]
        head.append(b"\r\n")
        # The request's headers are dropped now: the app has read what it needs of
        # the scope (subprotocols, client address) before it accepts.
        self.scope["headers"] = []
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.transport.write(b"".join(head))
            self.start_keepalive()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"
