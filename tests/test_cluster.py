"""Many nodes sharing one Redis and one data dir behave as one server.

Each node is a separate process; crashes are SIGKILL; Redis is a real
redis-server that these tests restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.rtclient import Api, Client
from tests.servers import RedisServer, new_customer, online_expert, start_cluster

pytestmark = pytest.mark.both_backends


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, since the test restarts it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def create(customer: Client) -> dict:
    reply = await customer.call(
        "request.create", kind="instant", title="Help", skills=["python"], language="en"
    )
    return reply["request"]


async def test_a_dead_nodes_experts_stop_being_offered(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    a, b = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 2, presence_ttl="1s")
    try:
        api = Api(a.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(a.ws, ctoken)
        _, on_a = await online_expert(a, api, name="on A")
        _, on_b = await online_expert(b, api, name="on B")
        first = await create(customer)
        assert first["notified"] == 2  # both nodes' experts are seen
        await on_b.wait_event("offer.new")  # and B's expert got it through Redis
        await customer.call("request.cancel", request_id=first["id"])
        b.kill()
        await asyncio.sleep(2.5)  # the dead node's presence set expires after 1 s
        second = await create(customer)
        assert second["notified"] == 1
        offer = await on_a.wait_event(
            "offer.new", lambda e: e["offer"]["request_id"] == second["id"]
        )
        assert offer["offer"]["title"] == "Help"
        for c in (customer, on_a, on_b):
            await c.close()
        await api.aclose()
    finally:
        a.stop()
        b.stop()


async def test_waves_go_on_when_the_creating_node_dies(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    a, b = start_cluster(
        tmp_path,
        data_dir,
        redis_server,
        redis_prefix,
        2,
        offer_batch=1,
        offer_ttl="1s",
        request_ttl="30s",
    )
    try:
        api = Api(b.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(b.ws, ctoken)
        e1_user, e1 = await online_expert(b, api, name="E1")
        e2_user, e2 = await online_expert(b, api, name="E2")
        # The request is created on A; A then dies before its first wave ends.
        customer_a = await Client.connect(a.ws, ctoken)
        request = await create(customer_a)
        assert request["notified"] == 1
        a.kill()
        # B's timer loop takes over the durable wave timer: the other expert is offered.
        first, second = (e1, e2)
        got_first = await asyncio.wait_for(
            asyncio.gather(
                first.wait_event("offer.new", timeout=20),
                second.wait_event("offer.new", timeout=20),
            ),
            30,
        )
        assert {g["offer"]["request_id"] for g in got_first} == {request["id"]}
        update = await customer.wait_event(
            "request.update",
            lambda e: e["request_id"] == request["id"] and e["notified"] == 2,
            timeout=20,
        )
        assert update["status"] == "open"
        assert e1_user["id"] != e2_user["id"]
        await customer_a.close()
        for c in (customer, e1, e2):
            await c.close()
        await api.aclose()
    finally:
        a.stop()
        b.stop()


async def test_a_redis_restart_is_noticed_and_state_is_resent(
    tmp_path: Path, data_dir: Path, own_redis: RedisServer, redis_prefix: str
) -> None:
    a, b = start_cluster(tmp_path, data_dir, own_redis, redis_prefix, 2)
    try:
        api = Api(a.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(a.ws, ctoken)
        _, expert = await online_expert(b, api)
        request = await create(customer)
        await expert.wait_event("offer.new")
        # Redis loses everything (it keeps nothing on disk here).
        own_redis.restart()
        # B notices the gap in the event stream and re-sends state, from the database.
        state = await expert.wait_event("state", lambda e: e.get("resync") is True, timeout=30)
        assert [o["request_id"] for o in state["offers"]] == [request["id"]]
        # And the cluster works on: presence is back (B re-registered its sockets
        # before it re-sent state), offers and accepts cross nodes.
        await customer.call("request.cancel", request_id=request["id"])
        second = await create(customer)
        assert second["notified"] == 1
        await expert.wait_event("offer.new", lambda e: e["offer"]["request_id"] == second["id"])
        await expert.call("offer.accept", request_id=second["id"])
        update = await customer.wait_event(
            "request.update", lambda e: e["request_id"] == second["id"] and e["status"] != "open"
        )
        assert update["status"] == "accepted"
        for c in (customer, expert):
            await c.close()
        await api.aclose()
    finally:
        a.stop()
        b.stop()
