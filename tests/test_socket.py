"""The socket's life: subprotocols, hello, limits, slow readers, shutdown."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
from pathlib import Path

import msgpack
import pytest
import websockets

from clients.rtclient import Api, Client
from tests.servers import (
    Node,
    ProcessNode,
    new_customer,
    new_expert,
    node_settings,
    online_expert,
    run_node,
)


async def closed_code(ws: websockets.ClientConnection, timeout: float = 15) -> int | None:
    """Read until the server closes; its close code."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


@pytest.mark.parametrize("subprotocol", ["rt.v1.json", "rt.v1.msgpack", None])
async def test_hello_state_and_ping_in_each_subprotocol(
    node: Node, api: Api, subprotocol: str | None
) -> None:
    user, token = await new_customer(api)
    ws = await websockets.connect(
        node.ws,
        subprotocols=[subprotocol] if subprotocol else None,  # type: ignore[list-item]
    )
    assert ws.subprotocol == subprotocol
    binary = subprotocol == "rt.v1.msgpack"

    def enc(frame: dict) -> bytes | str:
        return msgpack.packb(frame) if binary else json.dumps(frame)

    def dec(data: bytes | str) -> dict:
        assert isinstance(data, bytes) == binary
        return msgpack.unpackb(data) if binary else json.loads(data)

    await ws.send(enc({"type": "hello", "id": 1, "token": token}))
    hello = dec(await ws.recv())
    assert hello["type"] == "ok" and hello["re"] == 1
    assert hello["user"] == user
    assert hello["heartbeat"] == 25
    assert hello["server_time"].endswith("Z")
    state = dec(await ws.recv())
    assert state == {"type": "state", "offers": [], "requests": [], "sessions": []}
    await ws.send(enc({"type": "ping", "id": "p-1"}))
    assert dec(await ws.recv()) == {"type": "ok", "re": "p-1"}
    await ws.close()


async def test_no_hello_in_time_closes_4401(data_dir: Path) -> None:
    async with run_node(node_settings(data_dir, hello_timeout="300ms")) as node:
        ws = await websockets.connect(node.ws)
        assert await closed_code(ws) == 4401


@pytest.mark.parametrize(
    "first",
    [
        {"type": "ping", "id": 1},
        {"type": "hello", "id": 1, "token": "not-a-token"},
        {"type": "hello", "id": 1},
        "not json at all",
    ],
)
async def test_anything_but_a_valid_hello_closes_4401(node: Node, first: object) -> None:
    ws = await websockets.connect(node.ws)
    await ws.send(first if isinstance(first, str) else json.dumps(first))
    assert await closed_code(ws) == 4401


async def test_frame_over_max_frame_closes_1009(node: Node, api: Api) -> None:
    _, token = await new_customer(api)
    client = await Client.connect(node.ws, token)
    await client.send_raw(json.dumps({"type": "ping", "pad": "x" * 70_000}))
    for _ in range(100):
        if client.close_code is not None:
            break
        await asyncio.sleep(0.05)
    assert client.close_code == 1009
    # The server itself is fine.
    again = await Client.connect(node.ws, token)
    assert (await again.call("ping"))["type"] == "ok"
    await again.close()
    await client.close()


