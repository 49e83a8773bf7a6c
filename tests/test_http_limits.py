"""Hostile HTTP input against a real uvicorn node, over raw sockets.

Bodies are bounded while they stream, whatever ``Content-Length`` or chunked says
(:mod:`rtserver.http.bodies`); requests whose headers or body stall are ended, and
WebSockets count toward ``--max-connections`` (:mod:`rtserver.http.deadlines`). Each
test asserts on what the server does (its answer, the connection's end, what is
stored), never on how fast: the waits are only there so that a failure cannot hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpx
import pytest
import websockets

from clients.rtclient import Api, Client
from rtserver.http.bodies import MAX_JSON_BODY
from tests.servers import Node, new_customer, new_expert, node_settings, run_node
from tests.test_attachments import attachment_rows, blobs

# Long enough never to be reached when the server does its job, so that a test
# of a server that does not fails instead of hanging.
WAIT = 15.0
MIB = 1024 * 1024


class Raw:
    """One TCP connection speaking HTTP/1.1 by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of the next response (its Content-Length's worth)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        return status, headers, body

    async def closed(self) -> bool:
        """True once the server has ended the connection (EOF or reset)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), WAIT)
        except ConnectionResetError:
            return True
        return rest == b""


@contextlib.asynccontextmanager
async def raw(node: Node) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection(node.settings.host, node.settings.port)
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: rt.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes, size: int = 64 * 1024) -> Iterable[bytes]:
    """``data`` as HTTP chunks, without the last (empty) chunk that would end the body."""
    for i in range(0, len(data), size):
        part = data[i : i + size]
        yield b"%x\r\n" % len(part) + part + b"\r\n"


def assert_too_large(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "too_large"
    assert headers["connection"] == "close"


@pytest.fixture
async def node(data_dir: Path) -> AsyncIterator[Node]:
    """A node with a small attachment limit and a 1 s request deadline."""
    async with run_node(node_settings(data_dir, max_attachment=1000, request_timeout=1)) as n:
        yield n


# --- bodies ---------------------------------------------------------------------------


async def test_a_64_mib_login_is_refused_by_its_length_before_its_body(node: Node) -> None:
    async with raw(node) as conn:
        await conn.send(head("POST", "/api/auth/login", f"Content-Length: {64 * MIB}"))
        # Not a byte of the body sent, and the answer is already here.
        assert_too_large(*await conn.response())
        assert await conn.closed()


async def test_a_chunked_body_is_counted_as_it_streams(node: Node) -> None:
    async with raw(node) as conn:
        await conn.send(head("POST", "/api/auth/login", "Transfer-Encoding: chunked"))
        for chunk in chunked(b"x" * (MAX_JSON_BODY + 64 * 1024)):
            await conn.send(chunk)
        # The body has not ended (no last chunk): the 413 comes at the limit, not after.
        assert_too_large(*await conn.response())
        assert await conn.closed()


async def test_a_client_still_sending_reads_its_413(node: Node) -> None:
    """The server stops reading at the limit but closes lingering, not with a reset."""
    async with raw(node) as conn:
        await conn.send(head("POST", "/api/auth/login", f"Content-Length: {64 * MIB}"))

        async def send_it_all() -> None:
            piece = b"x" * (256 * 1024)
            with contextlib.suppress(OSError):
                for _ in range(256):
                    await conn.send(piece)

        sender = asyncio.create_task(send_it_all())
        try:
            assert_too_large(*await conn.response())
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


async def test_a_chunked_upload_under_a_small_length_stops_at_the_limit(
    node: Node, data_dir: Path
) -> None:
    api = Api(node.http)
    try:
        _, token = await new_customer(api)
    finally:
        await api.aclose()
    rows = attachment_rows(data_dir)
    form = (
        b"--XX\r\nContent-Disposition: form-data; name=file; filename=big.bin\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + b"y" * (512 * 1024)
    )
    async with raw(node) as conn:
        await conn.send(
            head(
                "POST",
                "/api/attachments",
                f"Authorization: Bearer {token}",
                "Content-Type: multipart/form-data; boundary=XX",
                "Content-Length: 10",
                "Transfer-Encoding: chunked",
            )
        )
        for chunk in chunked(form):
            await conn.send(chunk)
        # Neither the file's end nor the form's was sent: refused while streaming.
        assert_too_large(*await conn.response())
        assert await conn.closed()
    assert blobs(data_dir) == []
    assert attachment_rows(data_dir) == rows


async def test_json_bodies_are_bounded_just_above_the_largest_valid_one(node: Node) -> None:
    api = Api(node.http)
    try:
        _, token = await new_expert(api)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # Every field at its longest, every character a \\u-escaped surrogate pair.
        e = "\U0001f600"
        prefs = {
            "title": e * 200,
            "skills": [e * 63 + chr(0x41 + i) for i in range(50)],
            "languages": [e * 34 + chr(0x41 + i) for i in range(20)],
            "years_experience": 80,
            "rate_cents_per_15min": 10_000_000,
            "bio": e * 10_000,
        }
        largest = json.dumps(prefs).encode()  # ensure_ascii, Python's default
        assert len(largest) > 160_000
        r = await api.http.put("/api/me/preferences", content=largest, headers=auth)
        assert r.status_code == 200, r.text
        over = b" " * (MAX_JSON_BODY + 1 - len(largest)) + largest
        r = await api.http.put("/api/me/preferences", content=over, headers=auth)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "too_large"
    finally:
        await api.aclose()


# --- deadlines ------------------------------------------------------------------------


async def test_headers_not_complete_in_time_end_the_connection(node: Node) -> None:
    async with raw(node) as conn:
        await conn.send(b"POST /api/auth/login HTTP/1.1\r\nHost: rt.test\r\nContent-")
        status, headers, body = await conn.response()
        assert status == 408
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "bad_frame"
        assert await conn.closed()


async def test_a_connection_that_sends_nothing_is_closed(node: Node) -> None:
    async with raw(node) as conn:
        assert await conn.closed()


async def test_a_stalled_body_ends_the_connection(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtserver.http")
    async with raw(node) as conn:
        await conn.send(head("POST", "/api/auth/login", "Content-Length: 100") + b'{"email"')
        assert await conn.closed()
    await wait_for_log(caplog, "client left mid-request")
    assert_no_error_logged(caplog)


async def test_a_client_leaving_mid_request_is_logged_without_a_traceback(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtserver.http")
    async with raw(node) as conn:
        await conn.send(head("POST", "/api/auth/login", "Content-Length: 100") + b'{"email"')
    await wait_for_log(caplog, "client left mid-request")
    assert_no_error_logged(caplog)


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if any(text in r.getMessage() for r in caplog.records):
                return
            await asyncio.sleep(0.02)


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


# --- connections ----------------------------------------------------------------------


async def test_websockets_count_toward_max_connections(data_dir: Path) -> None:
    async with run_node(node_settings(data_dir, max_connections=3)) as node:
        api = Api(node.http)
        try:
            _, token = await new_customer(api)
        finally:
            await api.aclose()
        opened: list[Client] = []
        try:
            refused = None
            for _ in range(10):
                try:
                    opened.append(await Client.connect(node.ws, token))
                except websockets.InvalidStatus as exc:
                    refused = exc.response
                    break
            assert refused is not None and refused.status_code == 503
            assert json.loads(refused.body)["error"]["code"] == "internal"
            assert 1 <= len(opened) <= 3
            # A plain request over the limit gets the same error body.
            async with httpx.AsyncClient(base_url=node.http) as http:
                r = await http.get("/healthz")
            assert r.status_code == 503
            assert r.json()["error"] == {
                "code": "internal",
                "message": "the server is at its connection limit; try again",
            }
            await opened.pop().close()
            # A place is free again once a socket has gone.
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        opened.append(await Client.connect(node.ws, token))
                        break
                    except websockets.InvalidStatus:
                        await asyncio.sleep(0.05)
        finally:
            for c in opened:
                await c.close()
