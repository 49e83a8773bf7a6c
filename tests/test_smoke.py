"""The shortest path through the contract: register, connect, request, accept."""

from __future__ import annotations

import asyncio

import pytest

from clients.rtclient import Api, Client
from tests.servers import Node, new_customer, online_expert

pytestmark = pytest.mark.both_backends


async def test_instant_request_is_accepted(node: Node, api: Api) -> None:
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    experts = [await online_expert(node, api, name=f"E{i}") for i in range(3)]
    reply = await customer.call(
        "request.create", kind="instant", title="Help", skills=["python"], language="en"
    )
    request_id = reply["request"]["id"]
    assert reply["request"]["notified"] == 3
    for _, e in experts:
        offer = await e.wait_event("offer.new")
        assert offer["offer"]["request_id"] == request_id
    replies = await asyncio.gather(
        *(e.request("offer.accept", request_id=request_id) for _, e in experts)
    )
    assert sorted(r["type"] for r in replies) == ["error", "error", "ok"]
    update = await customer.wait_event("request.update", lambda e: e["status"] == "accepted")
    assert update["session_id"]
    for c in [customer, *(e for _, e in experts)]:
        await c.close()
