"""The bus through Redis, for many nodes sharing one Redis and one database.

**Claims** are one Lua script: ``SET key value NX PX ttl``, and when the key
is already set, ``GET`` it, in one atomic step; so any number of nodes agree on
exactly one winner, and every loser learns what won (``accepted:...``,
``cancelled``, ``expired``).

**Fan-out** uses one Redis stream (``XADD`` with an approximate ``MAXLEN``),
not pub/sub. Every node reads it with a blocking ``XREAD`` from the last id
it has seen. Pub/sub drops whatever is published while a subscriber is cut
off, without a word; a stream keeps it, so a node that loses Redis for a
moment reconnects and replays from its last id, and loses nothing. If it was
away so long that the stream was trimmed past its last id, or Redis itself
restarted and the stream is gone, the node *knows* it has a gap (the oldest
id is newer than its last one, or the newest is older) and re-sends a fresh
``state`` to every socket it holds (``resync``): the database is the truth
and ``state`` is derived from it. Events a node could not publish because
Redis was down wait in a bounded outbox and are retried in order.

**Failures.** Every Redis call a command makes (claim, release, publish,
presence) is bounded by ``--redis-timeout``, whatever the error: a hung Redis
(SIGSTOP) or one that refuses writes (``OOM``, ``READONLY``, ``NOAUTH``) makes
a claim answer :class:`rtserver.errors.Unavailable` (``internal``, "try
again") at once, and a publish go to the outbox; presence updates are best
effort (the heartbeat rewrites them). The reader, the outbox and the heartbeat
run under :func:`rtserver.health.supervise`: they survive every error class,
back off with jitter, and the reader checks for a gap after *any* error.

The cost of a single stream is that every node reads every event; that is
right for a handful of nodes. Past that, shard the stream by node and route
by presence (docs/architecture.md).

**Presence** is one set per node (``<prefix>node:<id>:users``), refreshed with
an expiry of ``--presence-ttl`` by a heartbeat and replaced atomically each
time; the node ids are kept in a sorted set. A node that dies stops
refreshing and its set expires, so its experts stop being offered work
within ``--presence-ttl``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import anyio
import msgpack
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rtserver.errors import Unavailable
from rtserver.health import Health, supervise
from rtserver.hub.bus import Bus, ResyncHandler
from rtserver.hub.connections import Connection, Registry
from rtserver.metrics import Metrics

log = logging.getLogger("rtserver.bus")

_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1]) or ''
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

STREAM_MAXLEN = 100_000
OUTBOX_MAX = 50_000
# Most stream entries sent in one pipeline by the publisher.
PUBLISH_BATCH = 512
# Most concurrent commands per node; more wait for a free connection (see RedisBus).
REDIS_CONNECTIONS = 256
# How long the reader's XREAD blocks on an idle stream before it asks again.
READ_BLOCK = 1.0

T = TypeVar("T")


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


class RedisBus(Bus):
    """Claims, fan-out and presence through one Redis server."""

    def __init__(
        self,
        node_id: str,
        registry: Registry,
        url: str,
        *,
        prefix: str = "rt:",
        presence_ttl: float = 6.0,
        metrics: Metrics | None = None,
        timeout: float = 2.0,
        health: Health | None = None,
    ) -> None:
        super().__init__(node_id, registry)
        self.timeout = timeout
        # A pooled connection that Redis dropped (a restart) fails on its next use;
        # retrying on a fresh connection hides that from callers. The claim script
        # is safe to retry: a retried claim that had in fact won reads back its own
        # unique value (see claim).
        #
        # The pool *blocks* when all its connections are in use. redis-py's default
        # pool instead fails the command at once ("Too many connections", a
        # ConnectionError; redis-py 8 caps it at 100 connections): a burst of more
        # than 100 concurrent claims or publishes (1,000 busy chat sessions) made
        # accepts fail as `internal` and pushed events into the slow outbox.
        #
        # Each call is also bounded as a whole by `timeout` (see _call): redis-py's
        # socket timeout applies per read and its retries multiply it (a hung Redis
        # held a reply for 40 s and more); cancelling a call makes redis-py drop its
        # connection, so no reply can be read by the wrong caller.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=timeout,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=5,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        # The stream reader must *see* a lost connection (to check for a gap),
        # so its client never retries behind its back.
        self._reader = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=READ_BLOCK + timeout,
            retry=Retry(NoBackoff(), retries=0),
        )
        self.prefix = prefix
        self.stream = f"{prefix}events"
        self.nodes_key = f"{prefix}nodes"
        self.users_key = f"{prefix}node:{node_id}:users"
        self.presence_ttl = presence_ttl
        self.metrics = metrics
        self.health = health or Health(node_id, metrics)
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._outbox: collections.deque[tuple[list[str], bytes]] = collections.deque()
        self._outbox_ready = anyio.Event()
        # Entries waiting for the publisher (see _send), with their senders' futures.
        self._unsent: collections.deque[tuple[list[str], bytes, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._unsent_ready = asyncio.Event()
        self._last_id: str = "0-0"
        # Set by any error of the reader: before reading on, check for a gap.
        self._behind = False
        self._stats = collections.Counter[str]()

    # -- lifecycle -------------------------------------------------------------

    async def start(self, tg: TaskGroup, on_resync: ResyncHandler) -> None:
        """Check Redis, find the stream's end, and start the loops."""
        await self.redis.ping()
        newest: Any = await self.redis.xrevrange(self.stream, count=1)
        self._last_id = newest[0][0].decode() if newest else "0-0"
        await self._refresh_presence()
        read = functools.partial(self._read_step, on_resync)
        heartbeat = functools.partial(
            supervise,
            self.health,
            "bus.heartbeat",
            self._heartbeat_step,
            every=self.presence_ttl / 3,
        )
        tg.start_soon(supervise, self.health, "bus.reader", read, name=f"bus-reader-{self.node_id}")
        tg.start_soon(heartbeat, name=f"bus-heartbeat-{self.node_id}")
        tg.start_soon(
            supervise,
            self.health,
            "bus.publisher",
            self._publish_step,
            name=f"bus-publisher-{self.node_id}",
        )
        tg.start_soon(
            supervise,
            self.health,
            "bus.outbox",
            self._outbox_step,
            name=f"bus-outbox-{self.node_id}",
        )
        log.info(
            "redis bus started node=%s stream=%s last_id=%s",
            self.node_id,
            self.stream,
            self._last_id,
        )

    async def aclose(self) -> None:
        """Send what is still queued, withdraw this node's presence, close the pool."""
        if self._unsent:
            # The publisher was stopped with the node: its last entries go out here,
            # and no sender is left waiting (a failure fails them to the outbox,
            # which dies with the node: receivers resume by seq).
            with contextlib.suppress(Exception):
                while self._unsent:
                    await self._publish_step()
        try:
            with anyio.fail_after(2):
                await self.redis.delete(self.users_key)
                await self.redis.zrem(self.nodes_key, self.node_id)
        except Exception:
            log.warning("could not withdraw presence node=%s", self.node_id)
        await self._reader.aclose()
        await self.redis.aclose()

    def _fail(self, op: str, exc: BaseException) -> None:
        """Count a failed call; log it once per outage of this kind of call."""
        self._stats[f"{op}_errors"] += 1
        if self.metrics:
            self.metrics.bus_error(op)
        self.health.failed(f"bus.{op}", exc)

    async def _call(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        """One Redis call of a command, bounded by ``timeout``; any failure is Unavailable.

        Any error class: a hung Redis, a dropped connection, and also a Redis
        that answers but refuses (OOM, READONLY, NOAUTH, LOADING).
        """
        try:
            with anyio.fail_after(self.timeout):
                result = await call()
        except Exception as exc:
            self._fail(op, exc)
            raise Unavailable(f"the bus (Redis) failed ({op}); try again") from exc
        self.health.ok(f"bus.{op}")
        return result

    # -- claims ----------------------------------------------------------------

    async def claim(self, key: str, value: str, ttl: float) -> str | None:
        """One atomic SET NX PX, else GET.

        ``value`` must be unique to this attempt (the hub adds a nonce), so that a
        retry after a lost reply recognizes its own win.
        """
        held = await self._call(
            "claim",
            lambda: self._claim(keys=[self.prefix + "claim:" + key], args=[value, int(ttl * 1000)]),
        )
        if held is None:
            return None
        text = held.decode() if isinstance(held, bytes) else str(held)
        return None if text == value else text

    async def release(self, key: str, value: str) -> None:
        """Compare-and-delete in one script: never drops another's claim.

        Best effort: if Redis fails, the claim stays until its TTL and the
        request's timer repairs it (Hub._repair); the command answers what it
        was going to answer.
        """
        try:
            await self._call(
                "release", lambda: self._release(keys=[self.prefix + "claim:" + key], args=[value])
            )
        except Unavailable:
            log.warning("claim not released node=%s key=%s", self.node_id, key)

    # -- fan-out ---------------------------------------------------------------

    async def publish(
        self, user_ids: Collection[str], event: dict[str, Any], skip: Connection | None = None
    ) -> None:
        """Local sockets at once; other nodes through the stream (or the outbox)."""
        users = list(user_ids)
        if not users:
            return
        self.registry.deliver(users, event, skip)
        await self._send(users, msgpack.packb(event, use_bin_type=True))

    async def experts_changed(self, expert_ids: Collection[str]) -> None:
        """This node's watchers at once; the others through the stream (or the
        outbox), as an entry addressed to no user."""
        ids = list(expert_ids)
        if not ids:
            return
        self._experts_changed(ids)
        await self._send([], msgpack.packb({"type": "experts.changed", "ids": ids}))

    async def _send(self, users: list[str], payload: bytes) -> None:
        """Hand one entry to the stream; back once Redis took it or it is in the outbox.

        Entries published at once go out together: each caller queues its entry
        and waits, and the publisher sends everything queued in one pipeline (one
        round trip, one deadline), in order. A chat message used to pay a pooled
        connection, a deadline and a round trip of its own (docs/benchmarks.md,
        "two nodes").
        """
        if self._outbox:
            self._enqueue(users, payload)  # keep order behind what waits
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unsent.append((users, payload, done))
        if len(self._unsent) == 1:
            self._unsent_ready.set()
        await done

    async def _publish_step(self) -> None:
        """Send what is queued in one pipeline; on failure it goes to the outbox.

        At least once: a pipeline that failed part way may have added some entries,
        which the outbox adds again; receivers dedupe by seq.
        """
        while not self._unsent:
            self._unsent_ready.clear()
            await self._unsent_ready.wait()
        batch = [self._unsent.popleft() for _ in range(min(len(self._unsent), PUBLISH_BATCH))]
        try:
            with anyio.fail_after(self.timeout):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for users, payload, _ in batch:
                        self._xadd_to(pipe, users, payload)
                    await pipe.execute()
        except Exception as exc:
            self._fail("publish", exc)
            for users, payload, _ in batch:
                self._enqueue(users, payload)
        else:
            self._stats["published"] += len(batch)
            self.health.ok("bus.publish")
        finally:
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _xadd_to(self, client: Any, users: list[str], payload: bytes) -> Any:
        return client.xadd(
            self.stream,
            {"n": self.node_id, "u": ",".join(users), "e": payload},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )

    async def _xadd(self, users: list[str], payload: bytes) -> None:
        await self._xadd_to(self.redis, users, payload)
        self._stats["published"] += 1

    def _enqueue(self, users: list[str], payload: bytes) -> None:
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.popleft()
            self._stats["outbox_dropped"] += 1
            log.error("bus outbox full node=%s: dropped the oldest event", self.node_id)
        self._outbox.append((users, payload))
        self._outbox_ready.set()

    async def _outbox_step(self) -> None:
        """Wait for events the bus could not publish, then send them all, in order.

        A failure leaves the event at the head (supervise backs off and calls
        again); events published meanwhile queue behind it.
        """
        await self._outbox_ready.wait()
        sent = 0
        while self._outbox:
            users, payload = self._outbox[0]
            with anyio.fail_after(self.timeout):
                await self._xadd(users, payload)
            self._outbox.popleft()
            sent += 1
        self._outbox_ready = anyio.Event()
        log.info("bus outbox drained node=%s sent=%d", self.node_id, sent)

    async def _read_step(self, on_resync: ResyncHandler) -> None:
        """One XREAD from the last id seen; after any error, check for a gap first."""
        try:
            if self._behind:
                await self._catch_up(on_resync)
            with anyio.fail_after(READ_BLOCK + self.timeout):
                reply: Any = await self._reader.xread(
                    {self.stream: self._last_id}, count=500, block=int(READ_BLOCK * 1000)
                )
        except BaseException:
            self._behind = True
            raise
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                self._last_id = entry_id.decode()
                if fields.get(b"n", b"").decode() == self.node_id:
                    continue
                event = msgpack.unpackb(fields[b"e"], raw=False)
                self._stats["received"] += 1
                if not fields[b"u"]:
                    # Addressed to the nodes, not to users: see experts_changed.
                    self._experts_changed(event["ids"])
                    continue
                self.registry.deliver(fields[b"u"].decode().split(","), event)

    async def _catch_up(self, on_resync: ResyncHandler) -> None:
        """After an error: be visible again, and re-send state if events were missed."""
        # Redis may have restarted empty (or lost our set): be visible again at once.
        with anyio.fail_after(self.timeout):
            await self._refresh_presence()
        with anyio.fail_after(self.timeout):
            gap = await self._has_gap()
        if gap:
            self._stats["resyncs"] += 1
            if self.metrics:
                self.metrics.resyncs.inc()
            log.warning("bus gap node=%s: re-sending state", self.node_id)
            # Expert changes may be among what was missed: reload them all.
            self._experts_changed(None)
            await on_resync()
        self._behind = False
        log.info("bus reader caught up node=%s last_id=%s", self.node_id, self._last_id)

    async def _has_gap(self) -> bool:
        """After an outage: were events we never read trimmed, or lost with Redis?"""
        last = _parse_id(self._last_id)
        oldest: Any = await self.redis.xrange(self.stream, count=1)
        newest: Any = await self.redis.xrevrange(self.stream, count=1)
        if not newest:
            # The stream is gone (Redis restarted empty): start over from its start.
            gone = last != (0, 0)
            self._last_id = "0-0"
            return gone
        if _parse_id(newest[0][0]) < last:
            # Redis restarted and new ids are older than ours: read all it has.
            self._last_id = "0-0"
            return True
        return bool(oldest) and _parse_id(oldest[0][0]) > last and last != (0, 0)

    # -- presence --------------------------------------------------------------

    async def _refresh_presence(self) -> None:
        users = self.registry.users()
        ttl_ms = int(self.presence_ttl * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.nodes_key, {self.node_id: int(time.time() * 1000)})
            pipe.delete(self.users_key)
            if users:
                pipe.sadd(self.users_key, *users)
                pipe.pexpire(self.users_key, ttl_ms)
            # Forget nodes not seen for a day (their sets expired long ago).
            pipe.zremrangebyscore(self.nodes_key, "-inf", int(time.time() * 1000) - 86_400_000)
            await pipe.execute()

    async def _heartbeat_step(self) -> None:
        with anyio.fail_after(self.timeout):
            await self._refresh_presence()

    async def user_connected(self, user_id: str) -> None:
        """Visible to matching on every node at once, not at the next heartbeat.

        Best effort: if Redis fails, the next successful heartbeat adds him.
        """

        async def add() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self.users_key, user_id)
                pipe.pexpire(self.users_key, int(self.presence_ttl * 1000))
                await pipe.execute()

        with contextlib.suppress(Unavailable):
            await self._call("presence", add)

    async def user_disconnected(self, user_id: str) -> None:
        """Withdrawn at once; the heartbeat would also drop him (best effort)."""
        with contextlib.suppress(Unavailable):
            await self._call("presence", lambda: self.redis.srem(self.users_key, user_id))

    async def online(self, user_ids: Collection[str]) -> set[str]:
        """Union over the live nodes' sets (a dead node's set has expired).

        Raises Unavailable when Redis cannot tell within ``timeout``.
        """
        ids = list(user_ids)
        if not ids:
            return set()
        results = await self._call("online", lambda: self._online(ids))
        found: set[str] = set()
        for flags in results:
            found.update(uid for uid, flag in zip(ids, flags, strict=True) if flag)
        return found

    async def _online(self, ids: list[str]) -> list[Any]:
        members: Any = await self.redis.zrange(self.nodes_key, 0, -1)
        nodes = [n.decode() for n in members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.smismember(f"{self.prefix}node:{node}:users", ids)
            return list(await pipe.execute())

    def statistics(self) -> dict[str, Any]:
        """Published, received, errors, resyncs and the outbox length."""
        return {**self._stats, "outbox": len(self._outbox), "last_id": self._last_id}
