"""Nodes on separate hosts, sharing only Redis and PostgreSQL, act as one server.

Each "host" is a Linux network namespace with an address of its own on a
virtual LAN (tests/netns.py: veth pairs on a bridge, made by this module as
root). One real redis-server and one real PostgreSQL cluster listen on the
bridge's address; every node is a real ``rtserver serve`` process inside its
host, listening on the host's address, with a data dir of its own that no
other node sees: accounts, the token signing key, transcripts and timers
reach the other hosts through PostgreSQL alone, events through Redis alone.
The test process reaches the nodes over the same LAN.

Skipped only where namespaces cannot be made (not root, or ``ip netns add``
fails). Each test gets its own database, Redis prefix and nodes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.rtclient import Api, Client
from rtserver.auth import SECRET_FILE
from rtserver.storage.backend import SQLITE_FILE
from tests.netns import HostNode, NetnsUnavailable, VirtualLan
from tests.pg import PgCluster
from tests.servers import (
    Clients,
    Node,
    RedisServer,
    new_customer,
    new_expert,
    node_settings,
    open_session,
)

Event = dict[str, Any]
HOSTS = 3


# -- the LAN, the shared services, the nodes ------------------------------------------------


@pytest.fixture(scope="module")
def lan() -> Iterator[VirtualLan]:
    """Three hosts on a bridge; skipped where network namespaces cannot be made."""
    network = VirtualLan(HOSTS)
    try:
        network.open()
    except NetnsUnavailable as exc:
        if os.environ.get("CI"):
            # CI runs as root on Linux: a missing namespace there is a broken setup.
            pytest.fail(f"nodes on separate hosts need network namespaces: {exc}")
        pytest.skip(f"nodes on separate hosts need network namespaces: {exc}")
    yield network
    network.close()
    assert network.leftovers() == []


@pytest.fixture(scope="module")
def shared_pg(lan: VirtualLan) -> Iterator[PgCluster]:
    """A PostgreSQL cluster on the bridge's address, trusting the LAN."""
    cluster = PgCluster(listen=[lan.gateway], trust=[str(lan.network)])
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def shared_redis(lan: VirtualLan) -> Iterator[RedisServer]:
    """A redis-server on the bridge's address."""
    server = RedisServer(host=lan.gateway)
    server.start()
    yield server
    server.stop()


Start = Callable[..., list[HostNode]]


@pytest.fixture
def start_hosts(
    tmp_path: Path, lan: VirtualLan, shared_pg: PgCluster, shared_redis: RedisServer
) -> Iterator[Start]:
    """``start_hosts(count, **settings)``: one node on each of the first ``count`` hosts,
    on a fresh database and Redis prefix of this test; every node stopped at its end."""
    started: list[HostNode] = []

    def start(count: int, **overrides: Any) -> list[HostNode]:
        database = f"mh_{secrets.token_hex(6)}"
        shared_pg.sql(f'CREATE DATABASE "{database}"')
        prefix = f"mh{secrets.token_hex(4)}:"
        nodes: list[HostNode] = []
        for i, host in enumerate(lan.hosts[:count]):
            own = tmp_path / f"host{i}"
            data_dir = own / "data"
            data_dir.mkdir(parents=True)
            settings = node_settings(
                data_dir,
                host=host.address,
                database_url=shared_pg.url(database, host=lan.gateway),
                redis_url=shared_redis.url,
                redis_prefix=prefix,
                node_id=f"host{i}",
                **overrides,
            )
            nodes.append(HostNode(host, settings, own / "node.log"))
        # Spawned together (the schema migration is serialized in PostgreSQL),
        # then each waited for.
        for node in nodes:
            node.spawn()
            started.append(node)
        for node in nodes:
            node.wait_started()
        return nodes

    yield start
    for node in started:
        node.stop()


# -- helpers ------------------------------------------------------------------------------------


