"""uvicorn's h11 protocol with the limits uvicorn lacks: request deadlines, a lingering close,
WebSockets counted.

uvicorn times out only the idle time between two requests (``timeout_keep_alive``),
and cancels even that on any byte received: a client trickling its headers or its
body a byte at a time holds a connection for ever (slow-loris; uvicorn issue #157
lists ``--timeout-request-start`` as never done). ASGI middleware cannot help, as
it runs only once the headers are complete. So the deadlines live in the protocol:

- **headers**: a request's headers must be complete within ``--request-timeout``
  of its first byte (or of the connection, for the first request); else 408 and
  the connection is closed;
- **body**: a body that receives nothing for ``--request-timeout`` is cut off (the
  app reading it sees a disconnect). Time spent with reading paused because the
  app is not reading yet does not count: the client is not the one stalling.

A response that ends the connection while the client is still sending its body
(a 413 refusing the rest) closes it lingering, as RFC 9112 section 9.6 asks:
the write side is shut after the response, and what the client still sends is
read and dropped for up to :data:`LINGER` seconds. Closed at once, the kernel
would answer the unread bytes with a reset, and a client still sending would
lose the 413 it was sent.

``--max-connections`` is uvicorn's ``limit_concurrency``, which answers 503 to a
request over it but lets WebSocket upgrades through uncounted; here an upgrade
over it is answered 503 too. Both refusals, and the 408, carry the contract's
error body (``{"error": {"code", "message"}}``), as every other error does.

The h11 protocol is used whether or not httptools is installed, so that every
install behaves the same.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any, ClassVar, cast

import h11
from starlette.responses import Response
from starlette.types import ASGIApp
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

from rtserver.errors import BadFrame, Internal, RtError
from rtserver.http.common import error_response
from rtserver.http.websocket import LeanWebSocketProtocol

log = logging.getLogger("rtserver.http")

# How long a closing connection keeps reading (and dropping) a body it refused.
LINGER = 5.0


def _closing_error(err: RtError, status: HTTPStatus) -> Response:
    """The API's error response for ``err`` (:func:`error_response`: the contract's
    body), with this status, ending the connection."""
    response = error_response(err)
    response.status_code = status
    response.headers["connection"] = "close"
    return response


def _raw(response: Response) -> bytes:
    """A whole HTTP/1.1 response, for a transport no ASGI cycle is left to write on."""
    status = HTTPStatus(response.status_code)
    head = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    head += [name + b": " + value for name, value in response.raw_headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + response.body


# A request that did not arrive whole in time is an incomplete frame of HTTP.
_TIMED_OUT = _raw(
    _closing_error(BadFrame("the request did not arrive in time"), HTTPStatus.REQUEST_TIMEOUT)
)
# uvicorn's answer past limit_concurrency (plain text), with the contract's body.
_BUSY_RESPONSE = _closing_error(
    Internal("the server is at its connection limit; try again"), HTTPStatus.SERVICE_UNAVAILABLE
)
_BUSY = _raw(_BUSY_RESPONSE)


class _Transport:
    """The connection's transport as uvicorn sees it: its ``close`` lingers when it must."""

    def __init__(self, transport: asyncio.Transport, protocol: DeadlineProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        """Close, lingering while the client is still sending a body nobody reads."""
        if not self._protocol.linger():
            self._transport.close()


class DeadlineProtocol(H11Protocol):
    """One HTTP connection whose requests must arrive in time (see the module's doc)."""

    request_timeout: ClassVar[float] = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's own check past the limit answers plain text; with the limit taken
        # from it, every request reads ``app`` below, which answers the error body.
        self.max_connections = self.limit_concurrency
        self.limit_concurrency = None
        self._timer: asyncio.TimerHandle | None = None
        # "headers" or "body": what the armed timer waits for.
        self._phase = ""
        # Set once the transport belongs to a WebSocket protocol (or was refused one).
        self._handed_over = False
        self._lingering = False
        self._raw: asyncio.Transport | None = None

    @property
    def app(self) -> ASGIApp:
        """The app for the next request: a 503 past ``--max-connections``, as uvicorn's
        ``limit_concurrency`` would answer, but with the contract's error body."""
        limit = self.max_connections
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            log.warning("request refused: at --max-connections client=%s", _peer(self.client))
            return _BUSY_RESPONSE
        return self._app

    @app.setter
    def app(self, app: ASGIApp) -> None:
        self._app = app

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's header deadline with the connection.

        uvicorn's own reads both addresses through ``get_extra_info("socket")``,
        which makes uvloop build a socket object and ask the kernel for each
        (about 20 µs per connection); the transport knows both already.
        """
        self._raw = transport
        self.connections.add(self)
        self.transport = cast(asyncio.Transport, _Transport(transport, self))
        self.flow = FlowControl(self.transport)
        self.server = _address(transport.get_extra_info("sockname"))
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, (tuple, list)) else None
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed h11, then set the deadline the request's new state calls for."""
        if self._lingering:
            return  # the rest of a refused body: dropped
        super().data_received(data)
        if not self._handed_over and not self.transport.is_closing():
            self._watch(received=True)

    def on_response_complete(self) -> None:
        """After a response: a body left unread ends the connection (lingering); else the
        next request, if bytes of it are here, starts its deadline."""
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._lingering or self.linger():
            # uvicorn would read the rest of the body, however long, to keep the
            # connection; the linger's own timer ends it instead.
            self._unset_keepalive_if_required()
        else:
            self._watch(received=False)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Upgrade, unless the node is at ``--max-connections`` (503 then)."""
        self._disarm()
        self._handed_over = True
        # The WebSocket protocol gets the transport itself, not the lingering one.
        assert self._raw is not None
        self.transport = self._raw
        limit = self.max_connections
        if limit is not None and len(self.connections) >= limit:
            log.warning(
                "websocket refused: at --max-connections client=%s limit=%d",
                _peer(self.client),
                limit,
            )
            self.transport.write(_BUSY)
            self.transport.close()
            return
        ws_class = self.ws_protocol_class
        if ws_class is None or not issubclass(ws_class, LeanWebSocketProtocol):
            super().handle_websocket_upgrade(event)
            return
        # Ours answers the request h11 has parsed; uvicorn's would serialise it again
        # for websockets to parse a second time.
        self.connections.discard(self)
        protocol = ws_class(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        self.transport.set_protocol(protocol)
        protocol.upgrade(self, event)

    def linger(self) -> bool:
        """Start a lingering close if the client is still sending its body; False if not."""
        raw = self._raw
        if (
            raw is None
            or self._handed_over
            or self._lingering
            or raw.is_closing()
            or self.conn.their_state is not h11.SEND_BODY
        ):
            return False
        self._disarm()
        self._lingering = True
        if raw.can_write_eof():
            raw.write_eof()  # after the response is flushed: the client reads it, then EOF
        self.flow.resume_reading()
        self._timer = self.loop.call_later(LINGER, raw.close)
        return True

    def _watch(self, *, received: bool) -> None:
        state = self.conn.their_state
        if state is h11.IDLE:
            # Between requests uvicorn's keep-alive timer runs; once a byte of the
            # next request is here (it cancelled that timer), the headers' deadline.
            if self._phase != "headers" and self.conn.trailing_data[0]:
                self._arm("headers")
        elif state is h11.SEND_BODY:
            if received or self._phase != "body":
                self._arm("body")  # the body's deadline is an idle time: any byte renews it
        else:
            self._disarm()

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._timer = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = ""

    def _expired(self) -> None:
        phase, self._timer = self._phase, None
        raw = self._raw
        if raw is None or raw.is_closing():
            return
        if phase == "body" and self.flow.read_paused:
            self._arm("body")  # the app is not reading yet: the client is not the one late
            return
        log.info(
            "request timed out client=%s waiting_for=%s after=%ss",
            _peer(self.client),
            phase,
            self.request_timeout,
        )
        if phase == "headers" and self.conn.trailing_data[0]:
            raw.write(_TIMED_OUT)
        raw.close()  # not lingering: the client is the one that stopped


def _address(info: Any) -> tuple[str, int | None] | None:
    """A socket's address as uvicorn's scope holds it: (host, port), (path, None)."""
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    if isinstance(info, str):
        return (info, None)
    return None


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"


def deadline_protocol(request_timeout: float) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with this node's deadline."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"request_timeout": request_timeout})
