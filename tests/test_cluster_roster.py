"""Matching's in-memory index (the roster) follows changes made on other nodes."""

from __future__ import annotations

from pathlib import Path

from clients.rtclient import Api, Client
from tests.servers import RedisServer, new_customer, new_expert, online_expert, start_cluster


async def test_preferences_changed_on_another_node_are_matched_on_this_one(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    a, b = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 2)
    try:
        api_a, api_b = Api(a.http), Api(b.http)
        _, ctoken = await new_customer(api_a)
        on_a = await Client.connect(a.ws, ctoken)
        on_b = await Client.connect(b.ws, ctoken)
        _, stays = await online_expert(a, api_a, name="stays python")
        _, token = await new_expert(api_a, name="turns go")
        turns = await Client.connect(b.ws, token)
        await turns.call("presence", status="available")

        async def create(customer: Client, skill: str) -> dict:
            reply = await customer.call(
                "request.create", kind="instant", title="Help", skills=[skill], language="en"
            )
            await customer.call("request.cancel", request_id=reply["request"]["id"])
            return reply["request"]

        # A loads its roster (a skill nobody has: offering them would reload them).
        assert (await create(on_a, "rust"))["notified"] == 0
        # Through B: python -> go.
        await api_b.preferences(token, skills=["go"], languages=["en"], rate_cents_per_15min=1)
        # An offer B sends after the change reaches A's expert through the same
        # stream, so A has read the change by then (no sleeping for it).
        sent = await create(on_b, "python")
        assert sent["notified"] == 1
        await stays.wait_event("offer.new", lambda e: e["offer"]["request_id"] == sent["id"])
        # A no longer offers him python, and offers him go.
        assert (await create(on_a, "python"))["notified"] == 1
        go = await create(on_a, "go")
        assert go["notified"] == 1
        await turns.wait_event("offer.new", lambda e: e["offer"]["request_id"] == go["id"])
        for c in (on_a, on_b, stays, turns):
            await c.close()
        await api_a.aclose()
        await api_b.aclose()
    finally:
        a.stop()
        b.stop()
