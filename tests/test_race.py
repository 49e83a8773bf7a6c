"""Contract rule 1, first accept wins: 30 experts accept at once, 20 rounds.

On one embedded node, and on three node processes sharing one Redis and one
data dir, with the experts spread over the nodes: exactly one ``ok`` each
round, every other accept ``offer_taken``, every loser ``offer.revoked``
(taken), and the customer told ``accepted`` exactly once. Accepts sent after
the race was decided get the same answers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clients.rtclient import Api, Client
from tests.servers import (
    Node,
    RedisServer,
    new_customer,
    new_expert,
    node_settings,
    run_node,
    start_cluster,
)

pytestmark = pytest.mark.both_backends

EXPERTS = 30
ROUNDS = 20


async def race_rounds(nodes: list[Node], api: Api) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(nodes[0].ws, ctoken)
    experts: list[Client] = []

    async def add_expert(i: int) -> Client:
        _, token = await new_expert(api, name=f"E{i}")
        c = await Client.connect(nodes[i % len(nodes)].ws, token)
        await c.call("presence", status="available")
        return c

    experts = list(await asyncio.gather(*(add_expert(i) for i in range(EXPERTS))))
    # Never available, so never offered anything.
    _, otoken = await new_expert(api, name="outsider")
    outsider = await Client.connect(nodes[-1].ws, otoken)
    for rnd in range(ROUNDS):
        reply = await customer.call(
            "request.create",
            kind="instant",
            title=f"round {rnd}",
            skills=["python"],
            language="en",
        )
        rid = reply["request"]["id"]
        assert reply["request"]["notified"] == EXPERTS
        for e in experts:
            await e.wait_event("offer.new", lambda ev, rid=rid: ev["offer"]["request_id"] == rid)
        replies = await asyncio.gather(
            *(e.request("offer.accept", request_id=rid) for e in experts)
        )
        winners = [i for i, r in enumerate(replies) if r["type"] == "ok"]
        assert len(winners) == 1, replies
        losers = [r for r in replies if r["type"] == "error"]
        assert {r["code"] for r in losers} == {"offer_taken"}, losers
        winner = winners[0]
        for i, e in enumerate(experts):
            if i == winner:
                continue
            ev = await e.wait_event("offer.revoked", lambda ev, rid=rid: ev["request_id"] == rid)
            assert ev["reason"] == "taken"
        update = await customer.wait_event(
            "request.update", lambda ev, rid=rid: ev["request_id"] == rid and ev["status"] != "open"
        )
        assert update["status"] == "accepted"
        assert update["session_id"] == replies[winner]["session"]["id"]
        # Exactly once: nothing more about this request reaches the customer.
        await asyncio.sleep(0.3)
        extra = [
            ev
            for ev in customer.drain()
            if ev.get("request_id") == rid
            and ev["type"] == "request.update"
            and ev["status"] != "open"
        ]
        assert extra == []
        # Late accepts, once the race is decided (answered from the closing node's
        # note where it has one, else from the database): the same answers, and
        # still nothing about a request to an expert it was never offered to.
        late = await asyncio.gather(*(e.request("offer.accept", request_id=rid) for e in experts))
        assert {r.get("code") for r in late} == {"offer_taken"}, late
        assert (await outsider.request("offer.accept", request_id=rid))["code"] == "not_found"
        # The winner is now busy; replace him so that 30 race again.
        await experts[winner].close()
        experts[winner] = await add_expert(rnd + EXPERTS)
    for c in [customer, outsider, *experts]:
        await c.close()


@pytest.mark.timeout(300)
async def test_first_accept_wins_on_one_node(data_dir: Path) -> None:
    settings = node_settings(data_dir, offer_batch=EXPERTS)
    async with run_node(settings) as node:
        api = Api(node.http)
        await race_rounds([node], api)
        await api.aclose()


@pytest.mark.timeout(300)
async def test_first_accept_wins_across_three_processes(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    nodes = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 3, offer_batch=EXPERTS)
    try:
        api = Api(nodes[0].http)
        await race_rounds(list(nodes), api)
        await api.aclose()
    finally:
        for n in nodes:
            n.stop()
