"""Contract rule 7 over real sockets: bad input gets a clear answer, the socket
stays open, and nothing stored changes. Both subprotocols where it makes sense."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import msgpack
import pytest
import websockets

from clients.rtclient import Api, Client
from tests.servers import Node, new_customer, new_expert, online_expert

PROTOCOLS = ["rt.v1.json", "rt.v1.msgpack"]
_probe_ids = itertools.count(1)
# Only against hangs: every answer comes at once.
TIMEOUT = 10


@pytest.fixture(params=PROTOCOLS)
def proto(request: pytest.FixtureRequest) -> str:
    """The subprotocol under test."""
    value: str = request.param
    return value


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def raw_client(node: Node, token: str, proto: str) -> Client:
    """A socket authenticated by hand, with no background reader: every frame is ours."""
    c = await Client.connect(node.ws, token, subprotocol=proto, hello=False)
    assert c.ws.subprotocol == proto
    await c.send({"type": "hello", "id": 1, "token": token})
    hello = await next_frame(c)
    assert hello["type"] == "ok" and hello["re"] == 1, hello
    state = await next_frame(c)
    assert state["type"] == "state", state
    return c


async def next_frame(c: Client) -> dict[str, Any]:
    """The very next frame, checked to be encoded as the subprotocol says."""
    data = await asyncio.wait_for(c.ws.recv(), TIMEOUT)
    if c.binary:
        assert isinstance(data, bytes), f"msgpack socket got a text frame: {data!r}"
        frame: dict[str, Any] = msgpack.unpackb(data, raw=False)
    else:
        assert isinstance(data, str), f"json socket got a binary frame: {data!r}"
        frame = json.loads(data)
    assert isinstance(frame, dict), frame
    return frame


async def next_reply(c: Client) -> dict[str, Any]:
    """The next ``ok`` or ``error`` frame; pushed events in between are skipped."""
    while True:
        frame = await next_frame(c)
        if frame.get("type") in ("ok", "error"):
            return frame


async def assert_alive(c: Client) -> None:
    """The socket still serves: a ping gets its ok, and it is the next reply."""
    probe = f"alive-{next(_probe_ids)}"
    await c.send({"type": "ping", "id": probe})
    reply = await next_reply(c)
    assert reply == {"type": "ok", "re": probe}, reply


NO_RE = object()
# Client.request only returns the reply whose re is the id it sent.
MATCHED = object()


def assert_error(reply: dict[str, Any], code: str, re: Any = NO_RE) -> None:
    """An error frame with this code, a message, and the given re (or none)."""
    assert reply["type"] == "error", reply
    assert reply["code"] == code, reply
    assert isinstance(reply["message"], str) and reply["message"], reply
    if re is NO_RE:
        assert reply.get("re") is None, reply
    elif re is not MATCHED:
        assert reply["re"] == re, reply
        assert type(reply["re"]) is type(re), reply


# -- frames that do not decode ------------------------------------------------------

UNDECODABLE: dict[str, list[bytes | str]] = {
    "rt.v1.json": ["{not json", '{"type": "ping", "id": 1', "", b"\xff\xfe\x00garbage"],
    "rt.v1.msgpack": [b"\xc1", b"\x92\x01", b"\x81\xa4type", b"\x01\x02", "{not json"],
}


async def test_frame_that_does_not_decode_is_bad_frame(node: Node, api: Api, proto: str) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        for data in UNDECODABLE[proto]:
            await c.send_raw(data)
            assert_error(await next_reply(c), "bad_frame")
            await assert_alive(c)
    finally:
        await c.close()


async def test_frame_that_is_not_a_map_is_bad_frame(node: Node, api: Api, proto: str) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        for value in ([1, 2], [{"type": "ping", "id": 3}], 42, 1.5, "ping", None, True):
            await c.send(value)
            reply = await next_reply(c)
            assert_error(reply, "bad_frame")
            await assert_alive(c)
    finally:
        await c.close()


async def test_frame_without_type_is_bad_frame_with_re(node: Node, api: Api, proto: str) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        for frame, re in (
            ({"id": 5}, 5),
            ({"id": "abc", "status": "available"}, "abc"),
            ({"id": 6, "type": None}, 6),
            ({"id": 8, "type": 12}, 8),
            ({"id": 9, "type": ["ping"]}, 9),
            ({}, NO_RE),
        ):
            await c.send(frame)
            assert_error(await next_reply(c), "bad_frame", re)
            await assert_alive(c)
    finally:
        await c.close()


@pytest.mark.parametrize("bad_id", [1.5, True, False, [1], {"n": 1}, "x" * 65], ids=repr)
async def test_invalid_id_is_bad_frame(node: Node, api: Api, proto: str, bad_id: Any) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        # A ping with a bad id is not served: the answer is bad_frame, not ok.
        await c.send({"type": "ping", "id": bad_id})
        assert_error(await next_reply(c), "bad_frame")
        await assert_alive(c)
    finally:
        await c.close()


async def test_valid_ids_at_the_limits_are_answered(node: Node, api: Api, proto: str) -> None:
    """Control for the test above: an integer or a string of up to 64 characters is an id."""
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        for good_id in (0, -3, 2**40, 2**63 - 1, -(2**63), "x" * 64, "a", ""):
            await c.send({"type": "ping", "id": good_id})
            reply = await next_reply(c)
            assert reply == {"type": "ok", "re": good_id}, reply
    finally:
        await c.close()


@pytest.mark.parametrize("huge", [2**64, -(2**63) - 1, 10**30], ids=str)
async def test_integer_id_beyond_64_bits_gets_one_clear_answer(
    node: Node, api: Api, huge: int
) -> None:
    """JSON can carry any integer: the answer is its ok, or bad_frame; never a dead socket."""
    _, token = await new_customer(api)
    c = await raw_client(node, token, "rt.v1.json")
    try:
        await c.send({"type": "ping", "id": huge})
        reply = await next_reply(c)
        if reply["type"] == "ok":
            assert reply == {"type": "ok", "re": huge}
        else:
            assert_error(reply, "bad_frame")
        await assert_alive(c)
    finally:
        await c.close()


async def test_unknown_type_is_answered_with_re(node: Node, api: Api, proto: str) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        for frame, re in (
            ({"type": "nope", "id": 9}, 9),
            ({"type": "request.delete", "id": "d1", "request_id": "r"}, "d1"),
            ({"type": "PING", "id": 10}, 10),
        ):
            await c.send(frame)
            assert_error(await next_reply(c), "unknown_type", re)
            await assert_alive(c)
    finally:
        await c.close()


async def test_hello_again_is_invalid_state(node: Node, api: Api, proto: str) -> None:
    user, token = await new_customer(api)
    _, other_token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        await c.send({"type": "hello", "id": 2, "token": token})
        assert_error(await next_reply(c), "invalid_state", 2)
        # Not a way to switch users either.
        await c.send({"type": "hello", "id": 3, "token": other_token})
        assert_error(await next_reply(c), "invalid_state", 3)
        await assert_alive(c)
    finally:
        await c.close()
    # The server still knows the first user (the second hello did not break him).
    async with await Client.connect(node.ws, token, subprotocol=proto) as again:
        assert again.hello["user"]["id"] == user["id"]


async def test_failed_command_without_id_gets_error_without_re(
    node: Node, api: Api, proto: str
) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        for frame, code in (
            ({"type": "nope"}, "unknown_type"),
            ({"type": "request.create", "kind": "later"}, "invalid_field"),
            ({"type": "request.cancel"}, "invalid_field"),
            ({"type": "presence", "status": "available"}, "forbidden"),
            ({"no": "type"}, "bad_frame"),
        ):
            await c.send(frame)
            assert_error(await next_reply(c), code)
            await assert_alive(c)
    finally:
        await c.close()


async def test_no_ok_for_a_command_without_id(node: Node, api: Api, proto: str) -> None:
    _, ctoken = await new_customer(api)
    c = await raw_client(node, ctoken, proto)
    try:
        await c.send({"type": "ping"})
        await c.send({"type": "ping", "id": 7})
        assert await next_frame(c) == {"type": "ok", "re": 7}
    finally:
        await c.close()

    # A command without id that does something: done, but still no ok.
    _, etoken = await new_expert(api)
    e = await raw_client(node, etoken, proto)
    try:
        await e.send({"type": "presence", "status": "available"})
        await e.send({"type": "ping", "id": 7})
        assert await next_frame(e) == {"type": "ok", "re": 7}
        me = (await api.http.get("/api/me", headers=auth(etoken))).json()["user"]
        assert me["presence"] == "available"
    finally:
        await e.close()


# -- known types with a missing or wrong field ----------------------------------------


async def test_invalid_presence_changes_nothing(node: Node, api: Api, proto: str) -> None:
    _, token = await new_expert(api)

    async def presence() -> str:
        r = await api.http.get("/api/me", headers=auth(token))
        assert r.status_code == 200
        value: str = r.json()["user"]["presence"]
        return value

    assert await presence() == "away"
    async with await Client.connect(node.ws, token, subprotocol=proto) as e:
        bad: list[dict[str, Any]] = [
            {"status": "busy"},
            {},
            {"status": 1},
            {"status": None},
            {"status": "AVAILABLE"},
        ]
        for fields in bad:
            assert_error(await e.request("presence", **fields), "invalid_field", MATCHED)
        assert await presence() == "away"
        await e.call("presence", status="available")
        assert await presence() == "available"
        for fields in bad:
            assert_error(await e.request("presence", **fields), "invalid_field", MATCHED)
        assert await presence() == "available"
        await e.call("ping")


async def test_invalid_request_create_stores_and_offers_nothing(
    node: Node, api: Api, proto: str
) -> None:
    _, ctoken = await new_customer(api)
    _, expert = await online_expert(node, api, skills=("python",), languages=("en",))
    base: dict[str, Any] = {
        "kind": "instant",
        "title": "Help with asyncio",
        "skills": ["python"],
        "language": "en",
    }
    bad: list[dict[str, Any]] = [
        {**base, "skills": []},
        {**base, "skills": ["python", *(f"s{i}" for i in range(20))]},
        {k: v for k, v in base.items() if k != "language"},
        {**base, "title": "t" * 201},
        {**base, "kind": "later"},
        {k: v for k, v in base.items() if k != "kind"},
        {k: v for k, v in base.items() if k != "title"},
        {k: v for k, v in base.items() if k != "skills"},
        {**base, "title": ""},
        {**base, "skills": "python"},
        {**base, "skills": ["python", 3]},
        {**base, "language": 5},
        {**base, "description": "d" * 10_001},
        {**base, "proposed_times": ["2030-01-01T10:00:00Z"] * 6},
    ]
    async with await Client.connect(node.ws, ctoken, subprotocol=proto) as c:
        for fields in bad:
            reply = await c.request("request.create", **fields)
            assert_error(reply, "invalid_field", MATCHED)
        r = await api.http.get("/api/requests", headers=auth(ctoken))
        assert r.status_code == 200
        assert r.json()["requests"] == []
        await c.call("ping")

        # The limits themselves are valid: 200 characters of title, 20 skills.
        good = {**base, "title": "t" * 200, "skills": ["python", *(f"s{i}" for i in range(19))]}
        created = await c.call("request.create", **good)
        request_id = created["request"]["id"]
        # The first offer the expert ever got is this one: none came from the bad ones.
        offer = await expert.wait_event("offer.new")
        assert offer["offer"]["request_id"] == request_id
        r = await api.http.get("/api/requests", headers=auth(ctoken))
        assert [x["id"] for x in r.json()["requests"]] == [request_id]
    await expert.close()


async def test_invalid_cancel_message_accept_decline(node: Node, api: Api, proto: str) -> None:
    _, ctoken = await new_customer(api)
    _, etoken = await new_expert(api, skills=("python",), languages=("en",))
    customer = await Client.connect(node.ws, ctoken, subprotocol=proto)
    expert = await Client.connect(node.ws, etoken, subprotocol=proto)
    try:
        await expert.call("presence", status="available")
        created = await customer.call(
            "request.create", kind="instant", title="Help", skills=["python"], language="en"
        )
        request_id = created["request"]["id"]
        assert (await expert.wait_event("offer.new"))["offer"]["request_id"] == request_id

        async def status() -> str:
            r = await api.http.get(f"/api/requests/{request_id}", headers=auth(ctoken))
            assert r.status_code == 200
            value: str = r.json()["request"]["status"]
            return value

        # request.cancel without (or with a wrong) request_id.
        for fields in ({}, {"request_id": 5}, {"request_id": ""}, {"request_id": None}):
            assert_error(
                await customer.request("request.cancel", **fields),
                "invalid_field",
                MATCHED,
            )
        assert await status() == "open"

        # request.message with an empty or missing text.
        for fields in (
            {"request_id": request_id, "text": ""},
            {"request_id": request_id},
            {"request_id": request_id, "text": 7},
            {"text": "hello"},
        ):
            assert_error(
                await customer.request("request.message", **fields),
                "invalid_field",
                MATCHED,
            )
        await customer.call("request.message", request_id=request_id, text="first real one")
        got = await expert.wait_event("request.message")
        assert got["text"] == "first real one"

        # offer.accept / offer.decline with a request_id that is not a string.
        for type_, fields in (
            ("offer.accept", {"request_id": 5}),
            ("offer.accept", {}),
            ("offer.accept", {"request_id": [request_id]}),
            ("offer.decline", {"request_id": 5}),
            ("offer.decline", {}),
        ):
            assert_error(await expert.request(type_, **fields), "invalid_field", MATCHED)
        assert await status() == "open"
        offers = (await api.http.get("/api/offers", headers=auth(etoken))).json()["offers"]
        assert [o["request_id"] for o in offers] == [request_id]

        # The offer is intact: the real accept wins.
        accepted = await expert.call("offer.accept", request_id=request_id)
        assert accepted["session"]["request_id"] == request_id
        update = await customer.wait_event("request.update", lambda e: e["status"] != "open")
        assert update["status"] == "accepted"
        assert await status() == "accepted"
    finally:
        await customer.close()
        await expert.close()


async def test_frame_over_max_frame_closes_with_1009(node: Node, api: Api, proto: str) -> None:
    _, token = await new_customer(api)
    c = await raw_client(node, token, proto)
    try:
        await assert_alive(c)
        limit = node.settings.max_frame
        await c.send(
            {
                "type": "request.create",
                "id": 2,
                "kind": "instant",
                "title": "big",
                "skills": ["python"],
                "language": "en",
                "description": "x" * (limit + 10),
            }
        )
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await next_frame(c)
        assert c.ws.close_code == 1009
    finally:
        await c.close()
    r = await api.http.get("/api/requests", headers=auth(token))
    assert r.json()["requests"] == []
