"""Rooms across crashes, restarts and nodes: subprocess nodes, SIGKILL, real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clients.rtclient import Api, Client
from tests.servers import (
    ProcessNode,
    RedisServer,
    node_settings,
    open_session,
    start_cluster,
)

pytestmark = pytest.mark.both_backends


async def test_acknowledged_messages_survive_sigkill(tmp_path: Path, data_dir: Path) -> None:
    node = ProcessNode(
        node_settings(data_dir, message_rate=1000, message_burst=1000), tmp_path / "node.log"
    )
    node.start()
    api = Api(node.http)
    try:
        customer, expert, sid, ctoken, _ = await open_session(node, node, api)
        # 200 messages, 20 in flight at a time, so that commits are grouped.
        acked: dict[int, str] = {}

        async def send(i: int) -> None:
            reply = await customer.call(
                "message.send", session_id=sid, cid=f"m{i}", kind="text", text=f"message {i}"
            )
            acked[reply["seq"]] = f"message {i}"

        for start in range(0, 200, 20):
            await asyncio.gather(*(send(i) for i in range(start, start + 20)))
        node.kill()  # right after the last ok
        await customer.close()
        await expert.close()
        node.start()
        again = await Client.connect(node.ws, ctoken)
        joined = await again.call("session.join", session_id=sid, after_seq=0)
        seqs = [m["seq"] for m in joined["messages"]]
        assert seqs == list(range(1, 201))
        assert {m["seq"]: m["text"] for m in joined["messages"]} == acked
        assert joined["last_seq"] == 200
        # A cid sent again after the restart is still recognized.
        dup = await again.call("message.send", session_id=sid, cid="m7", kind="text", text="x")
        assert dup["duplicate"] is True and acked[dup["seq"]] == "message 7"
        await again.close()
    finally:
        await api.aclose()
        node.stop()


async def test_relay_between_two_nodes(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    nodes = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 2)
    api = Api(nodes[0].http)
    try:
        customer, expert, sid, _, _ = await open_session(nodes[0], nodes[1], api)
        sent = await customer.call(
            "message.send", session_id=sid, cid="c1", kind="text", text="hello from node 0"
        )
        got = await expert.wait_event("message")
        assert got["seq"] == sent["seq"] == 1
        assert got["text"] == "hello from node 0" and got["from"]["role"] == "customer"
        await expert.call(
            "message.send",
            session_id=sid,
            cid="e1",
            kind="code",
            code={"language": "python", "source": "print(1)"},
        )
        got = await customer.wait_event("message")
        assert got["seq"] == 2 and got["code"] == {"language": "python", "source": "print(1)"}
        await expert.call("typing", session_id=sid)
        typing = await customer.wait_event("typing")
        assert typing["session_id"] == sid and typing["from"]["role"] == "expert"
        await expert.call("billing.start", session_id=sid)
        billing = await customer.wait_event("billing")
        assert billing["running"] is True
        summary = (await customer.call("session.end", session_id=sid))["summary"]
        update = await expert.wait_event("session.update", lambda e: e["session"]["id"] == sid)
        assert update["session"]["status"] == "ended"
        assert update["session"]["summary"]["charge_cents"] == summary["charge_cents"]
        await customer.close()
        await expert.close()
    finally:
        await api.aclose()
        for n in nodes:
            n.stop()


async def test_billing_survives_a_restart_without_counting_the_downtime(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = node_settings(data_dir, billing_check="300ms", disconnect_grace="20s")
    node = ProcessNode(settings, tmp_path / "node.log")
    node.start()
    api = Api(node.http)
    try:
        customer, expert, sid, ctoken, etoken = await open_session(node, node, api)
        await expert.call("billing.start", session_id=sid)
        await asyncio.sleep(2.0)
        node.kill()
        await customer.close()
        await expert.close()
        await asyncio.sleep(5.0)  # downtime: nobody can work, nobody pays
        node.start()
        customer = await Client.connect(node.ws, ctoken)
        expert = await Client.connect(node.ws, etoken)
        joined = await expert.call("session.join", session_id=sid)
        assert joined["billing"]["running"] is True  # the restart did not stop it
        await asyncio.sleep(2.0)
        paused = (await expert.call("billing.pause", session_id=sid))["billing"]
        # About 2 s before the crash and 2 s after it are billed; the 5 s of downtime
        # (plus the restart) are not.
        assert 2 <= paused["billable_seconds"] <= 5, paused
        await customer.close()
        await expert.close()
    finally:
        await api.aclose()
        node.stop()


async def test_billing_stops_when_the_node_holding_both_sides_dies(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    nodes = start_cluster(
        tmp_path,
        data_dir,
        redis_server,
        redis_prefix,
        2,
        presence_ttl="1s",
        billing_check="300ms",
        disconnect_grace="1s",
    )
    a, b = nodes
    api = Api(a.http)
    try:
        customer, expert, sid, ctoken, _ = await open_session(b, b, api)
        await expert.call("billing.start", session_id=sid)
        await asyncio.sleep(2.0)
        b.kill()
        await customer.close()
        await expert.close()
        # Node A runs the liveness checks now: both sides are gone (B's presence
        # expires after 1 s), and after the 1 s grace billing pauses at the last
        # check that saw them.
        await asyncio.sleep(5.0)
        again = await Client.connect(a.ws, ctoken)
        joined = await again.call("session.join", session_id=sid)
        assert joined["billing"]["running"] is False
        # ~2 s billed, plus at most the presence TTL in which B looked alive.
        assert 1 <= joined["billing"]["billable_seconds"] <= 4, joined["billing"]
        await again.close()
    finally:
        await api.aclose()
        for n in nodes:
            n.stop()
