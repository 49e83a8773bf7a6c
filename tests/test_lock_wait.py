"""The database's write lock held by another connection (a backup, a sqlite3 shell).

The holder is a real ``sqlite3`` connection in ``BEGIN IMMEDIATE`` on the
node's own file. A write waits for it with backoff, then either goes through
once it is released, or past ``--lock-wait`` answers a clear ``internal``
(HTTP 503 with ``Retry-After``), and the waits are counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from clients.rtclient import Api, Client
from tests.servers import new_expert, node_settings, run_node, unique

# SQLite's write lock, held by a connection to the file: nothing of PostgreSQL.
pytestmark = pytest.mark.sqlite_only

PASSWORD = "password-123"


@asynccontextmanager
async def write_lock_held(data_dir: Path) -> AsyncIterator[None]:
    """Another connection holding the database's write lock until the block ends.

    Taken in a thread: the node shares this event loop, and a BEGIN that had to
    wait for one of the node's own transactions must not stop the loop meanwhile.
    """
    holder = sqlite3.connect(
        data_dir / "rtserver.sqlite3", isolation_level=None, check_same_thread=False
    )
    try:
        await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
        yield
        await asyncio.to_thread(holder.execute, "ROLLBACK")
    finally:
        holder.close()


def lock_waits(metrics: str, outcome: str) -> float:
    """How many writes waited for the lock, ending ``acquired`` or ``gave_up``."""
    pattern = rf'^rt_db_lock_wait_seconds_count{{[^}}]*outcome="{outcome}"[^}}]*}} (\S+)$'
    found = re.search(pattern, metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def register(http: httpx.AsyncClient, email: str) -> httpx.Response:
    body = {"email": email, "password": PASSWORD, "name": "Ann", "role": "customer"}
    return await http.post("/api/auth/register", json=body)


async def test_a_write_waits_for_a_held_lock_and_goes_through_once_it_is_released(
    data_dir: Path,
) -> None:
    settings = node_settings(data_dir, lock_wait="60s")
    async with run_node(settings) as node, httpx.AsyncClient(base_url=node.http) as http:
        email = f"{unique('w')}@example.com"
        async with write_lock_held(data_dir):
            pending = asyncio.ensure_future(register(http, email))
            # Past SQLite's own busy round (1 s): the node backs off and tries again.
            await asyncio.sleep(2.5)
            assert not pending.done()
        r = await pending
        assert r.status_code == 201
        login = {"email": email, "password": PASSWORD}
        assert (await http.post("/api/auth/login", json=login)).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert lock_waits(metrics, "acquired") >= 1
        assert lock_waits(metrics, "gave_up") == 0


async def test_a_lock_held_past_lock_wait_answers_a_clear_error_and_stores_nothing(
    data_dir: Path,
) -> None:
    async with run_node(node_settings(data_dir, lock_wait="1s")) as node:
        api = Api(node.http)
        try:
            _, token = await new_expert(api)
            expert = await Client.connect(node.ws, token)
            email = f"{unique('w')}@example.com"
            async with write_lock_held(data_dir):
                r = await register(api.http, email)
                busy = await expert.request("presence", status="available")
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "internal"
            assert "database is busy" in r.json()["error"]["message"]
            assert int(r.headers["retry-after"]) >= 1
            assert busy["type"] == "error" and busy["code"] == "internal"
            assert "database is busy" in busy["message"]
            # Nothing was stored, the socket is open, and the next write goes through.
            login = {"email": email, "password": PASSWORD}
            assert (await api.http.post("/api/auth/login", json=login)).status_code == 401
            me = await api.http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["user"]["presence"] == "away"
            await expert.call("presence", status="available")
            assert lock_waits((await api.http.get("/metrics")).text, "gave_up") >= 2
            await expert.close()
        finally:
            await api.aclose()
