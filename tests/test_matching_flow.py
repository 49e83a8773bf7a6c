"""Contract rule 2, matching, end to end on one embedded node.

Only connected, available, free, qualified experts are offered an instant
request, ``--offer-batch`` at a time; a wave that ends unanswered is revoked
(``expired``) and the next goes out, until ``--request-ttl`` ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clients.rtclient import Api, Client
from rtserver.hub import matching
from tests.servers import Node, new_customer, new_expert, node_settings, online_expert, run_node

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def short_node(data_dir: Path) -> AsyncIterator[Node]:
    """Waves of 2 experts, 1 s each, requests that search for 3.5 s."""
    settings = node_settings(data_dir, offer_batch=2, offer_ttl="1s", request_ttl="3.5s")
    async with run_node(settings) as n:
        yield n


async def create(customer: Client, **fields: object) -> dict:
    body = {"kind": "instant", "title": "Help", "skills": ["python"], "language": "en", **fields}
    reply = await customer.call("request.create", **body)
    return reply["request"]


async def test_only_qualified_available_connected_free_experts(node: Node, api: Api) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    good_user, good = await online_expert(node, api, skills=("Python", "django"))
    _, wrong_lang = await online_expert(node, api, languages=("fr",))
    _, wrong_skill = await online_expert(node, api, skills=("rust",))
    _, away_token = await new_expert(api)
    away = await Client.connect(node.ws, away_token)  # connected, never said available
    _, gone_token = await new_expert(api)
    gone = await Client.connect(node.ws, gone_token)
    await gone.call("presence", status="available")
    await gone.close()  # available but not connected
    request = await create(customer, skills=["python", "go"])
    assert request["notified"] == 1
    offer = await good.wait_event("offer.new")
    assert offer["offer"]["request_id"] == request["id"]
    assert offer["offer"]["customer"]["name"] == "Customer"
    # The winner is busy now: the next request finds nobody.
    await good.call("offer.accept", request_id=request["id"])
    second = await create(customer)
    assert second["notified"] == 0
    await asyncio.sleep(0.2)
    for c in (wrong_lang, wrong_skill, away):
        assert [e for e in c.drain() if e["type"] == "offer.new"] == []
    assert good_user["id"]
    for c in (customer, good, wrong_lang, wrong_skill, away):
        await c.close()


async def test_waves_until_the_request_expires(short_node: Node) -> None:
    api = Api(short_node.http)
    _, ctoken = await new_customer(api)
    customer = await Client.connect(short_node.ws, ctoken)
    experts = [await online_expert(short_node, api, name=f"E{i}") for i in range(5)]
    request = await create(customer)
    rid = request["id"]
    assert request["notified"] == 2
    notified = [2]
    while True:
        ev = await customer.wait_event("request.update", lambda e: e["request_id"] == rid)
        if ev["status"] != "open":
            break
        if ev["notified"] != notified[-1]:
            notified.append(ev["notified"])
    assert ev["status"] == "expired"
    assert notified == [2, 4, 5]
    # Each expert was offered once and saw his offer revoked as expired.
    for _, e in experts:
        events = [
            ev
            for ev in e.drain()
            if ev.get("request_id", ev.get("offer", {}).get("request_id")) == rid
        ]
        kinds = [ev["type"] for ev in events]
        assert kinds == ["offer.new", "offer.revoked"], kinds
        assert events[1]["reason"] == "expired"
    # An accept after the end is refused.
    reply = await experts[0][1].request("offer.accept", request_id=rid)
    assert reply["code"] == "offer_expired"
    for c in (customer, *(e for _, e in experts)):
        await c.close()
    await api.aclose()


async def test_a_wave_that_everyone_declines_moves_on_at_once(data_dir: Path) -> None:
    settings = node_settings(data_dir, offer_batch=2, offer_ttl="60s", request_ttl="10m")
    async with run_node(settings) as node:
        api = Api(node.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(node.ws, ctoken)
        experts = [await online_expert(node, api, name=f"E{i}") for i in range(3)]
        rid = (await create(customer))["id"]
        offered = []
        for _, e in experts[:2]:
            offered.append(e)
        for e in offered:
            await e.wait_event("offer.new")
            await e.call("offer.decline", request_id=rid)
        # The third expert gets the second wave long before the 60 s TTL.
        ev = await experts[2][1].wait_event("offer.new", timeout=10)
        assert ev["offer"]["request_id"] == rid
        update = await customer.wait_event(
            "request.update", lambda e: e["request_id"] == rid and e["notified"] == 3
        )
        assert update["status"] == "open"
        for c in (customer, *(e for _, e in experts)):
            await c.close()
        await api.aclose()


async def test_direct_request_goes_to_its_expert_only_and_decline_is_told(
    node: Node, api: Api
) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    target_user, target = await online_expert(node, api)
    _, other = await online_expert(node, api)
    request = await create(customer, expert_id=target_user["id"])
    assert request["direct"] is True and request["notified"] == 1
    offer = await target.wait_event("offer.new")
    assert offer["offer"]["direct"] is True
    await target.call("offer.decline", request_id=request["id"])
    update = await customer.wait_event(
        "request.update", lambda e: e["request_id"] == request["id"] and e["status"] != "open"
    )
    assert update["status"] == "declined"
    await asyncio.sleep(0.2)
    assert [e for e in other.drain() if e["type"] == "offer.new"] == []
    reply = await customer.request(
        "request.create",
        kind="instant",
        title="x",
        skills=["python"],
        language="en",
        expert_id="u_nobody",
    )
    assert reply["code"] == "not_found"
    for c in (customer, target, other):
        await c.close()


async def test_cancel_revokes_offers(node: Node, api: Api) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    _, expert = await online_expert(node, api)
    rid = (await create(customer))["id"]
    await expert.wait_event("offer.new")
    await customer.call("request.cancel", request_id=rid)
    revoked = await expert.wait_event("offer.revoked")
    assert revoked == {"type": "offer.revoked", "request_id": rid, "reason": "cancelled"}
    update = await customer.wait_event(
        "request.update", lambda e: e["request_id"] == rid and e["status"] != "open"
    )
    assert update["status"] == "cancelled"
    assert (await expert.request("offer.accept", request_id=rid))["code"] == "request_cancelled"
    assert (await customer.request("request.cancel", request_id=rid))["code"] == "invalid_state"
    for c in (customer, expert):
        await c.close()


async def test_reconnecting_expert_gets_open_offers_in_state(node: Node, api: Api) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    _, etoken = await new_expert(api)
    expert = await Client.connect(node.ws, etoken)
    await expert.call("presence", status="available")
    rid = (await create(customer))["id"]
    await expert.wait_event("offer.new")
    await expert.close()
    again = await Client.connect(node.ws, etoken)
    assert [o["request_id"] for o in again.state["offers"]] == [rid]
    assert again.state["presence"] == "available"
    # The customer sees his open request in state too.
    c2 = await Client.connect(node.ws, ctoken)
    assert [r["id"] for r in c2.state["requests"]] == [rid]
    await again.call("offer.accept", request_id=rid)
    c3 = await Client.connect(node.ws, ctoken)
    assert c3.state["requests"] == []
    assert [s["request_id"] for s in c3.state["sessions"]] == [rid]
    assert c3.state["sessions"][0]["status"] == "active"
    for c in (customer, again, c2, c3):
        await c.close()


async def test_request_messages_reach_both_sides(node: Node, api: Api) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    expert_user, expert = await online_expert(node, api)
    rid = (await create(customer))["id"]
    await expert.wait_event("offer.new")
    reply = await expert.call("request.message", request_id=rid, text="Which version?")
    assert reply["message"]["from"]["id"] == expert_user["id"]
    got = await customer.wait_event("request.message")
    assert got["text"] == "Which version?" and got["from"]["role"] == "expert"
    await customer.call("request.message", request_id=rid, text="3.12")
    got = await expert.wait_event("request.message", lambda e: e["text"] == "3.12")
    assert got["from"]["role"] == "customer"
    for c in (customer, expert):
        await c.close()


async def test_winning_withdraws_the_winners_other_offers(data_dir: Path) -> None:
    # One expert holds offers of two requests; when he wins the first, his offer of
    # the second is withdrawn and its next wave goes out at once, not after 60 s.
    settings = node_settings(data_dir, offer_batch=1, offer_ttl="60s")
    async with run_node(settings) as node:
        api = Api(node.http)
        _, t1 = await new_customer(api)
        _, t2 = await new_customer(api)
        c1 = await Client.connect(node.ws, t1)
        c2 = await Client.connect(node.ws, t2)
        _, first = await online_expert(node, api, name="First")
        r1 = (await create(c1))["id"]
        r2 = (await create(c2))["id"]
        await first.wait_event("offer.new", lambda e: e["offer"]["request_id"] == r1)
        await first.wait_event("offer.new", lambda e: e["offer"]["request_id"] == r2)
        _, second = await online_expert(node, api, name="Second")
        await first.call("offer.accept", request_id=r1)
        revoked = await first.wait_event("offer.revoked", lambda e: e["request_id"] == r2)
        assert revoked["reason"] == "taken"
        offer = await second.wait_event("offer.new", timeout=10)
        assert offer["offer"]["request_id"] == r2
        for c in (c1, c2, first, second):
            await c.close()
        await api.aclose()


async def test_a_request_waiting_for_anyone_is_offered_to_an_expert_who_turns_available(
    data_dir: Path,
) -> None:
    # Nobody qualifies at first; an expert turning available is offered the request
    # at once, not at the next safety-net retry (10 s) or wave (60 s).
    settings = node_settings(data_dir, offer_ttl="60s")
    async with run_node(settings) as node:
        api = Api(node.http)
        _, ctoken = await new_customer(api)
        customer = await Client.connect(node.ws, ctoken)
        _, etoken = await new_expert(api)
        expert = await Client.connect(node.ws, etoken)
        request = await create(customer)
        assert request["notified"] == 0
        await expert.call("presence", status="available")
        offer = await expert.wait_event("offer.new", timeout=5)
        assert offer["offer"]["request_id"] == request["id"]
        update = await customer.wait_event(
            "request.update", lambda e: e["notified"] == 1, timeout=5
        )
        assert update["status"] == "open"
        for c in (customer, expert):
            await c.close()
        await api.aclose()


async def offered_one(experts: list[Client], request_id: str) -> Client:
    """The one of these experts offered this request (and fail if several are)."""
    async with asyncio.timeout(10):
        while True:
            got = [
                expert
                for expert in experts
                for e in expert.drain()
                if e["type"] == "offer.new" and e["offer"]["request_id"] == request_id
            ]
            assert len(got) <= 1, got
            if got:
                return got[0]
            await asyncio.sleep(0.01)


async def test_a_wave_walks_past_more_busy_experts_than_it_asks_about_at_once(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waves of 1 and pages of 4: a wave asks who is in a session once it has 4
    # connected candidates (WAVE_DEPTH x --offer-batch), not once per page. Six
    # busy experts who answered fast rank above the two fresh ones: the first
    # page is all busy, so the walk goes on and asks again, and the offers go to
    # the free ones only.
    monkeypatch.setattr(matching, "WALK_STEP", 1)
    settings = node_settings(data_dir, offer_batch=1, offer_ttl="60s")
    async with run_node(settings) as node:
        api = Api(node.http)
        experts = [c for _, c in [await online_expert(node, api, name=f"E{i}") for i in range(6)]]
        clients = list(experts)
        for _ in range(6):
            _, token = await new_customer(api)
            customer = await Client.connect(node.ws, token)
            clients.append(customer)
            request = await create(customer)
            assert request["notified"] == 1
            winner = await offered_one(experts, request["id"])
            await winner.call("offer.accept", request_id=request["id"])
        free = [c for _, c in [await online_expert(node, api, name=f"F{i}") for i in range(2)]]
        clients += free
        _, token = await new_customer(api)
        customer = await Client.connect(node.ws, token)
        clients.append(customer)
        for _ in range(2):
            request = await create(customer)
            assert request["notified"] == 1
            await offered_one(free, request["id"])
            await customer.call("request.cancel", request_id=request["id"])
        for expert in experts:
            assert [e for e in expert.drain() if e["type"] == "offer.new"] == []
        for c in clients:
            await c.close()
        await api.aclose()
