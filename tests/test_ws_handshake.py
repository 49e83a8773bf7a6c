"""The opening handshake answered from what h11 parsed, and the frames written per turn.

``check_handshake`` hands h11's parsed request to ``websockets``: accept value and
subprotocols out, or the refusal websockets makes. The adapter
(``DeadlineProtocol`` handing its connection to ``LeanWebSocketProtocol``) is pushed
bytes through a transport that records what it is asked to write, with a small ASGI
app, as uvicorn's loop would push them; the last tests talk to a real node over a
raw socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol

from clients.rtclient import Api
from rtserver.http.deadlines import DeadlineProtocol
from rtserver.http.websocket import LeanWebSocketProtocol, Refusal, check_handshake
from tests.servers import Node, new_customer

# What checks a request: a websockets protocol that negotiates nothing, as the node's.
CHECKER = ServerProtocol()
# RFC 6455, section 1.3: this key's accept value is the RFC's own example.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

GOOD = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-protocol", b"rt.v1.msgpack, rt.v1.json"),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
]


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in GOOD if n != name]


def with_key(key: bytes) -> list[tuple[bytes, bytes]]:
    return [*without(b"sec-websocket-key"), (b"sec-websocket-key", key)]


def check(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, list[str]] | Refusal:
    return check_handshake(CHECKER, b"GET", b"1.1", headers)


def test_a_valid_handshake_gets_the_rfc_accept_value_and_its_subprotocols() -> None:
    assert check(GOOD) == (
        ACCEPT,
        ["rt.v1.msgpack", "rt.v1.json"],
    )
    assert check(without(b"sec-websocket-protocol")) == (
        ACCEPT,
        [],
    )
    # Empty list items are skipped and case is not compared; a protocol version is
    # well-formed, but not the websocket the RFC names.
    odd = [*without(b"upgrade"), (b"upgrade", b"WebSocket"), (b"sec-websocket-protocol", b", x ,")]
    assert check(odd) == (
        ACCEPT,
        ["rt.v1.msgpack", "rt.v1.json", "x"],
    )
    versioned = [*without(b"upgrade"), (b"upgrade", b"websocket/13")]
    refused = check(versioned)
    assert isinstance(refused, Refusal) and refused.status == 426


@pytest.mark.parametrize(
    ("method", "version", "headers", "status"),
    [
        (b"POST", b"1.1", GOOD, 405),
        (b"GET", b"1.0", GOOD, 505),
        (b"GET", b"1.1", without(b"connection"), 426),
        (b"GET", b"1.1", [*without(b"upgrade"), (b"upgrade", b"websocket, h2c")], 426),
        # websockets answers a missing or other version 400 (RFC 6455 would say 426).
        (b"GET", b"1.1", without(b"sec-websocket-version"), 400),
        (
            b"GET",
            b"1.1",
            [*without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")],
            400,
        ),
        (b"GET", b"1.1", without(b"sec-websocket-key"), 400),
        (b"GET", b"1.1", [*GOOD, (b"sec-websocket-key", KEY)], 400),
        (b"GET", b"1.1", with_key(b"c2hvcnQ="), 400),
        (b"GET", b"1.1", with_key(b"not base64!"), 400),
        (
            b"GET",
            b"1.1",
            [*GOOD, (b"origin", b"https://a.test"), (b"origin", b"https://b.test")],
            400,
        ),
        (b"GET", b"1.1", [*GOOD, (b"sec-websocket-protocol", b"rt.v1.json x")], 400),
        (b"GET", b"1.1", [*without(b"connection"), (b"connection", b"upgrade;x")], 400),
    ],
)
def test_an_invalid_handshake_is_refused_with_its_status(
    method: bytes, version: bytes, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    refusal = check_handshake(CHECKER, method, version, headers)
    assert isinstance(refusal, Refusal) and refusal.status == status


def test_a_refusal_is_a_whole_response_that_closes_the_connection() -> None:
    refusal = check_handshake(CHECKER, b"GET", b"1.1", without(b"sec-websocket-version"))
    assert isinstance(refusal, Refusal)
    head, _, body = refusal.response.partition(b"\r\n\r\n")
    lines = [line.lower() for line in head.split(b"\r\n")]
    assert lines[0] == b"http/1.1 400 bad request"
    assert b"connection: close" in lines
    assert f"content-length: {len(body)}".encode() in lines
    assert body.startswith(b"Failed to open a WebSocket connection")


# --- the adapter, pushed as uvicorn's loop pushes it ------------------------------------


class Recorder:
    """The connection's transport: what the protocols ask of it, written down."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after the close is dropped"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


