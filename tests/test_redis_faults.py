"""Redis failing under running nodes (issue 8, defects 2 and 4).

Each test has a private redis-server that it breaks: out of memory
(``maxmemory 1``), read-only (a replica of nobody), ``NOAUTH`` (a password
set and every connection dropped), and hung (SIGSTOP). Two nodes share it
and one data dir; a customer on one chats with an expert on the other, so
that every relay crosses Redis. The nodes keep serving, ``/healthz`` says 503
while Redis fails and 200 after, nothing acknowledged is lost, and chat
relays again. A node whose database file is gone exits.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from clients.rtclient import Api, CallError, Client
from tests.servers import (
    Clients,
    Node,
    ProcessNode,
    RedisServer,
    free_port,
    new_customer,
    new_expert,
    node_settings,
    run_node,
)

# Small settings so that each fault is seen, and its end, within a second or so.
FAST = {"presence_ttl": "1s", "health_grace": "200ms", "redis_timeout": "500ms"}


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone: the test breaks it."""
    server = RedisServer()
    server.start()
    yield server
    if server.proc is not None:
        server.proc.send_signal(signal.SIGCONT)  # a test that failed while it was stopped
    server.stop()


@asynccontextmanager
async def two_nodes(data_dir: Path, redis: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    """Nodes a and b on one Redis (a prefix of their own) and one data dir."""
    prefix = f"t{secrets.token_hex(4)}:"
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                run_node(
                    node_settings(
                        data_dir, redis_url=redis.url, redis_prefix=prefix, node_id=name, **FAST
                    )
                )
            )
            for name in ("a", "b")
        ]
        yield nodes[0], nodes[1]


async def health(node: Node) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(node.http + "/healthz")
        return r.status_code, r.json()


async def wait_health(node: Node, status: int, timeout: float = 30) -> dict[str, Any]:
    """Poll /healthz until it answers ``status``; its body."""

    async def poll() -> dict[str, Any]:
        while True:
            code, body = await health(node)
            if code == status:
                return body
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


async def create(customer: Client, title: str = "Help") -> dict[str, Any]:
    reply = await customer.call(
        "request.create", kind="instant", title=title, skills=["python"], language="en"
    )
    return reply["request"]


async def chat(a: Node, b: Node, api: Api, clients: Clients) -> tuple[Client, str, Client, str]:
    """A customer on a and an expert on b in an active session: (customer, token, expert, id)."""
    _, ctoken = await new_customer(api)
    customer = await clients.connect(a, ctoken)
    _, etoken = await new_expert(api)
    expert = await clients.connect(b, etoken)
    await expert.call("presence", status="available")
    request = await create(customer)
    await expert.wait_event("offer.new", lambda e: e["offer"]["request_id"] == request["id"])
    session = (await expert.call("offer.accept", request_id=request["id"]))["session"]
    await customer.call("session.join", session_id=session["id"])
    await expert.call("session.join", session_id=session["id"])
    return customer, ctoken, expert, session["id"]


async def send(client: Client, session_id: str, cid: str) -> dict[str, Any]:
    return await client.call("message.send", session_id=session_id, cid=cid, kind="text", text=cid)


# -- the faults: each turns Redis bad through an admin connection, and back --------------


async def _oom(admin: aioredis.Redis, on: bool) -> None:
    # With the default noeviction policy every write is refused: "OOM command not allowed".
    await admin.config_set("maxmemory", "1" if on else "0")


async def _readonly(admin: aioredis.Redis, on: bool) -> None:
    # A replica of a master that is not there: writes answer READONLY, reads still work.
    if on:
        await admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    else:
        await admin.execute_command("REPLICAOF", "NO", "ONE")


async def _noauth(admin: aioredis.Redis, on: bool) -> None:
    # Connections already authenticated stay so: drop them all (but this one), as a
    # restart with a password would. Every new connection then meets NOAUTH.
    if on:
        await admin.config_set("requirepass", "s3cret")
        await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    else:
        await admin.config_set("requirepass", "")


