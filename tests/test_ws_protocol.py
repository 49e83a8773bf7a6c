"""What one socket holds: uvicorn's protocol made lighter, no compression, the hello's reads.

The lighter receive queue and write gate are pushed as uvicorn pushes them, with
no network; the rest runs against a real node.
"""

from __future__ import annotations

import asyncio
import json

import websockets

from clients.rtclient import Api
from rtserver.http.websocket import LeanWebSocketProtocol, _Gate, _Inbox
from rtserver.server import SocketsFirst, uvicorn_config
from rtserver.ws import websocket_endpoint
from tests.servers import Node, new_customer, new_expert


async def test_the_inbox_hands_events_in_order_and_wakes_its_reader() -> None:
    inbox = _Inbox()
    inbox.put_nowait({"type": "websocket.connect"})
    assert not inbox.empty()
    assert await inbox.get() == {"type": "websocket.connect"}
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # the reader now waits on the empty inbox
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(reader, 10) == {"type": "websocket.receive", "text": "a"}
    assert await inbox.get() == {"type": "websocket.disconnect", "code": 1000}


async def test_a_cancelled_reader_does_not_lose_the_next_event() -> None:
    inbox = _Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})
    assert await asyncio.wait_for(inbox.get(), 10) == {"type": "websocket.disconnect", "code": 1006}


async def test_the_gate_holds_senders_while_the_transport_is_paused() -> None:
    gate = _Gate()
    assert gate.is_set() and await gate.wait()
    gate.clear()
    senders = [asyncio.create_task(gate.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(s.done() for s in senders)
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*senders), 10) == [True, True]


def test_the_node_serves_sockets_with_the_lean_protocol_and_no_compression(node: Node) -> None:
    assert node.app is not None
    config = uvicorn_config(node.app, node.settings)
    assert config.ws is LeanWebSocketProtocol
    assert config.ws_per_message_deflate is False


def test_sockets_go_straight_to_the_app_own_raw_endpoint(node: Node) -> None:
    assert node.app is not None
    app = uvicorn_config(node.app, node.settings).app
    assert isinstance(app, SocketsFirst) and app.app is node.app
    # Read from the app's routes: the one place that routes stays the app.
    assert app.sockets == {"/ws": websocket_endpoint}


async def test_a_client_offering_compression_gets_none_and_still_talks(
    node: Node, api: Api
) -> None:
    _, token = await new_customer(api)
    # websockets offers permessage-deflate by default, as browsers do.
    async with websockets.connect(node.ws, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
        assert json.loads(await ws.recv())["type"] == "ok"
        assert json.loads(await ws.recv())["type"] == "state"
        await ws.send(json.dumps({"type": "ping", "id": 2}))
        assert json.loads(await ws.recv()) == {"type": "ok", "re": 2}


async def test_an_expert_state_carries_his_stored_presence(node: Node, api: Api) -> None:
    _, token = await new_expert(api)
    for status in ("available", "away"):
        async with websockets.connect(node.ws) as ws:
            await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
            assert json.loads(await ws.recv())["type"] == "ok"
            state = json.loads(await ws.recv())
            assert state["type"] == "state" and state["offers"] == []
            await ws.send(json.dumps({"type": "presence", "id": 2, "status": status}))
            assert json.loads(await ws.recv())["re"] == 2
        async with websockets.connect(node.ws) as ws:
            await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
            assert json.loads(await ws.recv())["type"] == "ok"
            assert json.loads(await ws.recv())["presence"] == status
