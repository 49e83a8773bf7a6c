"""Faults under load: two nodes on Redis carry chatting pairs and racing experts
while a node, Redis and SQLite are made to fail; afterwards every rule is checked.

Run it from the repository root, in the project's venv::

    python -m bench.faults                              # 200 pairs, 120 s, every fault
    python -m bench.faults --pairs 50 --duration 40     # shorter
    python -m bench.faults --help

It starts a private redis-server and two ``rtserver serve`` processes sharing it
and one data dir (free ports of 127.0.0.1, a temporary directory), then:

- ``--pairs`` customer/expert pairs, each in its own session (a direct instant
  request accepted by its expert), chat: each side sends a text every
  ``--message-interval`` seconds, one in flight, with a ``cid``; an ``ok`` means
  stored. Every client reconnects with backoff to whichever node answers,
  resumes with ``session.join`` ``after_seq`` and resends its unacknowledged
  message under the same ``cid``;
- ``--customers`` customers keep one instant request each in flight, offered to
  ``--racers`` experts who all accept every offer at once; a winner ends his
  session at once so that he can race again;
- meanwhile the faults run one after another, ``--fault-length`` seconds each
  with ``--fault-gap`` seconds of calm between them: a node is SIGKILLed and
  started again; Redis is restarted (empty); Redis is paused (SIGSTOP, then
  SIGCONT); Redis ``maxmemory`` is set to 1 byte, then back; the SQLite write lock
  is held by another process.

When the load stops, every open request is left to end by ``--request-ttl``,
each client catches up once more, and the report checks:

- acknowledged messages: 0 lost, 0 stored twice, 0 out of their sender's order,
  ``seq`` gapless from 1 in every session, and every message delivered to the
  other side of its session (live or by resume);
- 0 requests accepted twice (``ok`` replies and sessions per request), 0 experts
  in two active sessions;
- every request ended (accepted, expired or cancelled);
- the ledger balanced (every operation, and the whole, sums to zero);
- every node either healthy (``/healthz`` 200 and its API answering) or saying
  it is not (503).

The test suite runs the same code, smaller (``tests/test_faults_under_load.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync
import websockets

from bench.common import machine, new_loop
from clients.rtclient import Api, CallError, Client
from tests.servers import ProcessNode, RedisServer, node_settings

FAULTS = ("kill_node", "restart_redis", "pause_redis", "redis_oom", "sqlite_lock")
# What a dropped socket, a dead node or a hung one raises at a client.
LINK_ERRORS = (
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    websockets.ConnectionClosed,
    websockets.InvalidHandshake,
    websockets.InvalidURI,
)


@dataclasses.dataclass
class Config:
    """The run's size and faults."""

    pairs: int = 200
    customers: int = 10
    racers: int = 10
    duration: float = 120.0
    message_interval: float = 0.5
    fault_length: float = 4.0
    fault_gap: float = 4.0
    faults: tuple[str, ...] = FAULTS
    offer_ttl: float = 4.0
    request_ttl: float = 20.0
    seed: int = 1