FAULTS: dict[str, Callable[[aioredis.Redis, bool], Awaitable[None]]] = {
    "oom": _oom,
    "readonly": _readonly,
    "noauth": _noauth,
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_node_survives_a_redis_that_refuses_and_says_so(
    fault: str, data_dir: Path, own_redis: RedisServer, clients: Clients
) -> None:
    # Before: the first refused write (the presence heartbeat) ended the node's task
    # group and closed its database: every call answered 500, /healthz 200.
    admin = aioredis.Redis(port=own_redis.port, single_connection_client=True)
    async with two_nodes(data_dir, own_redis) as (a, b), aclosing(Api(a.http)) as api:
        customer, ctoken, expert, sid = await chat(a, b, api, clients)
        await FAULTS[fault](admin, True)
        try:
            body = await wait_health(a, 503)
            assert body["status"] == "unhealthy" and body["node"] == "a", body
            assert any(f["part"].startswith("bus.") for f in body["failing"]), body
            # The node serves on: a message is committed and acknowledged, the API answers.
            during = await send(customer, sid, "during")
            me = await api.http.get("/api/me", headers={"Authorization": f"Bearer {ctoken}"})
            assert me.status_code == 200
        finally:
            await FAULTS[fault](admin, False)
        await wait_health(a, 200)
        await wait_health(b, 200)
        # What was acknowledged during the fault reaches the other node (the outbox).
        got = await expert.wait_event("message", lambda e: e["cid"] == "during", timeout=30)
        assert got["seq"] == during["seq"]
        # And chat relays on.
        after = await send(customer, sid, "after")
        got = await expert.wait_event("message", lambda e: e["cid"] == "after")
        assert got["seq"] == after["seq"] == during["seq"] + 1
        metrics = (await api.http.get("/metrics")).text
        assert 'rt_loop_errors_total{loop="bus.' in metrics
    await admin.aclose()


async def test_a_hung_redis_holds_no_reply(
    data_dir: Path, own_redis: RedisServer, clients: Clients
) -> None:
    # Before: message.send had no reply after 80 s of SIGSTOP (its relay waited on
    # Redis), request.create answered after 40 s.
    assert own_redis.proc is not None
    async with two_nodes(data_dir, own_redis) as (a, b), aclosing(Api(a.http)) as api:
        customer, _, expert, sid = await chat(a, b, api, clients)
        _, e2token = await new_expert(api, name="Second")
        second = await clients.connect(b, e2token)
        await second.call("presence", status="available")
        waiting = await create(customer, "Second question")
        await second.wait_event("offer.new", lambda e: e["offer"]["request_id"] == waiting["id"])

        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            # Each answered while Redis is still stopped (it is resumed only below).
            during = await send(customer, sid, "during")
            created = await create(customer, "Third question")
            with pytest.raises(CallError) as lost:
                await second.call("offer.accept", request_id=waiting["id"])
            assert lost.value.code == "internal"
            body = await wait_health(a, 503)
            assert {f["part"] for f in body["failing"]} & {"bus.reader", "bus.heartbeat"}, body
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        assert created["status"] == "open"

        await wait_health(a, 200)
        await wait_health(b, 200)
        got = await expert.wait_event("message", lambda e: e["cid"] == "during", timeout=30)
        assert got["seq"] == during["seq"]
        # The accept answered `internal` is tried again and wins, whether or not its
        # first claim reached Redis when it resumed.
        session = (await second.call("offer.accept", request_id=waiting["id"]))["session"]
        update = await customer.wait_event(
            "request.update", lambda e: e["request_id"] == waiting["id"] and e["status"] != "open"
        )
        assert update["status"] == "accepted" and update["session_id"] == session["id"]
        after = await send(customer, sid, "after")
        got = await expert.wait_event("message", lambda e: e["cid"] == "after")
        assert got["seq"] == after["seq"]
        # Nothing acknowledged is lost, in order.
        joined = await expert.call("session.join", session_id=sid, after_seq=0)
        assert [m["cid"] for m in joined["messages"]] == ["during", "after"]


async def test_an_accept_tried_again_adopts_the_claim_of_its_first_attempt(
    data_dir: Path, redis_server: RedisServer, redis_prefix: str, clients: Clients
) -> None:
    # An accept whose claim timed out answers `internal`; a hung Redis runs that
    # claim when it resumes. Before, the expert's retry lost to his own first
    # attempt (offer_taken), and the request stayed unwritten until it expired.
    settings = node_settings(data_dir, redis_url=redis_server.url, redis_prefix=redis_prefix)
    async with run_node(settings) as a, aclosing(Api(a.http)) as api:
        _, ctoken = await new_customer(api)
        customer = await clients.connect(a, ctoken)
        euser, etoken = await new_expert(api)
        expert = await clients.connect(a, etoken)
        await expert.call("presence", status="available")
        request = await create(customer)
        await expert.wait_event("offer.new")
        # The claim of that first attempt (its own nonce), as Redis ran it late.
        r = aioredis.Redis.from_url(redis_server.url)
        key = f"{redis_prefix}claim:request:{request['id']}"
        await r.set(key, f"accepted:{euser['id']}::0badc0de", px=600_000)
        await r.aclose()
        session = (await expert.call("offer.accept", request_id=request["id"]))["session"]
        update = await customer.wait_event("request.update", lambda e: e["status"] != "open")
        assert update["status"] == "accepted" and update["session_id"] == session["id"]


@pytest.mark.sqlite_only  # the SQLite file of the data dir, deleted
def test_a_node_whose_database_file_is_gone_exits(tmp_path: Path, data_dir: Path) -> None:
    # SQLite would go on writing to the deleted file, which nobody else sees and
    # which is lost at the node's end: the node must stop, not acknowledge writes.
    node = ProcessNode(node_settings(data_dir), tmp_path / "node.log")
    node.start()
    try:
        assert node.proc is not None
        for f in data_dir.glob("rtserver.sqlite3*"):
            f.unlink()
        code = node.proc.wait(30)
        assert code != 0
        assert "database file" in node.log_path.read_text()
    finally:
        node.stop()


async def test_a_command_past_its_deadline_answers_internal_and_the_socket_reads_on(
    data_dir: Path, own_redis: RedisServer, clients: Clients
) -> None:
    # The last guard (--command-deadline): a part that waits longer than the
    # command may run. Here Redis is hung and --redis-timeout is longer than the
    # deadline, so the relay of a message waits on Redis past it.
    assert own_redis.proc is not None
    settings = node_settings(
        data_dir,
        redis_url=own_redis.url,
        redis_prefix=f"t{secrets.token_hex(4)}:",
        redis_timeout="60s",
        command_deadline="1s",
    )
    async with run_node(settings) as node, aclosing(Api(node.http)) as api:
        customer, _, _expert, sid = await chat(node, node, api, clients)
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(CallError) as cut:
                await customer.call(
                    "message.send", 30, session_id=sid, cid="stuck", kind="text", text="stuck"
                )
            assert cut.value.code == "internal"
            # The socket is still read: a command that needs no Redis answers.
            assert (await customer.call("ping"))["type"] == "ok"
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        # The message was stored before its relay waited: a resend finds its seq.
        again = await send(customer, sid, "stuck")
        assert again["duplicate"] is True and again["seq"] == 1
