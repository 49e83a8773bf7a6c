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

import collections
import logging
import time
from collections.abc import Collection
from typing import Any

import anyio
import msgpack
import redis.asyncio as aioredis
from anyio.abc import TaskGroup
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
# Most concurrent commands per node; more wait for a free connection (see RedisBus).
REDIS_CONNECTIONS = 256
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


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
    ) -> None:
        super().__init__(node_id, registry)
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
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=10,
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=5,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        # The stream reader must *see* a lost connection (to check for a gap),
        # so its client never retries behind its back.
        self._reader = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_timeout=10,
            retry=Retry(NoBackoff(), retries=0),
        )
        self.prefix = prefix
        self.stream = f"{prefix}events"
        self.nodes_key = f"{prefix}nodes"
        self.users_key = f"{prefix}node:{node_id}:users"
        self.presence_ttl = presence_ttl
        self.metrics = metrics
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._outbox: collections.deque[tuple[list[str], bytes]] = collections.deque()
        self._outbox_ready = anyio.Event()
        self._last_id: str = "0-0"
        self._stats = collections.Counter[str]()

    # -- lifecycle -------------------------------------------------------------

    async def start(self, tg: TaskGroup, on_resync: ResyncHandler) -> None:
        """Check Redis, find the stream's end, and start the loops."""
        await self.redis.ping()
        newest: Any = await self.redis.xrevrange(self.stream, count=1)
        self._last_id = newest[0][0].decode() if newest else "0-0"
        await self._refresh_presence()
        tg.start_soon(self._read_loop, on_resync, name=f"bus-reader-{self.node_id}")
        tg.start_soon(self._heartbeat_loop, name=f"bus-heartbeat-{self.node_id}")
        tg.start_soon(self._outbox_loop, name=f"bus-outbox-{self.node_id}")
        log.info(
            "redis bus started node=%s stream=%s last_id=%s",
            self.node_id,
            self.stream,
            self._last_id,
        )

    async def aclose(self) -> None:
        """Withdraw this node's presence and close the pool."""
        try:
            with anyio.fail_after(2):
                await self.redis.delete(self.users_key)
                await self.redis.zrem(self.nodes_key, self.node_id)
        except (*_REDIS_DOWN, TimeoutError):
            log.warning("could not withdraw presence node=%s", self.node_id)
        await self._reader.aclose()
        await self.redis.aclose()

    def _fail(self, op: str, exc: BaseException) -> None:
        self._stats[f"{op}_errors"] += 1
        if self.metrics:
            self.metrics.bus_error(op)
        log.warning("redis %s failed node=%s: %s", op, self.node_id, exc)

    # -- claims ----------------------------------------------------------------

    async def claim(self, key: str, value: str, ttl: float) -> str | None:
        """One atomic SET NX PX, else GET.

        ``value`` must be unique to this attempt (the hub adds a nonce), so that a
        retry after a lost reply recognizes its own win.
        """
        held = await self._claim(keys=[self.prefix + "claim:" + key], args=[value, int(ttl * 1000)])
        if held is None:
            return None
        text = held.decode() if isinstance(held, bytes) else str(held)
        return None if text == value else text

    async def release(self, key: str, value: str) -> None:
        """Compare-and-delete in one script: never drops another's claim."""
        await self._release(keys=[self.prefix + "claim:" + key], args=[value])

    # -- fan-out ---------------------------------------------------------------

    async def publish(
        self, user_ids: Collection[str], event: dict[str, Any], skip: Connection | None = None
    ) -> None:
        """Local sockets at once; other nodes through the stream (or the outbox)."""
        users = list(user_ids)
        if not users:
            return
        self.registry.deliver(users, event, skip)
        payload: bytes = msgpack.packb(event, use_bin_type=True)
        if self._outbox:
            self._enqueue(users, payload)  # keep order behind what waits
            return
        try:
            await self._xadd(users, payload)
        except _REDIS_DOWN as exc:
            self._fail("publish", exc)
            self._enqueue(users, payload)

    async def _xadd(self, users: list[str], payload: bytes) -> None:
        await self.redis.xadd(
            self.stream,
            {"n": self.node_id, "u": ",".join(users), "e": payload},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
        self._stats["published"] += 1

    def _enqueue(self, users: list[str], payload: bytes) -> None:
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.popleft()
            self._stats["outbox_dropped"] += 1
            log.error("bus outbox full node=%s: dropped the oldest event", self.node_id)
        self._outbox.append((users, payload))
        self._outbox_ready.set()

    async def _outbox_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            while self._outbox:
                users, payload = self._outbox[0]
                try:
                    await self._xadd(users, payload)
                except _REDIS_DOWN as exc:
                    self._fail("outbox", exc)
                    await anyio.sleep(0.5)
                    continue
                self._outbox.popleft()
            self._outbox_ready = anyio.Event()
            log.info("bus outbox drained node=%s", self.node_id)

    async def _read_loop(self, on_resync: ResyncHandler) -> None:
        backoff = 0.1
        check_gap = False
        while True:
            try:
                if check_gap:
                    # Redis may have restarted empty: be visible again at once.
                    await self._refresh_presence()
                    if await self._has_gap():
                        self._stats["resyncs"] += 1
                        if self.metrics:
                            self.metrics.resyncs.inc()
                        log.warning("bus gap node=%s: re-sending state", self.node_id)
                        await on_resync()
                    check_gap = False
                    log.info(
                        "bus reader reconnected node=%s last_id=%s", self.node_id, self._last_id
                    )
                reply: Any = await self._reader.xread(
                    {self.stream: self._last_id}, count=500, block=1000
                )
                backoff = 0.1
            except _REDIS_DOWN as exc:
                self._fail("read", exc)
                check_gap = True
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    self._last_id = entry_id.decode()
                    if fields.get(b"n", b"").decode() == self.node_id:
                        continue
                    users = fields[b"u"].decode().split(",")
                    event = msgpack.unpackb(fields[b"e"], raw=False)
                    self._stats["received"] += 1
                    self.registry.deliver(users, event)

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

    async def _heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(self.presence_ttl / 3)
            try:
                await self._refresh_presence()
            except _REDIS_DOWN as exc:
                self._fail("heartbeat", exc)

    async def user_connected(self, user_id: str) -> None:
        """Visible to matching on every node at once, not at the next heartbeat."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self.users_key, user_id)
                pipe.pexpire(self.users_key, int(self.presence_ttl * 1000))
                await pipe.execute()
        except _REDIS_DOWN as exc:
            self._fail("presence", exc)

    async def user_disconnected(self, user_id: str) -> None:
        """Withdrawn at once; the heartbeat would also drop him."""
        try:
            await self.redis.srem(self.users_key, user_id)
        except _REDIS_DOWN as exc:
            self._fail("presence", exc)

    async def online(self, user_ids: Collection[str]) -> set[str]:
        """Union over the live nodes' sets (a dead node's set has expired)."""
        ids = list(user_ids)
        if not ids:
            return set()
        members: Any = await self.redis.zrange(self.nodes_key, 0, -1)
        nodes = [n.decode() for n in members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.smismember(f"{self.prefix}node:{node}:users", ids)
            results = await pipe.execute()
        found: set[str] = set()
        for flags in results:
            found.update(uid for uid, flag in zip(ids, flags, strict=True) if flag)
        return found

    def statistics(self) -> dict[str, Any]:
        """Published, received, errors, resyncs and the outbox length."""
        return {**self._stats, "outbox": len(self._outbox), "last_id": self._last_id}