class Cluster:
    """A private redis-server and two node processes sharing it and one data dir."""

    def __init__(self, root: Path, cfg: Config) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer()
        self.nodes: list[ProcessNode] = []
        self.cfg = cfg
        self.down: set[int] = set()

    def start(self) -> None:
        """Redis, then the nodes."""
        self.redis.start()
        for i in range(2):
            settings = node_settings(
                self.data_dir,
                redis_url=self.redis.url,
                node_id=f"n{i}",
                offer_ttl=self.cfg.offer_ttl,
                request_ttl=self.cfg.request_ttl,
                presence_ttl=3,
                # The load is the point here, not the per-user limits: a customer
                # whose request is accepted at once asks again at once.
                message_rate=1000,
                message_burst=1000,
                create_limit="1000000/1s",
                presence_limit="1000000/1s",
            )
            node = ProcessNode(settings, self.root / f"n{i}.log")
            node.start()
            self.nodes.append(node)

    def stop(self) -> None:
        """Every process, whatever state it is in."""
        with contextlib.suppress(Exception):
            self.resume_redis()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        self.redis.stop()

    def ws_urls(self) -> list[str]:
        """The sockets of the nodes that are up."""
        return [n.ws for i, n in enumerate(self.nodes) if i not in self.down]

    def redis_client(self) -> redis_sync.Redis:
        """A plain connection to the private Redis (for faults)."""
        return redis_sync.Redis(port=self.redis.port, socket_timeout=5)

    def resume_redis(self) -> None:
        """SIGCONT, in case a pause is in effect."""
        if self.redis.proc is not None:
            self.redis.proc.send_signal(signal.SIGCONT)

    async def fault(self, name: str, length: float) -> None:
        """One fault, held ``length`` seconds, then undone."""
        if name == "kill_node":
            victim = self.nodes[0]
            self.down.add(0)
            victim.kill()
            await asyncio.sleep(length)
            await asyncio.to_thread(victim.start)
            self.down.discard(0)
        elif name == "restart_redis":
            await asyncio.to_thread(self.redis.restart)
            await asyncio.sleep(length)
        elif name == "pause_redis":
            assert self.redis.proc is not None
            self.redis.proc.send_signal(signal.SIGSTOP)
            try:
                await asyncio.sleep(length)
            finally:
                self.resume_redis()
        elif name == "redis_oom":
            r = self.redis_client()
            r.config_set("maxmemory", "1")
            try:
                await asyncio.sleep(length)
            finally:
                r.config_set("maxmemory", "0")
                r.close()
        elif name == "sqlite_lock":
            # Another process takes SQLite's write lock and holds it.
            code = (
                "import sqlite3, sys, time\n"
                "c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                "time.sleep(float(sys.argv[2]))\n"
                "c.execute('ROLLBACK')\n"
            )
            db = str(self.data_dir / "rtserver.sqlite3")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, db, str(length), stdout=subprocess.PIPE
            )
            assert proc.stdout is not None
            await proc.stdout.readline()
            await proc.wait()
        else:
            raise ValueError(f"unknown fault {name!r}")


class Link:
    """One user's socket that comes back: reconnects with jittered backoff to any
    node that answers, and runs ``on_connect`` (resume, presence) each time."""

    def __init__(
        self,
        cluster: Cluster,
        token: str,
        on_event: Callable[[dict[str, Any]], None],
        on_connect: Callable[[Client], Awaitable[None]] | None = None,
    ) -> None:
        self.cluster = cluster
        self.token = token
        self.on_event = on_event
        self.on_connect = on_connect
        self.client: Client | None = None
        self.pump: asyncio.Task[None] | None = None
        self.reconnects = 0
        self._lock = asyncio.Lock()

    async def ensure(self) -> Client:
        """The live client, connecting (again) first when there is none."""
        async with self._lock:
            client = self.client
            if client is not None and client.close_code is None and not client.ws.close_code:
                return client
            await self._drop()
            delay = 0.05
            while True:
                urls = self.cluster.ws_urls() or [n.ws for n in self.cluster.nodes]
                client = None
                try:
                    client = await Client.connect(random.choice(urls), self.token)
                    self.pump = asyncio.create_task(self._pump(client))
                    if self.on_connect is not None:
                        await self.on_connect(client)
                except (*LINK_ERRORS, CallError):
                    if self.pump is not None:
                        self.pump.cancel()
                    if client is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(client.close(), 5)
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                self.client = client
                self.reconnects += 1
                return client

    async def _drop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 5)
        if self.pump is not None:
            self.pump.cancel()
        self.client = None

    async def _pump(self, client: Client) -> None:
        while True:
            self.on_event(await client.events.get())

    async def call(self, type_: str, **fields: Any) -> dict[str, Any]:
        """A command's reply (ok or error), sent again on a fresh socket after a cut.

        Only for commands that are safe to repeat (idempotent by ``cid``, or by state).
        """
        while True:
            client = await self.ensure()
            try:
                return await client.request(type_, timeout=10, **fields)
            except LINK_ERRORS:
                async with self._lock:
                    if self.client is client:
                        await self._drop()

    async def once(self, type_: str, **fields: Any) -> dict[str, Any] | None:
        """A command sent once: its reply, or None when the socket failed under it."""
        client = await self.ensure()
        try:
            return await client.request(type_, timeout=10, **fields)
        except LINK_ERRORS:
            return None

    async def aclose(self) -> None:
        """Close the socket."""
        async with self._lock:
            await self._drop()


