"""The Redis bus under a burst of concurrent commands (a real redis-server)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import msgpack

from rtserver.hub.connections import Registry
from rtserver.hub.redis_bus import RedisBus
from tests.servers import RedisServer


async def test_a_burst_larger_than_the_pool_waits_instead_of_failing(
    redis_server: RedisServer, redis_prefix: str
) -> None:
    # redis-py's default pool failed every command past its 100th concurrent one
    # ("Too many connections"): accepts answered `internal`, events went to the outbox.
    bus = RedisBus("n0", Registry(), redis_server.url, prefix=redis_prefix)
    burst = 600  # more than the pool holds, and more than redis-py's default 100

    async def resync() -> None:
        pass

    try:
        async with anyio.create_task_group() as tg:
            # Started as in a node: publishes go out through the bus's publisher.
            await bus.start(tg, resync)
            await _burst(bus, burst)
            tg.cancel_scope.cancel()
    finally:
        await bus.aclose()


async def _burst(bus: RedisBus, burst: int) -> None:
    claims = await asyncio.gather(*(bus.claim(f"k{i}", f"v{i}", 30) for i in range(burst)))
    assert claims == [None] * burst  # every claim ran, and won its own key
    again = await asyncio.gather(*(bus.claim(f"k{i}", "other", 30) for i in range(burst)))
    assert again == [f"v{i}" for i in range(burst)]
    await asyncio.gather(*(bus.publish(["u1"], {"type": "x", "i": i}) for i in range(burst)))
    stats = bus.statistics()
    assert stats["published"] == burst and stats["outbox"] == 0, stats
    assert not any(k.endswith("_errors") for k in stats), stats
    # Published together, they are in the stream once each, in the order sent.
    entries: Any = await bus.redis.xrange(bus.stream)
    sent = [msgpack.unpackb(fields[b"e"])["i"] for _id, fields in entries]
    assert sent == list(range(burst))
