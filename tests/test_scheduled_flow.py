"""Contract rule 6, scheduled sessions, end to end on one embedded node.

Booking (proposed times, offers to experts online or not, accept with one
time, no double booking), reminders and dashboard notifications, the start
window, the no-show cancellation with its fee, and ``session.cancel``.

Timers run on short durations (reminders 4 s and 2 s before, a start window
of 3 s, a no-show after 2 s). Negative checks ("this socket got no such
event") use a ``ping`` after the action: on one node, an event for a socket
is queued before the reply that follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from clients.rtclient import Api, Client
from tests.servers import Clients, Node, new_customer, new_expert, node_settings, run_node
from tests.storage import query

pytestmark = pytest.mark.both_backends

Event = dict[str, Any]
# A ledger row: (user_id, account, kind, amount_cents).
LedgerRow = tuple[str | None, str, str, int]

SHORT = {
    "reminders": "4s,2s",
    "early_start": "3s",
    "no_show": "2s",
    "cancellation_fee": 500,
    "platform_fee": 20,
    "session_length": "1h",
}
EARLY_START = 3.0
NO_SHOW = 2.0
PLUS_TWO = timezone(timedelta(hours=2))


# -- times --------------------------------------------------------------------------------


def ahead(seconds: float) -> datetime:
    """A UTC time ``seconds`` from now, at millisecond precision (what the server keeps)."""
    t = datetime.now(UTC) + timedelta(seconds=seconds)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def iso(t: datetime, tz: timezone = UTC) -> str:
    """``t`` as ISO-8601 with an explicit offset (``+00:00``, ``+02:00``)."""
    return t.astimezone(tz).isoformat(timespec="milliseconds")


def wire(t: datetime) -> str:
    """``t`` as the server must echo it: UTC, milliseconds, ``Z``."""
    u = t.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


async def sleep_until(t: datetime) -> None:
    """Sleep until the wall clock reaches ``t`` (the server's clock is the same one)."""
    delay = (t - datetime.now(UTC)).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay)


# -- nodes, clients, HTTP --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def scheduled_node(data_dir: Path, **overrides: Any) -> AsyncIterator[tuple[Node, Api]]:
    """A node with short scheduled-session durations, and its HTTP client."""
    async with run_node(node_settings(data_dir, **{**SHORT, **overrides})) as node:
        api = Api(node.http)
        try:
            yield node, api
        finally:
            await api.aclose()


@pytest.fixture
async def short(data_dir: Path) -> AsyncIterator[tuple[Node, Api]]:
    async with scheduled_node(data_dir) as pair:
        yield pair


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_requests(api: Api, token: str) -> list[Event]:
    r = await api.http.get("/api/requests", headers=auth(token))
    assert r.status_code == 200, r.text
    result: list[Event] = r.json()["requests"]
    return result