@dataclasses.dataclass
class Side:
    """One participant of a chatting pair."""

    name: str
    user_id: str
    token: str
    sent: list[str] = dataclasses.field(default_factory=list)  # cids, in send order
    acked: dict[str, int] = dataclasses.field(default_factory=dict)  # cid -> seq
    seen: set[int] = dataclasses.field(default_factory=set)  # seqs of the other side's messages
    # Every seq known here (both sides'), and the end of the run from 1 with no gap:
    # a client resumes after the last seq it has *without a gap*, not the highest it
    # has, or a relay lost in a fault and followed by a later one would stay lost.
    known: set[int] = dataclasses.field(default_factory=set)
    contiguous: int = 0
    link: Link | None = None

    def know(self, seq: int) -> None:
        """A seq of this session is known here (received, or our own acknowledged)."""
        self.known.add(seq)
        while self.contiguous + 1 in self.known:
            self.contiguous += 1


@dataclasses.dataclass
class Pair:
    """A session and its two sides."""

    session_id: str
    sides: tuple[Side, Side]


class Load:
    """The chatting pairs and the request race, until told to stop."""

    def __init__(self, cluster: Cluster, api: Api, cfg: Config) -> None:
        self.cluster = cluster
        self.api = api
        self.cfg = cfg
        self.pairs: list[Pair] = []
        self.stop = asyncio.Event()
        self.accept_oks: Counter[str] = Counter()  # request id -> ok replies to offer.accept
        self.accepted_updates: Counter[str] = Counter()  # request id -> 'accepted' events
        self.requests: dict[str, str] = {}  # request id -> last status seen
        self.errors: Counter[str] = Counter()
        self.racer_tokens: list[str] = []
        self.asker_tokens: list[str] = []

    # -- setup ------------------------------------------------------------------------------

    async def register(self, role: str, label: str, **prefs: Any) -> tuple[str, str]:
        user, token = await self.api.register(
            f"{label}-{os.urandom(4).hex()}@example.com", "password-123", label, role
        )
        if prefs:
            await self.api.preferences(token, **prefs)
        return user["id"], token

    async def setup_pair(self, i: int) -> Pair:
        cid, ctok = await self.register("customer", f"customer{i}")
        eid, etok = await self.register(
            "expert", f"expert{i}", skills=["chat"], rate_cents_per_15min=1000
        )
        customer = await Client.connect(self.cluster.nodes[i % 2].ws, ctok)
        expert = await Client.connect(self.cluster.nodes[(i + 1) % 2].ws, etok)
        try:
            await expert.call("presence", status="available")
            req = await customer.call(
                "request.create",
                kind="instant",
                title=f"pair {i}",
                description="",
                skills=["chat"],
                language="en",
                expert_id=eid,
            )
            rid = req["request"]["id"]
            await expert.wait_event("offer.new", lambda e: e["offer"]["request_id"] == rid, 30)
            session = (await expert.call("offer.accept", request_id=rid))["session"]
            await expert.call("presence", status="away")
        finally:
            await customer.close()
            await expert.close()
        return Pair(session["id"], (Side(f"c{i}", cid, ctok), Side(f"e{i}", eid, etok)))

    async def setup(self) -> None:
        sem = asyncio.Semaphore(20)

        async def one(i: int) -> Pair:
            async with sem:
                return await self.setup_pair(i)

        self.pairs = list(await asyncio.gather(*(one(i) for i in range(self.cfg.pairs))))
        # Everyone registers before the faults start (the HTTP client talks to node 0).
        self.racer_tokens = [
            (
                await self.register(
                    "expert", f"racer{i}", skills=["race"], rate_cents_per_15min=1000
                )
            )[1]
            for i in range(self.cfg.racers)
        ]
        self.asker_tokens = [
            (await self.register("customer", f"asker{i}"))[1] for i in range(self.cfg.customers)
        ]

    # -- chat -------------------------------------------------------------------------------

    def side_events(self, pair: Pair, me: Side) -> Callable[[dict[str, Any]], None]:
        def on_event(ev: dict[str, Any]) -> None:
            if ev.get("type") == "message" and ev.get("session_id") == pair.session_id:
                self.receive(me, ev)

        return on_event

    def receive(self, me: Side, message: dict[str, Any]) -> None:
        seq = int(message["seq"])
        if message["from"]["id"] != me.user_id:
            me.seen.add(seq)
        me.know(seq)

    def resume(self, pair: Pair, me: Side) -> Callable[[Client], Awaitable[None]]:
        async def on_connect(client: Client) -> None:
            reply = await client.call(
                "session.join", session_id=pair.session_id, after_seq=me.contiguous, timeout=10
            )
            for m in reply["messages"]:
                self.receive(me, m)

        return on_connect

    async def chat(self, pair: Pair, me: Side) -> None:
        me.link = Link(self.cluster, me.token, self.side_events(pair, me), self.resume(pair, me))
        n = 0
        await asyncio.sleep(random.random() * self.cfg.message_interval)
        while not self.stop.is_set():
            n += 1
            cid = f"{me.name}-{n}"
            me.sent.append(cid)
            while True:
                reply = await me.link.call(
                    "message.send", session_id=pair.session_id, cid=cid, kind="text", text=cid
                )
                if reply["type"] == "ok":
                    me.acked[cid] = int(reply["seq"])
                    me.know(int(reply["seq"]))
                    break
                # rate_limited, internal while Redis or SQLite is failing: the same cid again.
                self.errors[f"message.send {reply.get('code')}"] += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(self.cfg.message_interval * (0.5 + random.random()))

    # -- the race ---------------------------------------------------------------------------

    async def racer(self, i: int) -> None:
        token = self.racer_tokens[i]
        offers: asyncio.Queue[str] = asyncio.Queue()

        def on_event(ev: dict[str, Any]) -> None:
            if ev.get("type") == "offer.new":
                offers.put_nowait(ev["offer"]["request_id"])

        async def on_connect(client: Client) -> None:
            await client.call("presence", status="available", timeout=10)
            for offer in client.state.get("offers", []):
                offers.put_nowait(offer["request_id"])

        link = Link(self.cluster, token, on_event, on_connect)
        await link.ensure()
        try:
            while not self.stop.is_set():
                try:
                    rid = await asyncio.wait_for(offers.get(), 0.5)
                except TimeoutError:
                    continue
                reply = await link.once("offer.accept", request_id=rid)
                if reply is None or reply["type"] != "ok":
                    continue
                self.accept_oks[rid] += 1
                sid = reply["session"]["id"]
                while True:
                    end = await link.call("session.end", session_id=sid)
                    if end["type"] == "ok" or end.get("code") == "invalid_state":
                        break
                    await asyncio.sleep(0.2)
        finally:
            await link.aclose()

    async def customer(self, i: int) -> None:
        token = self.asker_tokens[i]
        done: dict[str, asyncio.Event] = {}

        def on_event(ev: dict[str, Any]) -> None:
            if ev.get("type") != "request.update":
                return
            rid = ev["request_id"]
            self.requests[rid] = ev["status"]
            if ev["status"] == "accepted":
                self.accepted_updates[rid] += 1
            if ev["status"] != "open" and rid in done:
                done[rid].set()

        link = Link(self.cluster, token, on_event)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                reply = await link.call(
                    "request.create",
                    kind="instant",
                    title=f"race {i}.{n}",
                    description="",
                    skills=["race"],
                    language="en",
                    cid=f"asker{i}-{n}",
                )
                if reply["type"] != "ok":
                    self.errors[f"request.create {reply.get('code')}"] += 1
                    await asyncio.sleep(0.5)
                    continue
                rid = reply["request"]["id"]
                self.requests.setdefault(rid, "open")
                done[rid] = asyncio.Event()
                # Events missed while reconnecting are not resent: the request's end is
                # read over HTTP after its TTL if no event said it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done[rid].wait(), self.cfg.request_ttl + 5)
        finally:
            await link.aclose()

    # -- the end ----------------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Every side joins once more after its last seq, on a fresh socket."""

        async def one(pair: Pair, me: Side) -> None:
            assert me.link is not None
            await me.link.aclose()
            await me.link.ensure()
            await me.link.aclose()

        await asyncio.gather(*(one(p, s) for p in self.pairs for s in p.sides))


