"""Shared by the portal tests: ended, charged sessions made through the real protocol,
and managers made as ``rtserver user create`` makes them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from clients.rtclient import Api, Client
from rtserver.auth import Auth
from rtserver.clock import SystemClock, to_ms
from rtserver.storage.users import UserStore
from tests.servers import Clients, Node, new_customer, new_expert, unique
from tests.storage import opened, query

# 1,000 cents a second: a second of billing makes a charge worth refunding.
FAST_RATE = 900_000


def auth(token: str, key: str | None = None) -> dict[str, str]:
    """The bearer header (and an Idempotency-Key)."""
    h = {"Authorization": f"Bearer {token}"}
    if key is not None:
        h["Idempotency-Key"] = key
    return h


@dataclass
class Ended:
    """An ended session and its two sides."""

    session_id: str
    customer: dict[str, Any]
    customer_token: str
    expert: dict[str, Any]
    expert_token: str
    summary: dict[str, Any]
    customer_client: Client
    expert_client: Client


async def ended_session(
    node: Node,
    api: Api,
    clients: Clients,
    *,
    discount: int = 0,
    billed: float = 1.2,
    rate: int = FAST_RATE,
    expert: tuple[dict[str, Any], str] | None = None,
    customer: tuple[dict[str, Any], str] | None = None,
    skill: str | None = None,
) -> Ended:
    """Customer asks, expert accepts, billing runs ``billed`` seconds, the expert ends it.

    The node should run with a short ``billing_check`` (200ms) so that the
    time billed is close to ``billed``.
    """
    skill = skill or unique("skill")
    euser, etoken = expert or await new_expert(api, "Expert", skills=(skill,), rate=rate)
    if expert is not None:
        await api.preferences(etoken, skills=[skill], languages=["en"], rate_cents_per_15min=rate)
    cuser, ctoken = customer or await new_customer(api, "Customer")
    e = await clients.connect(node, etoken)
    await e.call("presence", status="available")
    c = await clients.connect(node, ctoken)
    created = await c.call(
        "request.create", kind="instant", title="Help me", skills=[skill], language="en"
    )
    request_id = created["request"]["id"]
    await e.wait_event("offer.new", lambda ev: ev["offer"]["request_id"] == request_id)
    accepted = await e.call("offer.accept", request_id=request_id)
    session_id = accepted["session"]["id"]
    await c.call("session.join", session_id=session_id)
    await e.call("session.join", session_id=session_id)
    await c.call("message.send", session_id=session_id, cid="c1", kind="text", text="hello")
    await e.call(
        "message.send",
        session_id=session_id,
        cid="e1",
        kind="code",
        code={"language": "python", "source": "print(1)"},
    )
    if billed > 0:
        await e.call("billing.start", session_id=session_id)
        await asyncio.sleep(billed)
    fields: dict[str, Any] = {"session_id": session_id}
    if discount:
        fields["discount_pct"] = discount
    end = await e.call("session.end", **fields)
    return Ended(session_id, cuser, ctoken, euser, etoken, end["summary"], c, e)


async def new_manager(node: Node, api: Api, data_dir: Path, name: str = "Manager") -> str:
    """A manager made in the node's database (as the CLI does), logged in over HTTP: his token."""
    email = f"{unique('m')}@example.com"
    settings = node.settings
    async with opened(data_dir) as db:
        a = Auth(
            await db.shared_secret("token"),
            SystemClock(),
            settings.token_ttl,
            kdf_memory_kib=settings.kdf_memory_kib,
            kdf_time_cost=settings.kdf_time_cost,
        )
        password_hash = await a.hash_password("password-123")
        now_ms = to_ms(SystemClock().now())
        await UserStore(db).create(email, password_hash, name, "manager", now_ms)
    r = await api.http.post("/api/auth/login", json={"email": email, "password": "password-123"})
    r.raise_for_status()
    return str(r.json()["token"])


def ledger(data_dir: Path) -> list[dict[str, Any]]:
    """Every ledger row, read straight from the test's database."""
    return query(data_dir, "SELECT * FROM ledger ORDER BY id")


def ops_balanced(rows: list[dict[str, Any]]) -> bool:
    """Every operation's rows sum to zero."""
    sums: dict[str, int] = {}
    for r in rows:
        sums[r["op"]] = sums.get(r["op"], 0) + r["amount_cents"]
    return all(v == 0 for v in sums.values())


async def get(api: Api, path: str, token: str | None, **params: Any) -> httpx.Response:
    """GET with the bearer token."""
    return await api.http.get(path, headers=auth(token) if token else {}, params=params)
