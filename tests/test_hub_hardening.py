"""Issue 8, the request path: each defect found by review, shown fixed.

- one expert, two sockets, two instant accepts at once: one session, not two
  (on one node and across two node processes on Redis);
- the rate of an offer is the rate charged, whatever he sets afterwards;
- ``request.create`` is idempotent by ``cid``, and its first wave's timer is
  written with it, so a create cut off after its commit still gets its waves;
- a command is one unit: a socket closed under an accept or a send does not
  cut it between the claim and the write, or between the commit and the relay;
- an expert whose offer ended can no longer message the customer;
- far-future proposed times are refused;
- a token that expires ends its socket (4401).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clients.rtclient import Api, Client
from tests.servers import (
    Clients,
    Node,
    RedisServer,
    new_customer,
    new_expert,
    node_settings,
    online_expert,
    run_node,
    start_cluster,
)
from tests.storage import INTEGRITY_ERRORS, execute, query

pytestmark = pytest.mark.both_backends

INSTANT = {"kind": "instant", "skills": ["python"], "language": "en"}


def active_sessions(data_dir: Path) -> dict[str, int]:
    """Active sessions per expert, read from the database."""
    rows = query(
        data_dir,
        "SELECT expert_id, count(*) AS n FROM sessions WHERE status = 'active' GROUP BY expert_id",
    )
    return {r["expert_id"]: int(r["n"]) for r in rows}


async def two_sockets_accept_two_requests(
    nodes: list[Node], api: Api, data_dir: Path, rounds: int
) -> None:
    """Each round: a fresh expert with a socket on each node; two customers' requests
    offered to him only; he accepts both at once, one from each socket."""
    for rnd in range(rounds):
        _, etoken = await new_expert(api, name=f"E{rnd}", skills=(f"skill{rnd}",))
        sockets = [await Client.connect(n.ws, etoken) for n in nodes]
        if len(sockets) == 1:
            sockets.append(await Client.connect(nodes[0].ws, etoken))
        await sockets[0].call("presence", status="available")
        rids = []
        customers = []
        for i in range(2):
            _, ctoken = await new_customer(api, name=f"C{rnd}.{i}")
            customer = await Client.connect(nodes[i % len(nodes)].ws, ctoken)
            customers.append(customer)
            reply = await customer.call(
                "request.create", **{**INSTANT, "skills": [f"skill{rnd}"]}, title=f"r{rnd}.{i}"
            )
            assert reply["request"]["notified"] == 1
            rids.append(reply["request"]["id"])
        for s in sockets:
            for rid in rids:
                await s.wait_event("offer.new", lambda e, rid=rid: e["offer"]["request_id"] == rid)
        replies = await asyncio.gather(
            sockets[0].request("offer.accept", request_id=rids[0]),
            sockets[1].request("offer.accept", request_id=rids[1]),
        )
        oks = [r for r in replies if r["type"] == "ok"]
        assert len(oks) == 1, replies
        lost = [r for r in replies if r["type"] == "error"]
        assert lost[0]["code"] == "invalid_state", lost
        assert all(n <= 1 for n in active_sessions(data_dir).values())
        for c in [*sockets, *customers]:
            await c.close()


@pytest.mark.timeout(240)
async def test_one_expert_two_sockets_two_accepts_one_session(data_dir: Path) -> None:
    async with run_node(node_settings(data_dir)) as node:
        api = Api(node.http)
        await two_sockets_accept_two_requests([node], api, data_dir, rounds=6)
        await api.aclose()


@pytest.mark.timeout(300)
async def test_one_expert_two_nodes_two_accepts_one_session(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    nodes = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 2)
    try:
        api = Api(nodes[0].http)
        await two_sockets_accept_two_requests(list(nodes), api, data_dir, rounds=6)
        await api.aclose()
    finally:
        for n in nodes:
            n.stop()


async def test_the_database_refuses_a_second_active_session(node: Node, data_dir: Path) -> None:
    """The last guard: whatever writes it, the database refuses a second active session
    (SQLite: the ``expert_busy`` trigger; PostgreSQL: the partial unique index so named)."""
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    _, expert = await online_expert(node, api)
    rid = (await customer.call("request.create", **INSTANT, title="t"))["request"]["id"]
    await expert.wait_event("offer.new")
    session = (await expert.call("offer.accept", request_id=rid))["session"]
    with pytest.raises(INTEGRITY_ERRORS, match="expert_busy"):
        execute(
            data_dir,
            "INSERT INTO sessions (id, request_id, customer_id, expert_id, kind, title,"
            " status, rate_cents_per_15min, created_at) SELECT 's_x', 'r_x', customer_id,"
            " expert_id, kind, title, 'active', 0, 0 FROM sessions WHERE id = ?",
            (session["id"],),
        )
    assert active_sessions(data_dir) == {session["expert"]["id"]: 1}
    await customer.close()
    await expert.close()
    await api.aclose()


async def test_the_charge_uses_the_rate_of_the_offer(node: Node, data_dir: Path) -> None:
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await Client.connect(node.ws, ctoken)
    _, etoken = await new_expert(api, rate=1000)
    expert = await Client.connect(node.ws, etoken)
    await expert.call("presence", status="available")
    rid = (await customer.call("request.create", **INSTANT, title="t"))["request"]["id"]
    offer = await expert.wait_event("offer.new")
    assert offer["offer"]["rate_cents_per_15min"] == 1000
    # Bait and switch: he raises his rate after seeing the offer.
    await api.preferences(etoken, skills=["python"], languages=["en"], rate_cents_per_15min=99_900)
    again = await Client.connect(node.ws, etoken)
    assert again.state["offers"][0]["rate_cents_per_15min"] == 1000
    session = (await expert.call("offer.accept", request_id=rid))["session"]
    assert session["rate_cents_per_15min"] == 1000
    sql = "SELECT rate_cents_per_15min FROM sessions WHERE id = ?"
    [row] = query(data_dir, sql, (session["id"],))
    assert row["rate_cents_per_15min"] == 1000
    for c in (customer, expert, again):
        await c.close()
    await api.aclose()


async def test_request_create_with_a_cid_twice_makes_one_request(
    node: Node, data_dir: Path, clients: Clients
) -> None:
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    other = await clients.connect(node, ctoken)
    first = await customer.call("request.create", **INSTANT, title="t", cid="k1")
    again = await other.call("request.create", **INSTANT, title="t", cid="k1")
    assert again["request"]["id"] == first["request"]["id"]
    assert again["duplicate"] is True
    # At once from two sockets: still one.
    both = await asyncio.gather(
        customer.call("request.create", **INSTANT, title="u", cid="k2"),
        other.call("request.create", **INSTANT, title="u", cid="k2"),
    )
    assert both[0]["request"]["id"] == both[1]["request"]["id"]
    # Another customer's cid is his own.
    _, ctoken2 = await new_customer(api)
    third = await (await clients.connect(node, ctoken2)).call(
        "request.create", **INSTANT, title="t", cid="k1"
    )
    assert third["request"]["id"] != first["request"]["id"]
    [row] = query(data_dir, "SELECT count(*) AS n FROM requests")
    assert row["n"] == 3
    await api.aclose()


async def test_a_create_cut_off_after_its_commit_still_sends_its_waves(
    node: Node, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request stored before its first wave (a direct one: its notice is written
    with it) whose first wave fails (as if the node lost Redis or the socket was cut
    right after the commit): the request's own timer sends it, and a retry by cid
    returns the same request instead of a second one."""
    assert node.app is not None
    hub = node.app.state.node.hub
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    euser, expert = await online_expert(node, api)
    clients.opened.append(expert)
    real = hub._dispatch
    calls = 0

    async def first_fails(*args: Any, **kw: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("cut off")
        result: int = await real(*args, **kw)
        return result

    monkeypatch.setattr(hub, "_dispatch", first_fails)
    direct = {**INSTANT, "title": "t", "expert_id": euser["id"]}
    failed = await customer.request("request.create", **direct, cid="c1")
    assert failed["type"] == "error" and failed["code"] == "internal"
    offer = await expert.wait_event("offer.new", timeout=30)
    retry = await customer.call("request.create", **direct, cid="c1")
    assert retry["request"]["id"] == offer["offer"]["request_id"]
    assert retry["duplicate"] is True
    await api.aclose()


async def test_a_create_cut_off_after_the_commit_of_its_first_wave(
    node: Node, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request stored with its first wave, cut off right after that commit (its
    ``offer.new`` never sent): the offer is the expert's all the same (in his
    ``state``), and a retry by cid returns the same request, not a second one."""
    assert node.app is not None
    bus = node.app.state.node.hub.bus
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    await expert.call("presence", status="available")
    real = bus.publish
    cut = False

    async def first_offer_lost(users: Any, event: dict[str, Any], *args: Any) -> None:
        nonlocal cut
        if event["type"] == "offer.new" and not cut:
            cut = True
            raise RuntimeError("cut off")
        await real(users, event, *args)

    monkeypatch.setattr(bus, "publish", first_offer_lost)
    failed = await customer.request("request.create", **INSTANT, title="t", cid="c1")
    assert failed["type"] == "error" and failed["code"] == "internal"
    retry = await customer.call("request.create", **INSTANT, title="t", cid="c1")
    assert retry["duplicate"] is True
    again = await clients.connect(node, etoken)
    assert [o["request_id"] for o in again.state["offers"]] == [retry["request"]["id"]]
    await api.aclose()


def pause_once(obj: Any, name: str, when: Callable[..., bool]) -> tuple[Any, Any]:
    """Make ``obj.name`` (a coroutine method) wait on an event the first time ``when``
    holds for its arguments: ``(entered, release)`` events."""
    real = getattr(obj, name)
    entered, release = asyncio.Event(), asyncio.Event()

    async def paused(*args: Any, **kw: Any) -> Any:
        if not entered.is_set() and when(*args, **kw):
            entered.set()
            await release.wait()
        return await real(*args, **kw)

    setattr(obj, name, paused)
    return entered, release


async def close_under(node: Node, client: Client, entered: asyncio.Event) -> None:
    """Wait until the command is inside its unit, then end its socket from the
    server side (what a failed writer, a 4408 or a shutdown does)."""
    assert node.app is not None
    await asyncio.wait_for(entered.wait(), 10)
    for socket in list(node.app.state.node.sockets.values()):
        if socket.conn.user.id == client.hello["user"]["id"]:
            socket.going_away()


async def test_an_accept_cut_off_after_its_claim_still_writes_its_session(
    node: Node, clients: Clients
) -> None:
    assert node.app is not None
    hub = node.app.state.node.hub
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, expert = await online_expert(node, api)
    rid = (await customer.call("request.create", **INSTANT, title="t"))["request"]["id"]
    await expert.wait_event("offer.new")
    entered, release = pause_once(hub.bus, "claim", lambda key, *a: key == f"request:{rid}")
    await expert.send({"type": "offer.accept", "id": 1, "request_id": rid})
    await close_under(node, expert, entered)
    assert await expert.wait_closed() == 1001
    release.set()
    update = await customer.wait_event(
        "request.update", lambda e: e["request_id"] == rid and e["status"] != "open", timeout=20
    )
    assert update["status"] == "accepted"
    assert (await hub.sessions.by_request(rid)) is not None
    await api.aclose()


async def test_a_message_cut_off_after_its_commit_is_still_relayed(
    node: Node, clients: Clients
) -> None:
    assert node.app is not None
    bus = node.app.state.node.bus
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, expert = await online_expert(node, api)
    clients.opened.append(expert)
    rid = (await customer.call("request.create", **INSTANT, title="t"))["request"]["id"]
    await expert.wait_event("offer.new")
    sid = (await expert.call("offer.accept", request_id=rid))["session"]["id"]
    await customer.call("session.join", session_id=sid, after_seq=0)
    await expert.call("session.join", session_id=sid, after_seq=0)
    entered, release = pause_once(
        bus, "publish", lambda users, event, **kw: event.get("type") == "message"
    )
    await customer.send(
        {
            "type": "message.send",
            "id": 9,
            "session_id": sid,
            "cid": "m1",
            "kind": "text",
            "text": "hi",
        }
    )
    await close_under(node, customer, entered)
    assert await customer.wait_closed() == 1001
    release.set()
    message = await expert.wait_event("message", timeout=20)
    assert (message["seq"], message["cid"], message["text"]) == (1, "m1", "hi")
    await api.aclose()


async def test_an_expert_whose_offer_ended_cannot_message_the_customer(
    node: Node, clients: Clients
) -> None:
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, expert = await online_expert(node, api)
    clients.opened.append(expert)
    rid = (await customer.call("request.create", **INSTANT, title="t"))["request"]["id"]
    await expert.wait_event("offer.new")
    assert await expert.call("request.message", request_id=rid, text="a question?")
    await expert.call("offer.decline", request_id=rid)
    reply = await expert.request("request.message", request_id=rid, text="still there?")
    assert reply["type"] == "error" and reply["code"] == "invalid_state", reply
    # The customer still talks to those whose offers are open (none here), and
    # nothing was stored for the refused message.
    assert node.app is not None
    stored = await node.app.state.node.hub.requests.messages(rid)
    assert [m["text"] for m in stored] == ["a question?"]
    await api.aclose()


async def test_far_future_proposed_times_are_refused(node: Node, clients: Clients) -> None:
    api = Api(node.http)
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    reply = await customer.request(
        "request.create",
        kind="scheduled",
        title="t",
        skills=["python"],
        language="en",
        proposed_times=["9999-12-31T00:00:00Z"],
    )
    assert reply["type"] == "error" and reply["code"] == "invalid_field"
    assert reply["field"] == "proposed_times"
    assert (await clients.connect(node, ctoken)).state["requests"] == []
    await api.aclose()


async def test_a_token_that_expires_ends_its_socket(data_dir: Path) -> None:
    async with run_node(node_settings(data_dir, token_ttl=3)) as node:
        api = Api(node.http)
        _, ctoken = await new_customer(api)
        client = await Client.connect(node.ws, ctoken)
        assert await client.wait_closed(timeout=30) == 4401
        await api.aclose()


async def test_a_wave_replaces_experts_who_turned_busy_before_its_write(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the matching reads and the wave's write, the chosen expert goes away
    (won another request, turned away): the next best gets the offer at once,
    instead of the wave going out empty to wait for its retry."""
    async with run_node(node_settings(data_dir, offer_batch=1)) as node:
        assert node.app is not None
        hub = node.app.state.node.hub
        api = Api(node.http)
        experts = [await online_expert(node, api, name=f"E{i}") for i in range(2)]
        _, ctoken = await new_customer(api)
        customer = await Client.connect(node.ws, ctoken)
        real = hub.matcher.instant
        gone: list[str] = []

        async def first_goes_away(*args: Any, **kw: Any) -> list[str]:
            chosen: list[str] = await real(*args, **kw)
            gone.append(chosen[0])
            execute(data_dir, "UPDATE users SET presence = 'away' WHERE id = ?", (chosen[0],))
            return chosen

        monkeypatch.setattr(hub.matcher, "instant", first_goes_away)
        reply = await customer.call("request.create", **INSTANT, title="t")
        assert reply["request"]["notified"] == 1
        (other,) = [c for u, c in experts if u["id"] != gone[0]]
        offer = await other.wait_event("offer.new")
        assert offer["offer"]["request_id"] == reply["request"]["id"]
        for c in [customer, *(c for _, c in experts)]:
            await c.close()
        await api.aclose()