async def transcript(cluster: Cluster, token: str, session_id: str) -> list[dict[str, Any]]:
    """Every stored message of a session, from a fresh socket."""
    async with await Client.connect(cluster.nodes[1].ws, token) as c:
        reply = await c.call("session.join", session_id=session_id, after_seq=0, timeout=30)
        await c.call("session.leave", session_id=session_id)
        messages: list[dict[str, Any]] = reply["messages"]
        return messages


async def check(cluster: Cluster, load: Load) -> dict[str, Any]:
    """Every rule the run must keep, counted (all zeros and Trues when it held)."""
    lost = duplicated = out_of_order = gaps = undelivered = acked = 0
    for pair in load.pairs:
        messages = await transcript(cluster, pair.sides[0].token, pair.session_id)
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            gaps += 1
        by_cid: dict[tuple[str, str], list[int]] = defaultdict(list)
        for m in messages:
            by_cid[(m["from"]["id"], m["cid"])].append(m["seq"])
        duplicated += sum(len(v) - 1 for v in by_cid.values())
        for me, other in (pair.sides, pair.sides[::-1]):
            for cid, seq in me.acked.items():
                acked += 1
                if by_cid.get((me.user_id, cid)) != [seq]:
                    lost += 1
            order = [by_cid[(me.user_id, c)][0] for c in me.sent if (me.user_id, c) in by_cid]
            if order != sorted(order):
                out_of_order += 1
            theirs = {m["seq"] for m in messages if m["from"]["id"] == other.user_id}
            undelivered += len(theirs - me.seen)

    db = sqlite3.connect(f"file:{cluster.data_dir / 'rtserver.sqlite3'}?mode=ro", uri=True)
    try:
        double_sessions = db.execute(
            "SELECT count(*) FROM (SELECT request_id FROM sessions GROUP BY request_id"
            " HAVING count(*) > 1)"
        ).fetchone()[0]
        two_active = db.execute(
            "SELECT count(*) FROM (SELECT expert_id FROM sessions WHERE status = 'active'"
            " GROUP BY expert_id HAVING count(*) > 1)"
        ).fetchone()[0]
        statuses = dict(
            db.execute(
                "SELECT status, count(*) FROM requests WHERE title LIKE 'race %' GROUP BY status"
            ).fetchall()
        )
        ledger_total = db.execute("SELECT coalesce(sum(amount_cents), 0) FROM ledger").fetchone()[0]
        unbalanced_ops = db.execute(
            "SELECT count(*) FROM (SELECT op FROM ledger GROUP BY op HAVING sum(amount_cents) != 0)"
        ).fetchone()[0]
        stored_messages = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        open_requests = db.execute(
            "SELECT count(*) FROM requests WHERE status = 'open'"
        ).fetchone()[0]
    finally:
        db.close()
    nodes = []
    async with httpx.AsyncClient(timeout=10) as http:
        token = load.pairs[0].sides[0].token if load.pairs else ""
        for node in cluster.nodes:
            health = await http.get(node.http + "/healthz")
            me = await http.get(node.http + "/api/me", headers={"Authorization": f"Bearer {token}"})
            nodes.append(
                {
                    "node": node.settings.node_id,
                    "healthz": health.status_code,
                    "api": me.status_code,
                    # Healthy and serving, or saying it is not healthy.
                    "honest": (health.status_code == 200 and me.status_code == 200)
                    or health.status_code == 503,
                }
            )
    return {
        "messages_acked": acked,
        "messages_stored": stored_messages,
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "sessions_with_gaps": gaps,
        "undelivered": undelivered,
        "requests": sum(statuses.values()),
        "request_statuses": statuses,
        "requests_open": open_requests,
        "double_accept_oks": sum(1 for n in load.accept_oks.values() if n > 1),
        "double_accepted_updates": sum(1 for n in load.accepted_updates.values() if n > 1),
        "double_sessions": double_sessions,
        "experts_in_two_sessions": two_active,
        "ledger_total_cents": ledger_total,
        "ledger_unbalanced_ops": unbalanced_ops,
        "nodes": nodes,
        "nodes_honest": all(n["honest"] for n in nodes),
        "reconnects": sum(
            s.link.reconnects for p in load.pairs for s in p.sides if s.link is not None
        ),
        "errors_answered": dict(load.errors),
    }