async def get_request(api: Api, token: str, request_id: str) -> Event:
    r = await api.http.get(f"/api/requests/{request_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    result: Event = r.json()["request"]
    return result


async def notifications(api: Api, token: str, unread: bool = False) -> list[Event]:
    params = {"unread": "1"} if unread else {}
    r = await api.http.get("/api/notifications", headers=auth(token), params=params)
    assert r.status_code == 200, r.text
    result: list[Event] = r.json()["notifications"]
    return result


def ledger(data_dir: Path, session_id: str) -> list[LedgerRow]:
    """``(user_id, account, kind, amount_cents)`` of a session's ledger rows, in order."""
    rows = query(
        data_dir,
        "SELECT user_id, account, kind, amount_cents FROM ledger WHERE session_id = ? ORDER BY id",
        (session_id,),
    )
    return [(r["user_id"], r["account"], r["kind"], r["amount_cents"]) for r in rows]


def by_kind(rows: list[LedgerRow]) -> list[LedgerRow]:
    """Ledger rows in the order of their kinds (the order of writing is not the contract's)."""
    return sorted(rows, key=lambda r: r[2])


# -- protocol helpers ----------------------------------------------------------------------


async def settle(*cs: Client) -> None:
    """Once this returns, every event already sent to these sockets is in their queues."""
    for c in cs:
        await c.call("ping")


def taken(c: Client, type_: str, pred: Callable[[Event], bool] = lambda e: True) -> list[Event]:
    """Drain ``c`` and return the events of this type that match."""
    return [e for e in c.drain() if e.get("type") == type_ and pred(e)]


async def collect(cs: list[Client], until: datetime) -> list[list[tuple[datetime, Event]]]:
    """Every event each client receives until ``until``, with when it was seen."""
    out: list[list[tuple[datetime, Event]]] = [[] for _ in cs]
    while datetime.now(UTC) < until:
        await asyncio.sleep(0.05)
        seen = datetime.now(UTC)
        for i, c in enumerate(cs):
            out[i].extend((seen, e) for e in c.drain())
    return out


async def create(customer: Client, times: list[str] | None, **fields: Any) -> Event:
    body: dict[str, Any] = {
        "kind": "scheduled",
        "title": "Later",
        "skills": ["python"],
        "language": "en",
        **fields,
    }
    if times is not None:
        body["proposed_times"] = times
    reply = await customer.call("request.create", **body)
    request: Event = reply["request"]
    return request


def for_request(rid: str) -> Callable[[Event], bool]:
    return lambda e: e["offer"]["request_id"] == rid


async def book(customer: Client, expert: Client, start: datetime) -> Event:
    """A scheduled request at ``start``, accepted by ``expert``: the session."""
    request = await create(customer, [iso(start)])
    await expert.wait_event("offer.new", for_request(request["id"]))
    reply = await expert.call("offer.accept", request_id=request["id"], time=wire(start))
    session: Event = reply["session"]
    assert session["status"] == "scheduled"
    assert session["scheduled_at"] == wire(start)
    return session


async def error_code(c: Client, type_: str, **fields: Any) -> str:
    reply = await c.request(type_, **fields)
    assert reply["type"] == "error", reply
    code: str = reply["code"]
    return code


# -- booking ---------------------------------------------------------------------------------


async def test_a_scheduled_request_is_offered_online_and_offline_and_booked(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    cuser, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    # Qualified but never connected (and so never available).
    _, offline_token = await new_expert(api, name="Offline")
    # Qualified, connected and available.
    online_user, online_token = await new_expert(api, name="Online")
    online = await clients.connect(node, online_token)
    await online.call("presence", status="available")
    # Connected but not qualified.
    _, rust_token = await new_expert(api, name="Rust", skills=("rust",))
    rust = await clients.connect(node, rust_token)

    t1, t2, t3 = ahead(3 * 3600), ahead(2 * 3600), ahead(4 * 3600)
    sent = [iso(t1, PLUS_TWO), iso(t2), iso(t3).replace("+00:00", "Z")]
    assert sent[0].endswith("+02:00")
    request = await create(customer, sent, description="Pair on a Django bug")
    rid = request["id"]
    assert request["kind"] == "scheduled" and request["status"] == "open"
    # Sorted, in UTC, ending in Z; the +02:00 time is the same instant.
    assert request["proposed_times"] == [wire(t2), wire(t1), wire(t3)]
    assert request["notified"] == 2

    offer = (await online.wait_event("offer.new", for_request(rid)))["offer"]
    assert offer["kind"] == "scheduled"
    assert offer["proposed_times"] == [wire(t2), wire(t1), wire(t3)]
    assert offer["customer"]["id"] == cuser["id"]
    await settle(rust)
    assert taken(rust, "offer.new") == []

    # The offline expert finds it in `state` when he connects.
    offline = await clients.connect(node, offline_token)
    offers = [o for o in offline.state["offers"] if o["request_id"] == rid]
    assert len(offers) == 1
    assert offers[0]["proposed_times"] == [wire(t2), wire(t1), wire(t3)]
    assert offers[0]["kind"] == "scheduled"

    reply = await online.call("offer.accept", request_id=rid, time=wire(t1))
    session = reply["session"]
    sid = session["id"]
    assert session["status"] == "scheduled"
    assert session["scheduled_at"] == wire(t1)
    assert session["request_id"] == rid
    assert session["customer"]["id"] == cuser["id"]
    assert session["expert"]["id"] == online_user["id"]
    assert session["started_at"] is None

    revoked = await offline.wait_event("offer.revoked", lambda e: e["request_id"] == rid)
    assert revoked["reason"] == "taken"
    update = await customer.wait_event(
        "request.update", lambda e: e["request_id"] == rid and e["status"] != "open"
    )
    assert update["status"] == "accepted"
    assert update["session_id"] == sid
    assert update["expert"]["id"] == online_user["id"]
    await settle(customer)
    assert taken(customer, "request.update", lambda e: e["request_id"] == rid) == []

    # Both see it in `state` as scheduled; the request is no longer open.
    for token in (ctoken, online_token):
        again = await clients.connect(node, token)
        mine = [s for s in again.state["sessions"] if s["id"] == sid]
        assert len(mine) == 1, again.state["sessions"]
        assert mine[0]["status"] == "scheduled"
        assert mine[0]["scheduled_at"] == wire(t1)
    again = await clients.connect(node, offline_token)
    assert [o for o in again.state["offers"] if o["request_id"] == rid] == []
    assert [s for s in again.state["sessions"] if s["id"] == sid] == []
    assert await open_requests(api, ctoken) == []
    stored = await get_request(api, ctoken, rid)
    assert stored["status"] == "accepted" and stored["session_id"] == sid


@pytest.mark.parametrize("count", [1, 5])
async def test_one_to_five_proposed_times_are_accepted(
    short: tuple[Node, Api], clients: Clients, count: int
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    times = [ahead(3600 * (count - i)) for i in range(count)]  # latest first
    request = await create(customer, [iso(t) for t in times])
    assert request["proposed_times"] == sorted(wire(t) for t in times)
    assert len(request["proposed_times"]) == count
    assert [r["id"] for r in await open_requests(api, ctoken)] == [request["id"]]


async def test_bad_proposed_times_are_refused_and_nothing_is_stored(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    await expert.call("presence", status="available")
    before = await open_requests(api, ctoken)
    assert before == []

    base = {"title": "Later", "skills": ["python"], "language": "en"}
    t = ahead(2 * 3600)
    cases: list[dict[str, Any]] = [
        # A time in the past, alone or among good ones.
        {"kind": "scheduled", "proposed_times": [iso(ahead(-60))]},
        {"kind": "scheduled", "proposed_times": [iso(t), iso(ahead(-1))]},
        # Six times.
        {"kind": "scheduled", "proposed_times": [iso(ahead(3600 * (i + 1))) for i in range(6)]},
        # Duplicates, written the same and written in two offsets.
        {"kind": "scheduled", "proposed_times": [iso(t), iso(t)]},
        {"kind": "scheduled", "proposed_times": [iso(t), iso(t, PLUS_TWO)]},
        # No offset.
        {"kind": "scheduled", "proposed_times": ["2030-01-01T10:00:00"]},
        # Not a time.
        {"kind": "scheduled", "proposed_times": ["tomorrow at ten"]},
        # Scheduled without times.
        {"kind": "scheduled"},
        {"kind": "scheduled", "proposed_times": []},
        # Instant with times.
        {"kind": "instant", "proposed_times": [iso(t)]},
    ]
    for case in cases:
        code = await error_code(customer, "request.create", **base, **case)
        assert code == "invalid_field", case
    assert await open_requests(api, ctoken) == before
    await settle(customer, expert)
    assert taken(expert, "offer.new") == []
    assert taken(customer, "request.update") == []


async def test_accept_needs_one_of_the_proposed_times(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    t1, t2 = ahead(2 * 3600), ahead(5 * 3600)
    request = await create(customer, [iso(t1), iso(t2)])
    rid = request["id"]
    await expert.wait_event("offer.new", for_request(rid))

    not_proposed = wire(t1 + timedelta(minutes=1))
    assert await error_code(expert, "offer.accept", request_id=rid, time=not_proposed) == (
        "invalid_field"
    )
    assert await error_code(expert, "offer.accept", request_id=rid) == "invalid_field"
    assert await error_code(expert, "offer.accept", request_id=rid, time="soon") == (
        "invalid_field"
    )
    stored = await get_request(api, ctoken, rid)
    assert stored["status"] == "open" and stored["session_id"] is None
    await settle(customer)
    assert taken(customer, "request.update", lambda e: e["status"] != "open") == []

    # The same instant written with another offset is one of the proposed times.
    session = (await expert.call("offer.accept", request_id=rid, time=iso(t2, PLUS_TWO)))["session"]
    assert session["scheduled_at"] == wire(t2)


async def test_an_expert_cannot_book_over_his_own_session(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    x_user, x_token = await new_expert(api, name="X")
    x = await clients.connect(node, x_token)
    y_user, y_token = await new_expert(api, name="Y")
    y = await clients.connect(node, y_token)

    t = ahead(3 * 3600)
    later = t + timedelta(hours=3)
    r1 = await create(customer, [iso(t)])
    r2 = await create(customer, [iso(t), iso(later)])
    r3 = await create(customer, [iso(t + timedelta(minutes=30)), iso(t + timedelta(hours=1))])
    for rid in (r1["id"], r2["id"], r3["id"]):
        for e in (x, y):
            await e.wait_event("offer.new", for_request(rid))

    s1 = (await x.call("offer.accept", request_id=r1["id"], time=wire(t)))["session"]
    assert s1["scheduled_at"] == wire(t)
    # The same time, and a time 30 minutes later (sessions last an hour): refused.
    assert await error_code(x, "offer.accept", request_id=r2["id"], time=wire(t)) == (
        "invalid_state"
    )
    half = wire(t + timedelta(minutes=30))
    assert await error_code(x, "offer.accept", request_id=r3["id"], time=half) == "invalid_state"
    # Both stay open, and nobody was told otherwise.
    assert {r["id"] for r in await open_requests(api, ctoken)} == {r2["id"], r3["id"]}
    await settle(customer, y)
    assert [
        e["request_id"]
        for e in taken(customer, "request.update", lambda e: e["status"] == "accepted")
    ] == [r1["id"]]
    assert [e["request_id"] for e in taken(y, "offer.revoked")] == [r1["id"]]

    # A new request only at X's booked time is not offered to him at all.
    r4 = await create(customer, [iso(t + timedelta(minutes=15))])
    await y.wait_event("offer.new", for_request(r4["id"]))
    await settle(x)
    assert taken(x, "offer.new", for_request(r4["id"])) == []
    assert await error_code(x, "offer.accept", request_id=r4["id"], time=wire(t)) == "not_found"

    # Another expert can still take the refused one, at the very time X holds.
    s2 = (await y.call("offer.accept", request_id=r2["id"], time=wire(t)))["session"]
    assert s2["expert"]["id"] == y_user["id"] and s2["scheduled_at"] == wire(t)
    revoked = await x.wait_event("offer.revoked", lambda e: e["request_id"] == r2["id"])
    assert revoked["reason"] == "taken"
    # And X can book exactly one session length after his first one.
    s3 = (await x.call("offer.accept", request_id=r3["id"], time=wire(t + timedelta(hours=1))))[
        "session"
    ]
    assert s3["expert"]["id"] == x_user["id"]
    assert s3["scheduled_at"] == wire(t + timedelta(hours=1))


# -- reminders and notifications ----------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_reminders_reach_every_socket_once_and_are_stored(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    customer2 = await clients.connect(node, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    # Another user gets none of it.
    _, other_token = await new_customer(api)
    outsider = await clients.connect(node, other_token)

    start = ahead(8)
    session = await book(customer, expert, start)
    sid = session["id"]
    starts_at = session["scheduled_at"]
    sockets = [customer, customer2, expert, outsider]
    for c in sockets:
        c.drain()
    # Until shortly before the no-show could fire.
    seen = await collect(sockets, start + timedelta(seconds=1))
    for got in seen[:3]:
        reminders = [(at, e) for at, e in got if e["type"] == "reminder"]
        assert sorted(e["seconds_before"] for _, e in reminders) == [2, 4], reminders
        for at, e in reminders:
            assert e["session_id"] == sid
            assert e["starts_at"] == starts_at
            assert e["minutes_before"] == {4: 0.067, 2: 0.033}[e["seconds_before"]]
            # Not before it was due.
            due = start - timedelta(seconds=e["seconds_before"])
            assert at >= due - timedelta(milliseconds=100), (at, due)
    assert [e for _, e in seen[3] if e["type"] == "reminder"] == []

    notes: dict[str, list[Event]] = {}
    for token in (ctoken, etoken):
        rows = [n for n in await notifications(api, token) if n["kind"] == "reminder"]
        assert sorted(n["seconds_before"] for n in rows) == [2, 4], rows
        for n in rows:
            assert n["session_id"] == sid
            assert n["starts_at"] == starts_at
            assert n["read"] is False
        notes[token] = rows
    assert await notifications(api, other_token) == []

    unread = await notifications(api, ctoken, unread=True)
    first = notes[ctoken][0]
    r = await api.http.post(f"/api/notifications/{first['id']}/read", headers=auth(ctoken))
    assert r.status_code == 200, r.text
    after = await notifications(api, ctoken, unread=True)
    assert len(after) == len(unread) - 1
    assert first["id"] not in {n["id"] for n in after}
    marked = {n["id"]: n["read"] for n in await notifications(api, ctoken)}
    assert marked[first["id"]] is True
    # Marking it again is harmless.
    r = await api.http.post(f"/api/notifications/{first['id']}/read", headers=auth(ctoken))
    assert r.status_code == 200

    # Somebody else's notification, or none at all: 404, and it stays unread.
    theirs = notes[etoken][0]["id"]
    for token in (ctoken, other_token):
        r = await api.http.post(f"/api/notifications/{theirs}/read", headers=auth(token))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    # Past SQLite's integers, negative, zero: 404 too (a huge one was a 500).
    for nid in ("999999", str(2**63), "9" * 400, "-1", "0"):
        r = await api.http.post(f"/api/notifications/{nid}/read", headers=auth(ctoken))
        assert r.status_code == 404, (nid, r.text)
        assert r.json()["error"]["code"] == "not_found"
    assert len(await notifications(api, etoken, unread=True)) == 2


# -- the start window -------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_the_start_window_and_becoming_active(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    cuser, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    euser, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    start = ahead(9)
    sid = (await book(customer, expert, start))["id"]

    # Before the window opens: refused, for both sides.
    for c in (customer, expert):
        assert await error_code(c, "session.join", session_id=sid) == "invalid_state"

    await sleep_until(start - timedelta(seconds=EARLY_START - 0.5))
    customer.drain()
    expert.drain()
    joined = await customer.call("session.join", session_id=sid)
    assert joined["session"]["status"] == "scheduled"
    assert joined["session"]["joined"] == [cuser["id"]]
    # Nobody can talk yet.
    reply = await customer.request(
        "message.send", session_id=sid, cid="too-early", kind="text", text="hi"
    )
    assert reply["type"] == "error" and reply["code"] == "invalid_state"
    await settle(customer, expert)
    for c in (customer, expert):
        assert taken(c, "session.update", lambda e: e["session"]["status"] == "active") == []

    joined = await expert.call("session.join", session_id=sid)
    assert joined["session"]["status"] == "active"
    assert joined["session"]["started_at"] is not None
    for c in (customer, expert):
        ev = await c.wait_event("session.update", lambda e: e["session"]["id"] == sid)
        assert ev["session"]["status"] == "active"

    sent = await customer.call("message.send", session_id=sid, cid="c1", kind="text", text="hi")
    assert sent["seq"] == 1
    message = await expert.wait_event("message", lambda e: e["session_id"] == sid)
    assert message["text"] == "hi" and message["from"]["id"] == cuser["id"]

    # An active session cannot be cancelled, and the no-show check leaves it alone.
    assert await error_code(customer, "session.cancel", session_id=sid) == "invalid_state"
    customer.drain()
    expert.drain()
    await sleep_until(start + timedelta(seconds=NO_SHOW + 1.5))
    await settle(customer, expert)
    for c in (customer, expert):
        assert taken(c, "session.cancelled") == []
    again = await clients.connect(node, etoken)
    mine = [s for s in again.state["sessions"] if s["id"] == sid]
    assert [s["status"] for s in mine] == ["active"]
    assert euser["id"] in mine[0]["joined"]


# -- no-shows -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_nobody_joins_cancelled_without_a_fee(
    short: tuple[Node, Api], clients: Clients, data_dir: Path
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    start = ahead(5)
    sid = (await book(customer, expert, start))["id"]

    # Not before the start plus --no-show.
    await sleep_until(start + timedelta(seconds=NO_SHOW - 1))
    await settle(customer, expert)
    for c in (customer, expert):
        assert taken(c, "session.cancelled") == []
    for c in (customer, expert):
        ev = await c.wait_event("session.cancelled", lambda e: e["session_id"] == sid, timeout=10)
        assert ev["reason"] == "no_show"
        assert ev["fee_cents"] == 0
        assert ev["charged_user_id"] is None
        update = await c.wait_event("session.update", lambda e: e["session"]["id"] == sid)
        assert update["session"]["status"] == "cancelled"
    assert datetime.now(UTC) >= start + timedelta(seconds=NO_SHOW)
    assert ledger(data_dir, sid) == []
    assert await error_code(customer, "session.join", session_id=sid) == "invalid_state"
    # Once only.
    await asyncio.sleep(1.0)
    await settle(customer, expert)
    for c in (customer, expert):
        assert taken(c, "session.cancelled") == []


@pytest.mark.timeout(60)
async def test_the_expert_does_not_show_and_pays(
    short: tuple[Node, Api], clients: Clients, data_dir: Path
) -> None:
    node, api = short
    cuser, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    euser, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    start = ahead(6)
    sid = (await book(customer, expert, start))["id"]
    # An early try of the expert's is refused and does not count as joining.
    assert await error_code(expert, "session.join", session_id=sid) == "invalid_state"

    await sleep_until(start - timedelta(seconds=EARLY_START - 0.5))
    joined = await customer.call("session.join", session_id=sid)
    assert joined["session"]["status"] == "scheduled"

    for c in (customer, expert):
        ev = await c.wait_event("session.cancelled", lambda e: e["session_id"] == sid, timeout=15)
        assert ev["reason"] == "no_show"
        assert ev["fee_cents"] == 500
        assert ev["charged_user_id"] == euser["id"]
    assert datetime.now(UTC) >= start + timedelta(seconds=NO_SHOW)
    assert by_kind(ledger(data_dir, sid)) == by_kind(
        [
            (euser["id"], "expert", "cancellation_fee", -500),
            (cuser["id"], "customer", "cancellation_compensation", 400),
            (None, "platform", "platform_fee", 100),
        ]
    )


@pytest.mark.timeout(60)
async def test_the_customer_does_not_show_and_pays(
    short: tuple[Node, Api], clients: Clients, data_dir: Path
) -> None:
    node, api = short
    cuser, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    euser, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    start = ahead(5)
    sid = (await book(customer, expert, start))["id"]

    await sleep_until(start - timedelta(seconds=EARLY_START - 0.5))
    await expert.call("session.join", session_id=sid)
    for c in (customer, expert):
        ev = await c.wait_event("session.cancelled", lambda e: e["session_id"] == sid, timeout=15)
        assert (ev["reason"], ev["fee_cents"], ev["charged_user_id"]) == (
            "no_show",
            500,
            cuser["id"],
        )
    assert by_kind(ledger(data_dir, sid)) == by_kind(
        [
            (euser["id"], "expert", "cancellation_compensation", 400),
            (cuser["id"], "customer", "cancellation_fee", -500),
            (None, "platform", "platform_fee", 100),
        ]
    )


# -- cancelling --------------------------------------------------------------------------------


async def test_cancelling_well_before_the_start_is_free(data_dir: Path, clients: Clients) -> None:
    # Default --late-cancel (1 h); the session starts in 2 h.
    async with scheduled_node(data_dir, late_cancel=None) as (node, api):
        assert node.settings.late_cancel == 3600.0
        _, ctoken = await new_customer(api)
        customer = await clients.connect(node, ctoken)
        _, etoken = await new_expert(api)
        expert = await clients.connect(node, etoken)
        _, stranger_ctoken = await new_customer(api)
        stranger_c = await clients.connect(node, stranger_ctoken)
        _, stranger_etoken = await new_expert(api, name="Stranger")
        stranger_e = await clients.connect(node, stranger_etoken)

        sid = (await book(customer, expert, ahead(2 * 3600)))["id"]
        # Somebody else's session does not exist for them.
        for c in (stranger_c, stranger_e):
            assert await error_code(c, "session.cancel", session_id=sid) == "not_found"
        assert await error_code(customer, "session.cancel", session_id="s_nope") == "not_found"

        reply = await customer.call("session.cancel", session_id=sid)
        assert reply["fee_cents"] == 0 and reply["charged_user_id"] is None
        for c in (customer, expert):
            ev = await c.wait_event("session.cancelled", lambda e: e["session_id"] == sid)
            assert ev["reason"] == "cancelled"
            assert ev["fee_cents"] == 0
            assert ev["charged_user_id"] is None
            update = await c.wait_event("session.update", lambda e: e["session"]["id"] == sid)
            assert update["session"]["status"] == "cancelled"
        assert ledger(data_dir, sid) == []
        await settle(stranger_c, stranger_e)
        for c in (stranger_c, stranger_e):
            assert taken(c, "session.cancelled") == []

        # A cancelled session cannot be cancelled again, by either side, nor joined.
        for c in (customer, expert):
            assert await error_code(c, "session.cancel", session_id=sid) == "invalid_state"
        assert await error_code(expert, "session.join", session_id=sid) == "invalid_state"
        again = await clients.connect(node, ctoken)
        assert [s for s in again.state["sessions"] if s["id"] == sid] == []


async def test_cancelling_late_costs_the_canceller(data_dir: Path, clients: Clients) -> None:
    async with scheduled_node(data_dir, late_cancel="1h") as (node, api):
        cuser, ctoken = await new_customer(api)
        customer = await clients.connect(node, ctoken)
        e1_user, e1_token = await new_expert(api, name="E1")
        e1 = await clients.connect(node, e1_token)
        e2_user, e2_token = await new_expert(api, name="E2")
        e2 = await clients.connect(node, e2_token)

        async def late_cancel(
            session_id: str,
            canceller: Client,
            canceller_user: dict[str, Any],
            other: Client,
            other_user: dict[str, Any],
        ) -> None:
            """The canceller pays 500; the other side gets 400, the platform 100."""
            charged = canceller_user["id"]
            reply = await canceller.call("session.cancel", session_id=session_id)
            assert reply["fee_cents"] == 500 and reply["charged_user_id"] == charged
            for c in (canceller, other):
                ev = await c.wait_event(
                    "session.cancelled", lambda e: e["session_id"] == session_id
                )
                assert (ev["reason"], ev["fee_cents"], ev["charged_user_id"]) == (
                    "cancelled",
                    500,
                    charged,
                )
            assert by_kind(ledger(data_dir, session_id)) == by_kind(
                [
                    (other_user["id"], other_user["role"], "cancellation_compensation", 400),
                    (charged, canceller_user["role"], "cancellation_fee", -500),
                    (None, "platform", "platform_fee", 100),
                ]
            )

        # The expert cancels a session that starts in a few seconds.
        first = (await book(customer, e1, ahead(20)))["id"]
        await late_cancel(first, e1, e1_user, customer, cuser)
        # The customer cancels another one, 30 minutes ahead (inside the hour).
        second = (await book(customer, e2, ahead(30 * 60)))["id"]
        await late_cancel(second, customer, cuser, e2, e2_user)
        # Charged once: a second cancel is refused and writes nothing.
        assert await error_code(customer, "session.cancel", session_id=second) == "invalid_state"
        assert len(ledger(data_dir, second)) == 3
        await settle(e1)
        assert taken(e1, "session.cancelled", lambda e: e["session_id"] == second) == []


async def test_an_active_session_cannot_be_cancelled(
    short: tuple[Node, Api], clients: Clients
) -> None:
    node, api = short
    _, ctoken = await new_customer(api)
    customer = await clients.connect(node, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(node, etoken)
    await expert.call("presence", status="available")
    reply = await customer.call(
        "request.create", kind="instant", title="Now", skills=["python"], language="en"
    )
    rid = reply["request"]["id"]
    await expert.wait_event("offer.new", for_request(rid))
    session = (await expert.call("offer.accept", request_id=rid))["session"]
    assert session["status"] == "active"
    for c in (customer, expert):
        assert await error_code(c, "session.cancel", session_id=session["id"]) == "invalid_state"
    sent = await customer.call(
        "message.send", session_id=session["id"], cid="c1", kind="text", text="still here"
    )
    assert sent["seq"] == 1


@pytest.mark.timeout(60)
async def test_after_the_start_cancelling_is_refused_and_the_no_show_decides(
    data_dir: Path, clients: Clients
) -> None:
    # The customer waits in the room; the expert does not come. Cancelling once
    # the start has passed must not make the customer, who kept the
    # appointment, pay as the canceller: the no-show charges the expert.
    async with scheduled_node(data_dir, late_cancel="1h") as (node, api):
        cuser, ctoken = await new_customer(api)
        customer = await clients.connect(node, ctoken)
        euser, etoken = await new_expert(api)
        expert = await clients.connect(node, etoken)
        start = ahead(5)
        sid = (await book(customer, expert, start))["id"]
        await sleep_until(start - timedelta(seconds=EARLY_START - 0.5))
        await customer.call("session.join", session_id=sid)
        await sleep_until(start + timedelta(seconds=0.3))
        for c in (customer, expert):
            assert await error_code(c, "session.cancel", session_id=sid) == "invalid_state"
        for c in (customer, expert):
            ev = await c.wait_event(
                "session.cancelled", lambda e: e["session_id"] == sid, timeout=15
            )
            assert (ev["reason"], ev["fee_cents"], ev["charged_user_id"]) == (
                "no_show",
                500,
                euser["id"],
            )
        assert by_kind(ledger(data_dir, sid)) == by_kind(
            [
                (euser["id"], "expert", "cancellation_fee", -500),
                (cuser["id"], "customer", "cancellation_compensation", 400),
                (None, "platform", "platform_fee", 100),
            ]
        )