class Transcript:
    """One side's view of a session: its own acknowledged messages and those relayed
    to it, by ``seq`` (delivery is at least once: a repeat must say the same)."""

    def __init__(self, client: Client, session_id: str) -> None:
        self.client = client
        self.session_id = session_id
        self.by_seq: dict[int, str] = {}

    def keep(self, seq: int, text: str) -> None:
        assert self.by_seq.setdefault(seq, text) == text, (seq, text, self.by_seq[seq])

    async def send(self, cid: str, text: str) -> int:
        """Send a text message; its ``seq`` once acknowledged."""
        reply = await self.client.call(
            "message.send", session_id=self.session_id, cid=cid, kind="text", text=text
        )
        assert reply["duplicate"] is False
        self.keep(reply["seq"], text)
        return int(reply["seq"])

    def take_events(self) -> None:
        """Keep the messages relayed so far."""
        for ev in self.client.drain():
            if ev["type"] == "message" and ev["session_id"] == self.session_id:
                self.keep(ev["seq"], ev["text"])

    async def until_seq(self, last: int, timeout: float = 30) -> None:
        """Wait until every ``seq`` up to ``last`` was seen (relayed or own)."""
        deadline = time.monotonic() + timeout
        while not set(range(1, last + 1)) <= self.by_seq.keys():
            assert time.monotonic() < deadline, sorted(self.by_seq)
            ev = await self.client.wait_event(
                "message", lambda e: e["session_id"] == self.session_id, timeout=timeout
            )
            self.keep(ev["seq"], ev["text"])

    def contiguous(self) -> int:
        """The highest ``seq`` up to which nothing is missing: what a client resumes after."""
        n = 0
        while n + 1 in self.by_seq:
            n += 1
        return n