def request(*extra: bytes) -> bytes:
    lines = [
        b"GET /ws HTTP/1.1",
        b"Host: 127.0.0.1:8000",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + KEY,
        b"Sec-WebSocket-Protocol: rt.v1.json",
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def client_text(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])


async def connect(app: Any, data: bytes) -> Recorder:
    """A connection that received ``data`` and whose app then ran as far as it could."""
    config = uvicorn.Config(app, ws=LeanWebSocketProtocol, ws_per_message_deflate=False)
    config.load()
    http = DeadlineProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Recorder()
    http.connection_made(transport)  # type: ignore[arg-type]
    http.data_received(data)
    await settle()
    return transport


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_101_then_what_the_app_sends_at_once_in_one_write() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": scope["subprotocols"][0]})
        seen.append(await receive())
        await send({"type": "websocket.send", "text": "ok"})
        await send({"type": "websocket.send", "bytes": b"state"})
        seen.append(await receive())

    transport = await connect(app, request(b"Sec-WebSocket-Version: 13"))
    (scope,) = seen
    assert (scope["path"], scope["subprotocols"], scope["client"]) == (
        "/ws",
        ["rt.v1.json"],
        ("127.0.0.1", 50000),
    )
    (head,) = transport.writes
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nsec-websocket-accept: " + ACCEPT + b"\r\n" in head
    assert b"\r\nsec-websocket-protocol: rt.v1.json\r\n" in head
    assert b"extensions" not in head.lower()
    assert scope["headers"] == []  # dropped once the 101 is out

    transport.protocol.data_received(client_text("hello"))
    await settle()
    assert seen[1] == {"type": "websocket.receive", "text": "hello"}
    assert transport.writes[1:] == [b"\x81\x02ok" + b"\x82\x05state"]

    transport.protocol.connection_lost(None)
    await settle()
    assert seen[2]["type"] == "websocket.disconnect"


async def test_frames_sent_just_before_the_app_returns_are_written_before_the_close() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    transport = await connect(app, request(b"Sec-WebSocket-Version: 13"))
    assert transport.writes[1:] == [b"\x81\x03bye"]
    assert transport.closed


async def test_an_invalid_handshake_never_reaches_the_app() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app ran")

    transport = await connect(app, request(b"Sec-WebSocket-Version: 7"))
    (response,) = transport.writes
    assert response.startswith(b"HTTP/1.1 400 ")
    assert transport.closed


# --- a real node ------------------------------------------------------------------------


def raw_handshake(node: Node, *lines: bytes) -> tuple[bytes, socket.socket]:
    host, port = node.settings.host, node.settings.port
    sock = socket.create_connection((host, port), timeout=15)
    sock.sendall(
        b"\r\n".join([b"GET /ws HTTP/1.1", b"Host: %s:%d" % (host.encode(), port), *lines])
    )
    sock.sendall(b"\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received, sock


async def test_a_node_answers_a_raw_handshake_and_its_hello(node: Node, api: Api) -> None:
    _, token = await new_customer(api)
    key = base64.b64encode(b"0123456789abcdef")
    head, sock = await asyncio.to_thread(
        raw_handshake,
        node,
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: chat, rt.v1.json",
    )
    with sock:
        lines = head.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
        assert b"sec-websocket-protocol: rt.v1.json" in lines
        checked = check_handshake(CHECKER, b"GET", b"1.1", with_key(key))
        assert not isinstance(checked, Refusal)
        assert b"sec-websocket-accept: " + checked[0] in lines
        hello = json.dumps({"type": "hello", "id": 1, "token": token})
        await asyncio.to_thread(sock.sendall, client_text(hello))
        frames = await asyncio.to_thread(read_frames, sock, 2)
        assert [json.loads(f)["type"] for f in frames] == ["ok", "state"]


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` unmasked server frames with 7-bit or 16-bit lengths."""
    data = b""
    frames: list[bytes] = []
    while len(frames) < count:
        chunk = sock.recv(65536)
        assert chunk, "the node closed the socket"
        data += chunk
        while len(data) >= 2:
            length, start = data[1] & 0x7F, 2
            if length == 126:
                if len(data) < 4:
                    break
                length, start = int.from_bytes(data[2:4], "big"), 4
            if len(data) < start + length:
                break
            frames.append(data[start : start + length])
            data = data[start + length :]
    return frames


async def test_a_node_refuses_a_handshake_of_another_version(node: Node) -> None:
    head, sock = await asyncio.to_thread(
        raw_handshake,
        node,
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + KEY,
        b"Sec-WebSocket-Version: 8",
    )
    with sock:
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 400 Bad Request"