def violations(report: dict[str, Any]) -> list[str]:
    """The rules a report shows broken (empty when all held)."""
    zero = (
        "lost",
        "duplicated",
        "out_of_order",
        "sessions_with_gaps",
        "undelivered",
        "requests_open",
        "double_accept_oks",
        "double_accepted_updates",
        "double_sessions",
        "experts_in_two_sessions",
        "ledger_total_cents",
        "ledger_unbalanced_ops",
    )
    out = [f"{k} = {report[k]}" for k in zero if report[k] != 0]
    if not report["nodes_honest"]:
        out.append(f"a node serves errors while saying it is healthy: {report['nodes']}")
    if report["messages_acked"] == 0:
        out.append("no message was acknowledged: the load never ran")
    return out


async def run(root: Path, cfg: Config) -> dict[str, Any]:
    """Start the cluster, run the load through the faults, check, stop everything."""
    random.seed(cfg.seed)
    cluster = Cluster(root, cfg)
    started = time.monotonic()
    faults_done: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(cluster.start)
        api = Api(cluster.nodes[0].http)
        load = Load(cluster, api, cfg)
        tasks: list[asyncio.Task[None]] = []
        try:
            await load.setup()
            tasks += [asyncio.create_task(load.chat(p, s)) for p in load.pairs for s in p.sides]
            tasks += [asyncio.create_task(load.racer(i)) for i in range(cfg.racers)]
            tasks += [asyncio.create_task(load.customer(i)) for i in range(cfg.customers)]
            load_started = time.monotonic()
            await asyncio.sleep(cfg.fault_gap)
            for name in cfg.faults:
                t0 = time.monotonic()
                await cluster.fault(name, cfg.fault_length)
                faults_done.append({"fault": name, "seconds": round(time.monotonic() - t0, 1)})
                await asyncio.sleep(cfg.fault_gap)
            remaining = cfg.duration - (time.monotonic() - load_started)
            if remaining > 0:
                await asyncio.sleep(remaining)
            load.stop.set()
            # Each task ends at its next step; a customer waits out its request's TTL.
            await asyncio.wait_for(asyncio.gather(*tasks), cfg.request_ttl + 60)
            await asyncio.wait_for(load.catch_up(), 120)
            # Requests still open end by their TTL (their timers run on a live node).
            await asyncio.sleep(2)
            report = await check(cluster, load)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            links = [s.link for p in load.pairs for s in p.sides if s.link is not None]
            await asyncio.gather(*(link.aclose() for link in links), return_exceptions=True)
            await api.aclose()
    finally:
        await asyncio.to_thread(cluster.stop)
    report["faults"] = faults_done
    report["config"] = dataclasses.asdict(cfg)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["violations"] = violations(report)
    return report