async def test_a_slow_reader_is_closed_4408_and_slows_nobody(data_dir: Path) -> None:
    # 3,000 messages from one customer: far past his --request-message-limit.
    settings = node_settings(data_dir, send_queue=16, request_message_limit="1000000/1s")
    async with run_node(settings) as node:
        api = Api(node.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(node.ws, ctoken)
        _, fast = await online_expert(node, api)
        _, stoken = await new_expert(api)
        # A reader that stops reading: a tiny kernel receive buffer (no autotuning)
        # and a tiny client queue, never iterated until the end.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((node.settings.host, node.settings.port))
        slow = await websockets.connect(node.ws, sock=sock, max_queue=1, max_size=None)
        await slow.send(json.dumps({"type": "hello", "id": 1, "token": stoken}))
        await slow.recv()
        await slow.recv()
        await slow.send(json.dumps({"type": "presence", "id": 2, "status": "available"}))
        await slow.recv()
        reply = await customer.call(
            "request.create", kind="instant", title="flood", skills=["python"], language="en"
        )
        rid = reply["request"]["id"]
        assert reply["request"]["notified"] == 2
        # Incompressible text: the server may deflate frames (permessage-deflate).
        for i in range(3_000):
            text = base64.b64encode(os.urandom(5_900)).decode()
            await customer.call("request.message", request_id=rid, text=f"{i} {text}")
        # The fast expert got every message; the customer never waited on the slow one.
        got = 0
        while got < 3_000:
            ev = await fast.wait_event("request.message")
            got += 1
        assert ev["text"].startswith("2999 ")
        assert await closed_code(slow, timeout=60) == 4408
        assert (await customer.call("ping"))["type"] == "ok"
        for c in (customer, fast):
            await c.close()
        await api.aclose()


async def test_a_reader_that_pauses_gets_every_frame_in_order(data_dir: Path) -> None:
    # Frames go to the transport directly while it takes writes and through the
    # socket's queue while it is paused (rtserver.hub.connections): a reader that
    # stops long enough to pause it, then reads on, sees every frame once, in order.
    settings = node_settings(data_dir, send_queue=4096, request_message_limit="1000000/1s")
    async with run_node(settings) as node:
        api = Api(node.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(node.ws, ctoken)
        _, etoken = await new_expert(api)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((node.settings.host, node.settings.port))
        paused = await websockets.connect(node.ws, sock=sock, max_queue=1, max_size=None)
        await paused.send(json.dumps({"type": "hello", "id": 1, "token": etoken}))
        await paused.recv()
        await paused.recv()
        await paused.send(json.dumps({"type": "presence", "id": 2, "status": "available"}))
        await paused.recv()
        reply = await customer.call(
            "request.create", kind="instant", title="pause", skills=["python"], language="en"
        )
        rid = reply["request"]["id"]
        # About 12 MB to the expert, who reads none of it meanwhile: past what the
        # kernel's buffers hold, so the node's transport pauses.
        total = 1_500
        for i in range(total):
            text = base64.b64encode(os.urandom(5_900)).decode()
            await customer.call("request.message", request_id=rid, text=f"{i} {text}")
        await customer.call("request.message", request_id=rid, text="last")
        seen = []
        async with asyncio.timeout(120):
            while True:
                frame = json.loads(await paused.recv())
                if frame.get("type") != "request.message":
                    continue
                if frame["text"] == "last":
                    break
                seen.append(int(frame["text"].split(" ", 1)[0]))
        assert seen == list(range(total))
        await paused.close()
        await customer.close()
        await api.aclose()


async def test_sigterm_closes_sockets_with_1001(tmp_path: Path, data_dir: Path) -> None:
    proc = ProcessNode(node_settings(data_dir), tmp_path / "node.log")
    proc.start()
    try:
        api = Api(proc.http)
        _, token = await new_customer(api)
        await api.aclose()
        client = await Client.connect(proc.ws, token)
        proc.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for _ in range(200):
            if client.close_code is not None:
                break
            await asyncio.sleep(0.05)
        assert client.close_code == 1001
        # A graceful stop: uvicorn re-raises the signal once shut down.
        assert proc.proc.wait(30) in (0, -signal.SIGTERM)  # type: ignore[union-attr]
        assert "node stopped" in proc.log_path.read_text()
        await client.close()
    finally:
        proc.stop()


async def test_a_silent_peer_is_dropped_by_the_heartbeat(data_dir: Path) -> None:
    async with run_node(node_settings(data_dir, heartbeat="300ms")) as node:
        api = Api(node.http)
        _, token = await new_customer(api)
        await api.aclose()
        client = await Client.connect(node.ws, token)
        assert client.hello["heartbeat"] == 0.3
        # Stop reading: the server's pings go unanswered.
        client.ws.transport.pause_reading()
        await asyncio.sleep(1.5)
        client.ws.transport.resume_reading()
        for _ in range(100):
            if client.close_code is not None:
                break
            await asyncio.sleep(0.05)
        assert client.close_code == 1011
        await client.close()