def at(seconds: float) -> str:
    """An ISO time ``seconds`` from now, with an explicit UTC offset."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def notifications(node: Node, token: str) -> list[Event]:
    """The user's dashboard notifications, read from ``node``."""
    r = httpx.get(node.http + "/api/notifications", headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    out: list[Event] = r.json()["notifications"]
    return out


# -- the tests ----------------------------------------------------------------------------------

EXPERTS = 9
ROUNDS = 4


async def test_first_accept_wins_across_hosts(start_hosts: Start, clients: Clients) -> None:
    """Nine experts, three on each host, accept the same request at once, four rounds:
    exactly one ``ok`` (with the session), every other ``offer_taken``, every loser
    ``offer.revoked`` (taken), and the customer told ``accepted`` once, with the
    winner's session."""
    nodes = start_hosts(HOSTS, offer_batch=EXPERTS)
    api = Api(nodes[0].http)
    try:
        _, ctoken = await new_customer(api)
        customer = await clients.connect(nodes[0], ctoken)

        async def add_expert(i: int) -> tuple[str, Client]:
            user, token = await new_expert(api, name=f"E{i}")
            c = await clients.connect(nodes[i % HOSTS], token)
            await c.call("presence", status="available")
            return user["id"], c

        experts = list(await asyncio.gather(*(add_expert(i) for i in range(EXPERTS))))
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
            for _, e in experts:
                await e.wait_event(
                    "offer.new", lambda ev, rid=rid: ev["offer"]["request_id"] == rid
                )
            replies = await asyncio.gather(
                *(e.request("offer.accept", request_id=rid) for _, e in experts)
            )
            winners = [i for i, r in enumerate(replies) if r["type"] == "ok"]
            assert len(winners) == 1, replies
            winner = winners[0]
            session = replies[winner]["session"]
            assert session["request_id"] == rid and session["status"] == "active"
            assert session["expert"]["id"] == experts[winner][0]
            losers = [r for i, r in enumerate(replies) if i != winner]
            assert {r["type"] for r in losers} == {"error"}, losers
            assert {r["code"] for r in losers} == {"offer_taken"}, losers
            for i, (_, e) in enumerate(experts):
                if i != winner:
                    ev = await e.wait_event(
                        "offer.revoked", lambda ev, rid=rid: ev["request_id"] == rid
                    )
                    assert ev["reason"] == "taken"
            update = await customer.wait_event(
                "request.update",
                lambda ev, rid=rid: ev["request_id"] == rid and ev["status"] != "open",
            )
            assert update["status"] == "accepted" and update["session_id"] == session["id"]
            # Once: nothing more about this request reaches the customer by the time a
            # ping to his node comes back.
            await customer.call("ping")
            extra = [
                ev
                for ev in customer.drain()
                if ev["type"] == "request.update" and ev["request_id"] == rid
            ]
            assert extra == []
            # The winner is busy now: another expert on his host takes his place.
            await experts[winner][1].close()
            experts[winner] = await add_expert(winner + EXPERTS * (rnd + 1))
    finally:
        await api.aclose()


async def test_chat_relayed_between_hosts(start_hosts: Start, clients: Clients) -> None:
    """A customer on host A and an expert on host B: messages both ways arrive, each
    side's view of the session is ``seq`` 1..n without a gap (in turns, then both
    typing at once), and the transcript read back on host B is that same one. Neither
    host keeps any of it on its own disk."""
    a, b = start_hosts(2, message_rate=1000, message_burst=1000)
    api = Api(a.http)
    try:
        customer, expert, sid, ctoken, _ = await open_session(a, b, api, clients)
        mine, theirs = Transcript(customer, sid), Transcript(expert, sid)
        # In turns: each message is relayed to the other host before the answer.
        for turn in range(5):
            seq = await mine.send(f"c{turn}", f"customer says {turn}")
            got = await expert.wait_event("message", lambda e: e["session_id"] == sid)
            assert got["seq"] == seq == 2 * turn + 1
            assert got["text"] == f"customer says {turn}" and got["from"]["role"] == "customer"
            theirs.keep(got["seq"], got["text"])
            seq = await theirs.send(f"e{turn}", f"expert says {turn}")
            got = await customer.wait_event("message", lambda e: e["session_id"] == sid)
            assert got["seq"] == seq == 2 * turn + 2
            assert got["text"] == f"expert says {turn}" and got["from"]["role"] == "expert"
            mine.keep(got["seq"], got["text"])
        # At once: 20 messages from each side, 5 in flight on each at a time.
        for start in range(0, 20, 5):
            await asyncio.gather(
                *(mine.send(f"cb{i}", f"customer burst {i}") for i in range(start, start + 5)),
                *(theirs.send(f"eb{i}", f"expert burst {i}") for i in range(start, start + 5)),
            )
        last = 10 + 40
        for side in (mine, theirs):
            side.take_events()
            await side.until_seq(last)
            assert sorted(side.by_seq) == list(range(1, last + 1))
        assert mine.by_seq == theirs.by_seq
        # The customer's second socket, on host B, reads the same transcript.
        again = await clients.connect(b, ctoken)
        joined = await again.call("session.join", session_id=sid, after_seq=0)
        assert joined["last_seq"] == last
        assert {m["seq"]: m["text"] for m in joined["messages"]} == mine.by_seq
        assert [m["seq"] for m in joined["messages"]] == list(range(1, last + 1))
        # None of it is on a host's disk: no SQLite file, signing key or attachment.
        for node in (a, b):
            for name in (SQLITE_FILE, SECRET_FILE, "attachments"):
                assert not (node.settings.data_dir / name).exists()
    finally:
        await api.aclose()


async def test_clients_of_a_killed_host_resume_on_another(
    start_hosts: Start, clients: Clients
) -> None:
    """The customer's host dies (SIGKILL) right after the last of 80 messages, sent by
    both sides at once, was acknowledged. The customer reconnects to a third host and
    resumes with ``session.join`` ``after_seq`` (the last ``seq`` he saw without a
    gap); the expert, on a host that lives, does the same: no acknowledged message is
    lost, ``seq`` stays gapless, and the chat goes on between the surviving hosts."""
    a, b, c = start_hosts(HOSTS, message_rate=1000, message_burst=1000)
    api = Api(c.http)
    try:
        customer, expert, sid, ctoken, _ = await open_session(a, b, api, clients)
        mine, theirs = Transcript(customer, sid), Transcript(expert, sid)
        acked: dict[int, str] = {}

        async def send(side: Transcript, cid: str, text: str) -> None:
            acked[await side.send(cid, text)] = text

        for start in range(0, 40, 10):
            await asyncio.gather(
                *(send(mine, f"c{i}", f"customer {i}") for i in range(start, start + 10)),
                *(send(theirs, f"e{i}", f"expert {i}") for i in range(start, start + 10)),
            )
        a.kill()  # right after the last ok
        assert sorted(acked) == list(range(1, 81))
        mine.take_events()
        await customer.wait_closed()
        # The customer, on host C, asks for what he missed.
        resumed = await clients.connect(c, ctoken)
        mine.client = resumed
        after = mine.contiguous()
        joined = await resumed.call("session.join", session_id=sid, after_seq=after)
        assert joined["last_seq"] == 80 and joined.get("reload") is not True
        assert [m["seq"] for m in joined["messages"]] == list(range(after + 1, 81))
        for m in joined["messages"]:
            mine.keep(m["seq"], m["text"])
        assert mine.by_seq == acked
        # The expert, on host B, too (A may have died before relaying its last ones).
        theirs.take_events()
        after = theirs.contiguous()
        joined = await expert.call("session.join", session_id=sid, after_seq=after)
        assert [m["seq"] for m in joined["messages"]] == list(range(after + 1, 81))
        for m in joined["messages"]:
            theirs.keep(m["seq"], m["text"])
        assert theirs.by_seq == acked
        # And the chat goes on, C to B and back, where the transcript left off.
        assert await mine.send("after-1", "back on host C") == 81
        await theirs.until_seq(81)
        assert await theirs.send("after-2", "welcome back") == 82
        await mine.until_seq(82)
        assert mine.by_seq == theirs.by_seq
        assert sorted(mine.by_seq) == list(range(1, 83))
    finally:
        await api.aclose()


async def collect_until_cancelled(sockets: list[Client], session_id: str) -> list[list[Event]]:
    """Every event each socket receives until each has seen the session cancelled
    (a generous timeout only against hanging), and for a second more, so that a late
    repeat would show."""
    out: list[list[Event]] = [[] for _ in sockets]

    def cancelled(events: list[Event]) -> bool:
        return any(
            e["type"] == "session.cancelled" and e["session_id"] == session_id for e in events
        )

    deadline = time.monotonic() + 60
    while not all(cancelled(events) for events in out):
        assert time.monotonic() < deadline, out
        await asyncio.sleep(0.1)
        for i, s in enumerate(sockets):
            out[i].extend(s.drain())
    await asyncio.sleep(1.0)
    for i, s in enumerate(sockets):
        out[i].extend(s.drain())
    return out


async def test_each_reminder_fires_once_across_hosts(start_hosts: Start, clients: Clients) -> None:
    """A scheduled session booked across three hosts (the customer on A and B, the
    expert on C), with reminders 4 s and 2 s before and a no-show 2 s after the start:
    every socket gets each reminder once and the no-show cancellation once, though the
    three nodes all run timers; each reminder is stored once per participant."""
    a, b, c = start_hosts(HOSTS, reminders="4s,2s", early_start="3s", no_show="2s")
    api = Api(a.http)
    try:
        _, ctoken = await new_customer(api)
        _, etoken = await new_expert(api)
        customer_a = await clients.connect(a, ctoken)
        customer_b = await clients.connect(b, ctoken)
        expert_c = await clients.connect(c, etoken)
        reply = await customer_a.call(
            "request.create",
            kind="scheduled",
            title="Later",
            skills=["python"],
            language="en",
            proposed_times=[at(7)],
        )
        request = reply["request"]
        await expert_c.wait_event("offer.new", lambda e: e["offer"]["request_id"] == request["id"])
        session = (
            await expert_c.call(
                "offer.accept", request_id=request["id"], time=request["proposed_times"][0]
            )
        )["session"]
        assert session["status"] == "scheduled"
        sid = session["id"]
        sockets = [customer_a, customer_b, expert_c]
        for s in sockets:
            s.drain()
        events = await collect_until_cancelled(sockets, sid)
        for got in events:
            reminders = [e for e in got if e["type"] == "reminder"]
            assert sorted(e["seconds_before"] for e in reminders) == [2, 4], reminders
            assert {e["session_id"] for e in reminders} == {sid}
            assert {e["starts_at"] for e in reminders} == {session["scheduled_at"]}
            cancelled = [e for e in got if e["type"] == "session.cancelled"]
            assert len(cancelled) == 1, cancelled
            assert cancelled[0]["reason"] == "no_show" and cancelled[0]["fee_cents"] == 0
        for node, token in ((b, ctoken), (a, etoken)):
            stored = [n["seconds_before"] for n in notifications(node, token)]
            assert sorted(stored) == [2, 4]
    finally:
        await api.aclose()