def parse_args(argv: list[str] | None = None) -> Config:
    """The command line as a :class:`Config`."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = Config()
    p.add_argument("--pairs", type=int, default=d.pairs)
    p.add_argument("--customers", type=int, default=d.customers)
    p.add_argument("--racers", type=int, default=d.racers)
    p.add_argument("--duration", type=float, default=d.duration, help="seconds of load")
    p.add_argument("--message-interval", type=float, default=d.message_interval)
    p.add_argument("--fault-length", type=float, default=d.fault_length)
    p.add_argument("--fault-gap", type=float, default=d.fault_gap)
    p.add_argument("--faults", default=",".join(d.faults), help="comma-separated, in order")
    p.add_argument("--offer-ttl", type=float, default=d.offer_ttl)
    p.add_argument("--request-ttl", type=float, default=d.request_ttl)
    p.add_argument("--seed", type=int, default=d.seed)
    a = p.parse_args(argv)
    return Config(
        pairs=a.pairs,
        customers=a.customers,
        racers=a.racers,
        duration=a.duration,
        message_interval=a.message_interval,
        fault_length=a.fault_length,
        fault_gap=a.fault_gap,
        faults=tuple(f for f in a.faults.split(",") if f),
        offer_ttl=a.offer_ttl,
        request_ttl=a.request_ttl,
        seed=a.seed,
    )


def cli(argv: list[str] | None = None) -> None:
    """Run once, print the report as JSON, exit 1 when a rule broke."""
    cfg = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rt-faults-") as tmp:
        loop = new_loop()
        try:
            report = loop.run_until_complete(run(Path(tmp), cfg))
        finally:
            loop.close()
        report["machine"] = machine()
        report["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        if report["violations"]:
            for i in range(2):
                log = Path(tmp) / f"n{i}.log"
                if log.exists():
                    print(f"--- n{i}.log (tail)", file=sys.stderr)
                    print(log.read_text()[-4000:], file=sys.stderr)
    print(json.dumps(report, indent=2))
    sys.exit(1 if report["violations"] else 0)


if __name__ == "__main__":
    cli()
