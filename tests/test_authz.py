"""Contract rule 8 over real sockets and HTTP: each sees only their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from clients.rtclient import Api, Client
from tests.servers import Node, new_customer, new_expert, online_expert


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(reply: dict[str, Any], code: str) -> None:
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply


def assert_http_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


@dataclass
class World:
    """Two customers, an offered expert and one who was not offered, all connected."""

    customer: Client
    customer_token: str
    other_customer: Client
    other_customer_token: str
    offered: Client
    offered_token: str
    offered_user: dict[str, Any]
    outsider: Client
    outsider_token: str
    outsider_user: dict[str, Any]
    request_id: str

    async def close(self) -> None:
        for c in (self.customer, self.other_customer, self.offered, self.outsider):
            await c.close()


async def make_world(node: Node, api: Api) -> World:
    _, ctoken = await new_customer(api, "Alice")
    _, otoken = await new_customer(api, "Bob")
    customer = await Client.connect(node.ws, ctoken)
    other = await Client.connect(node.ws, otoken)
    offered_user, etoken = await new_expert(api, "Pythonista", skills=("python",))
    offered = await Client.connect(node.ws, etoken)
    await offered.call("presence", status="available")
    # Online and available too, but not qualified: never offered this request.
    outsider_user, xtoken = await new_expert(api, "Rustacean", skills=("rust",))
    outsider = await Client.connect(node.ws, xtoken)
    await outsider.call("presence", status="available")
    created = await customer.call(
        "request.create", kind="instant", title="Python help", skills=["python"], language="en"
    )
    request_id = created["request"]["id"]
    assert created["request"]["notified"] == 1
    assert (await offered.wait_event("offer.new"))["offer"]["request_id"] == request_id
    return World(
        customer,
        ctoken,
        other,
        otoken,
        offered,
        etoken,
        offered_user,
        outsider,
        xtoken,
        outsider_user,
        request_id,
    )


async def request_status(api: Api, token: str, request_id: str) -> str:
    r = await api.http.get(f"/api/requests/{request_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    status: str = r.json()["request"]["status"]
    return status


async def test_expert_not_offered_cannot_touch_the_request(node: Node, api: Api) -> None:
    w = await make_world(node, api)
    try:
        rid = w.request_id
        assert_error(await w.outsider.request("offer.accept", request_id=rid), "not_found")
        assert_error(await w.outsider.request("offer.decline", request_id=rid), "not_found")
        assert_error(
            await w.outsider.request("request.message", request_id=rid, text="pick me"),
            "not_found",
        )
        # Same answer as for a request that does not exist: nothing leaks.
        assert_error(await w.outsider.request("offer.accept", request_id="r-nope"), "not_found")
        assert_error(
            await w.outsider.request("request.message", request_id="r-nope", text="x"),
            "not_found",
        )
        assert await request_status(api, w.customer_token, rid) == "open"

        # The outsider's message reached nobody: the first request.message the
        # customer sees is the offered expert's.
        await w.offered.call("request.message", request_id=rid, text="I can help")
        got = await w.customer.wait_event("request.message")
        assert got["text"] == "I can help"
        assert got["from"]["id"] == w.offered_user["id"]

        # The outsider's decline did not close the offered expert's offer.
        accepted = await w.offered.call("offer.accept", request_id=rid)
        assert accepted["session"]["request_id"] == rid
        # After the accept, the outsider is still a stranger to it.
        assert_error(await w.outsider.request("offer.accept", request_id=rid), "not_found")
    finally:
        await w.close()


async def test_customer_cannot_accept_decline_or_set_presence(node: Node, api: Api) -> None:
    w = await make_world(node, api)
    try:
        rid = w.request_id
        # Not even on his own request.
        assert_error(await w.customer.request("offer.accept", request_id=rid), "forbidden")
        assert_error(await w.customer.request("offer.decline", request_id=rid), "forbidden")
        assert_error(await w.customer.request("presence", status="available"), "forbidden")
        assert_error(await w.other_customer.request("offer.accept", request_id=rid), "forbidden")
        assert await request_status(api, w.customer_token, rid) == "open"
        me = (await api.http.get("/api/me", headers=auth(w.customer_token))).json()["user"]
        assert me.get("presence") in (None, "away"), me
        # The offered expert's offer is untouched.
        offers = (await api.http.get("/api/offers", headers=auth(w.offered_token))).json()
        assert [o["request_id"] for o in offers["offers"]] == [rid]
    finally:
        await w.close()


async def test_expert_cannot_create_requests(node: Node, api: Api) -> None:
    _, etoken = await new_expert(api)
    _, other = await online_expert(node, api, skills=("python",))
    async with await Client.connect(node.ws, etoken) as expert:
        reply = await expert.request(
            "request.create", kind="instant", title="Help", skills=["python"], language="en"
        )
        assert_error(reply, "forbidden")
        r = await api.http.get("/api/requests", headers=auth(etoken))
        assert r.status_code == 200
        assert r.json()["requests"] == []
        # No offer went out: the only offer the other expert ever sees is a real one.
        _, ctoken = await new_customer(api)
        async with await Client.connect(node.ws, ctoken) as customer:
            created = await customer.call(
                "request.create", kind="instant", title="Real", skills=["python"], language="en"
            )
            offer = await other.wait_event("offer.new")
            assert offer["offer"]["request_id"] == created["request"]["id"]
    await other.close()


async def test_customer_cannot_cancel_or_see_anothers_request(node: Node, api: Api) -> None:
    w = await make_world(node, api)
    try:
        rid = w.request_id
        assert_error(await w.other_customer.request("request.cancel", request_id=rid), "not_found")
        assert_error(
            await w.other_customer.request("request.message", request_id=rid, text="hi"),
            "not_found",
        )
        assert await request_status(api, w.customer_token, rid) == "open"

        r = await api.http.get(f"/api/requests/{rid}", headers=auth(w.other_customer_token))
        assert_http_error(r, 404, "not_found")
        # Indistinguishable from a request that does not exist.
        r = await api.http.get("/api/requests/r-nope", headers=auth(w.other_customer_token))
        assert_http_error(r, 404, "not_found")
        r = await api.http.get("/api/requests", headers=auth(w.other_customer_token))
        assert r.json()["requests"] == []
        assert not [x for x in w.other_customer.drain() if x.get("request_id") == rid]

        # His own customer sees it, in the list and by id, and can cancel it.
        r = await api.http.get("/api/requests", headers=auth(w.customer_token))
        assert [x["id"] for x in r.json()["requests"]] == [rid]
        await w.customer.call("request.cancel", request_id=rid)
        assert await request_status(api, w.customer_token, rid) == "cancelled"
    finally:
        await w.close()


async def test_offered_expert_can_get_the_request_others_cannot(node: Node, api: Api) -> None:
    w = await make_world(node, api)
    try:
        rid = w.request_id
        r = await api.http.get(f"/api/requests/{rid}", headers=auth(w.offered_token))
        assert r.status_code == 200, r.text
        assert r.json()["request"]["id"] == rid
        r = await api.http.get(f"/api/requests/{rid}", headers=auth(w.outsider_token))
        assert_http_error(r, 404, "not_found")
        # No token at all is 401, not a peek.
        r = await api.http.get(f"/api/requests/{rid}")
        assert_http_error(r, 401, "unauthenticated")
    finally:
        await w.close()


async def test_session_is_visible_to_its_participants_only(node: Node, api: Api) -> None:
    w = await make_world(node, api)
    try:
        accepted = await w.offered.call("offer.accept", request_id=w.request_id)
        session_id = accepted["session"]["id"]
        for token in (w.customer_token, w.offered_token):
            r = await api.http.get(f"/api/sessions/{session_id}", headers=auth(token))
            assert r.status_code == 200, r.text
            session = r.json()["session"]
            assert session["id"] == session_id
            assert session["expert"]["id"] == w.offered_user["id"]
        for token in (w.other_customer_token, w.outsider_token):
            r = await api.http.get(f"/api/sessions/{session_id}", headers=auth(token))
            assert_http_error(r, 404, "not_found")
        r = await api.http.get("/api/sessions/s-nope", headers=auth(w.customer_token))
        assert_http_error(r, 404, "not_found")
        # After the accept the request is visible to its winner, still not to others.
        r = await api.http.get(f"/api/requests/{w.request_id}", headers=auth(w.offered_token))
        assert r.status_code == 200
        r = await api.http.get(
            f"/api/requests/{w.request_id}", headers=auth(w.other_customer_token)
        )
        assert_http_error(r, 404, "not_found")
        # Sessions show up in the participants' state only.
        for token, sees in (
            (w.customer_token, True),
            (w.offered_token, True),
            (w.other_customer_token, False),
            (w.outsider_token, False),
        ):
            async with await Client.connect(node.ws, token) as c:
                ids = [s["id"] for s in c.state["sessions"]]
                assert (session_id in ids) is sees, (sees, c.state)
    finally:
        await w.close()


async def test_offers_never_show_up_for_another_expert(node: Node, api: Api) -> None:
    w = await make_world(node, api)
    try:
        rid = w.request_id
        # Control: the offered expert sees it over HTTP and in a fresh state.
        r = await api.http.get("/api/offers", headers=auth(w.offered_token))
        assert [o["request_id"] for o in r.json()["offers"]] == [rid]
        async with await Client.connect(node.ws, w.offered_token) as again:
            assert [o["request_id"] for o in again.state["offers"]] == [rid]

        r = await api.http.get("/api/offers", headers=auth(w.outsider_token))
        assert r.status_code == 200
        assert r.json()["offers"] == []
        async with await Client.connect(node.ws, w.outsider_token) as again:
            assert again.state["offers"] == []
            assert again.state["requests"] == []
        assert not [e for e in w.outsider.drain() if e.get("type") == "offer.new"]
        # Customers hold no offers either, and the other customer sees no requests.
        r = await api.http.get("/api/offers", headers=auth(w.other_customer_token))
        assert r.json()["offers"] == []
        async with await Client.connect(node.ws, w.other_customer_token) as again:
            assert again.state["requests"] == []
            assert again.state["offers"] == []
    finally:
        await w.close()
