"""Rate limits, the socket cap, e-mail folding and names, against a real node.

Every client here is 127.0.0.1, so the limits per client address are the ones
``node_settings`` raises for other tests; each test sets the one it shows.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from clients.rtclient import Api, CallError, Client
from rtserver.storage.db import MIGRATIONS, _statements
from tests.servers import (
    ROOT,
    Clients,
    Node,
    new_customer,
    new_expert,
    node_settings,
    run_node,
    unique,
)
from tests.storage import query, storage_flags
from tests.test_rooms import open_room

PASSWORD = "password-123"


async def register(http: httpx.AsyncClient, email: str, name: str = "Ann") -> httpx.Response:
    body = {"email": email, "password": PASSWORD, "name": name, "role": "customer"}
    return await http.post("/api/auth/register", json=body)


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": email, "password": password})


def refused(r: httpx.Response) -> bool:
    """429 rate_limited with a Retry-After of whole seconds."""
    return (
        r.status_code == 429
        and r.json()["error"]["code"] == "rate_limited"
        and int(r.headers["retry-after"]) >= 1
    )


# -- HTTP: login and register ----------------------------------------------------------------


async def test_failed_logins_are_limited_per_client_address(data_dir: Path) -> None:
    settings = node_settings(
        data_dir, login_limit="3/1h", login_account_limit="1000/1s", limit_loopback=True
    )
    async with run_node(settings) as node, httpx.AsyncClient(base_url=node.http) as http:
        alice, bob = f"{unique('a')}@example.com", f"{unique('b')}@example.com"
        assert (await register(http, alice)).status_code == 201
        assert (await register(http, bob)).status_code == 201
        # Logins that work spend nothing.
        for _ in range(5):
            assert (await login(http, alice)).status_code == 200
        wrong = [await login(http, alice, "wrong-password") for _ in range(3)]
        assert [r.status_code for r in wrong] == [401, 401, 401]
        # The address is out of tries: for any account, and even with the right password.
        assert refused(await login(http, alice, "wrong-password"))
        assert refused(await login(http, bob))
        assert refused(await login(http, alice))


async def test_failed_logins_are_limited_per_account_whatever_its_case(data_dir: Path) -> None:
    settings = node_settings(data_dir, login_account_limit="3/1h")
    async with run_node(settings) as node, httpx.AsyncClient(base_url=node.http) as http:
        tag = secrets.token_hex(4)
        target, other = f"straße-{tag}@example.com", f"{unique('o')}@example.com"
        assert (await register(http, target)).status_code == 201
        assert (await register(http, other)).status_code == 201
        spellings = [f"STRASSE-{tag}@EXAMPLE.COM", f"Strasse-{tag}@example.com", target]
        wrong = [await login(http, e, "wrong-password") for e in spellings]
        assert [r.status_code for r in wrong] == [401, 401, 401]
        assert refused(await login(http, target, "wrong-password"))
        assert refused(await login(http, target))
        # Another account from the same address is not held back.
        assert (await login(http, other, "wrong-password")).status_code == 401
        assert (await login(http, other)).status_code == 200


async def test_registrations_are_limited_per_client_address_and_store_nothing(
    data_dir: Path,
) -> None:
    settings = node_settings(data_dir, register_limit="2/1h", limit_loopback=True)
    async with run_node(settings) as node, httpx.AsyncClient(base_url=node.http) as http:
        emails = [f"{unique('r')}@example.com" for _ in range(3)]
        answers = [await register(http, e) for e in emails]
        assert [r.status_code for r in answers[:2]] == [201, 201]
        assert refused(answers[2])
        assert (await login(http, emails[0])).status_code == 200
        assert (await login(http, emails[2])).status_code == 401  # never stored


async def test_loopback_peers_are_not_limited_per_address_unless_asked(data_dir: Path) -> None:
    # A loopback peer is a proxy not named in --trusted-proxies, or a local tool: one
    # bucket for all its users would lock everyone out (issue 9's shared bench
    # registers 1,000 users from 127.0.0.1).
    settings = node_settings(data_dir, register_limit="2/1h")
    async with run_node(settings) as node, httpx.AsyncClient(base_url=node.http) as http:
        answers = [await register(http, f"{unique('l')}@example.com") for _ in range(4)]
        assert [r.status_code for r in answers] == [201, 201, 201, 201]


# -- the socket: commands per user, over all his sockets -------------------------------------


def _count(data_dir: Path, sql: str, *args: Any) -> int:
    """The one value of a ``SELECT count(*) ...`` (its column is named per backend)."""
    [row] = query(data_dir, sql, args)
    [value] = row.values()
    return int(value)


async def test_commands_are_limited_per_user_across_his_sockets(
    data_dir: Path, clients: Clients
) -> None:
    settings = node_settings(
        data_dir, create_limit="2/1h", request_message_limit="2/1h", presence_limit="2/1h"
    )
    async with run_node(settings) as node:
        api = Api(node.http)
        try:
            cuser, ctoken = await new_customer(api)
            one, two = await clients.connect(node, ctoken), await clients.connect(node, ctoken)
            create = {"kind": "instant", "title": "Help", "skills": ["rust"], "language": "en"}
            r1 = await one.call("request.create", **create)
            await two.call("request.create", **create)
            third = await one.request("request.create", **create)
            assert third["code"] == "rate_limited" and third["retry_after"] >= 1
            await one.call("ping")  # the socket stays open
            sql = "SELECT count(*) FROM requests WHERE customer_id = ?"
            assert _count(data_dir, sql, cuser["id"]) == 2

            rid = r1["request"]["id"]
            await one.call("request.message", request_id=rid, text="hello")
            await two.call("request.message", request_id=rid, text="anyone?")
            again = await two.request("request.message", request_id=rid, text="please")
            assert again["code"] == "rate_limited"
            await two.call("ping")
            sql = "SELECT count(*) FROM request_messages WHERE request_id = ?"
            assert _count(data_dir, sql, rid) == 2

            _, etoken = await new_expert(api)
            e1, e2 = await clients.connect(node, etoken), await clients.connect(node, etoken)
            await e1.call("presence", status="available")
            await e2.call("presence", status="away")
            flip = await e1.request("presence", status="available")
            assert flip["code"] == "rate_limited"
            await e1.call("ping")
            me = await api.http.get("/api/me", headers={"Authorization": f"Bearer {etoken}"})
            assert me.json()["user"]["presence"] == "away"
        finally:
            await api.aclose()


async def test_only_requests_not_accepted_count_toward_the_create_limit(
    data_dir: Path, clients: Clients
) -> None:
    settings = node_settings(data_dir, create_limit="2/1h")
    async with run_node(settings) as node:
        api = Api(node.http)
        try:
            cuser, ctoken = await new_customer(api)
            customer = await clients.connect(node, ctoken)
            create = {"kind": "instant", "title": "Help", "skills": ["go"], "language": "en"}
            # Three requests taken one after another: none counts.
            for _ in range(3):
                _, etoken = await new_expert(api, skills=("go",))
                expert = await clients.connect(node, etoken)
                await expert.call("presence", status="available")
                rid = (await customer.call("request.create", **create))["request"]["id"]
                await expert.wait_event("offer.new", lambda e, r=rid: e["offer"]["request_id"] == r)
                await expert.call("offer.accept", request_id=rid)
            # Two that nobody takes (one cancelled, one open) reach the limit.
            first = (
                await customer.call(
                    "request.create",
                    title="Rust",
                    **{k: v for k, v in create.items() if k != "title"} | {"skills": ["rust"]},
                )
            )["request"]["id"]
            await customer.call("request.cancel", request_id=first)
            await customer.call("request.create", **create | {"skills": ["rust"]})
            third = await customer.request("request.create", **create | {"skills": ["rust"]})
            assert third["code"] == "rate_limited" and third["retry_after"] >= 1
            sql = "SELECT count(*) FROM requests WHERE customer_id = ?"
            assert _count(data_dir, sql, cuser["id"]) == 5
        finally:
            await api.aclose()


async def test_chat_is_limited_per_user_not_per_socket(data_dir: Path, clients: Clients) -> None:
    settings = node_settings(data_dir, message_rate=0.001, message_burst=2)
    async with run_node(settings) as node:
        api = Api(node.http)
        try:
            room = await open_room(node, api, clients)
            sid = room.session_id
            second = await clients.connect(node, room.customer_token)
            await room.customer.call("message.send", session_id=sid, cid="a", kind="text", text="a")
            await second.call("message.send", session_id=sid, cid="b", kind="text", text="b")
            third = await room.customer.request(
                "message.send", session_id=sid, cid="c", kind="text", text="c"
            )
            assert third["code"] == "rate_limited"
            assert (await second.request("typing", session_id=sid))["code"] == "rate_limited"
            joined = await second.call("session.join", session_id=sid)
            assert [m["cid"] for m in joined["messages"]] == ["a", "b"]
        finally:
            await api.aclose()


async def test_a_user_past_his_sockets_is_refused_with_4429(
    data_dir: Path, clients: Clients
) -> None:
    async with run_node(node_settings(data_dir, sockets_per_user=2, limit_loopback=True)) as node:
        api = Api(node.http)
        try:
            _, token = await new_customer(api)
            first = await clients.connect(node, token)
            second = await clients.connect(node, token)
            extra = await Client.connect(node.ws, token, hello=False)
            clients.opened.append(extra)
            await extra.send({"type": "hello", "id": 1, "token": token})
            answer = await extra.recv()
            assert answer["type"] == "error" and answer["code"] == "rate_limited"
            assert await extra.wait_closed() == 4429
            # The sockets it already had are untouched.
            await first.call("ping")
            await second.call("ping")
            # Once one closes, a new one gets in (the cap counts open sockets).
            await first.close()
            while True:
                try:
                    await clients.connect(node, token)
                    break
                except CallError as exc:
                    assert exc.args[0]["code"] == "rate_limited"
                    await asyncio.sleep(0.05)
        finally:
            await api.aclose()


async def test_loopback_peers_hold_sockets_past_the_cap_unless_asked(
    data_dir: Path, clients: Clients
) -> None:
    # The shared bench's W3 opens 3,000 sockets of one user from 127.0.0.1.
    async with run_node(node_settings(data_dir, sockets_per_user=2)) as node:
        api = Api(node.http)
        try:
            _, token = await new_customer(api)
            sockets = [await clients.connect(node, token) for _ in range(4)]
            for s in sockets:
                await s.call("ping")
        finally:
            await api.aclose()


# -- e-mail folding ----------------------------------------------------------------------------


async def test_e_mails_are_one_address_under_unicode_case_folding(node: Node) -> None:
    async with httpx.AsyncClient(base_url=node.http) as http:
        tag = secrets.token_hex(4)
        assert (await register(http, f"straße-{tag}@example.com")).status_code == 201
        assert (await login(http, f"STRASSE-{tag}@EXAMPLE.COM")).status_code == 200
        taken = await register(http, f"STRASSE-{tag}@example.com")
        assert taken.status_code == 409 and taken.json()["error"]["field"] == "email"
        # U+01C4 is one letter; D + U+017D two; U+01C6 the lower case of both.
        assert (await register(http, f"\u01c4-{tag}@example.com")).status_code == 201
        for spelling in (f"D\u017d-{tag}@example.com", f"\u01c6-{tag}@example.com"):
            r = await login(http, spelling)
            assert r.status_code == 200
            assert r.json()["user"]["email"] == f"\u01c4-{tag}@example.com"  # as typed


def _v5_database(path: Path, users: list[tuple[str, str, int]]) -> None:
    """A database as version 5 left it, with these (id, e-mail, created_at) users."""
    hashed = PasswordHasher(memory_cost=1024, time_cost=1).hash(PASSWORD)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for script in MIGRATIONS[:5]:
            for statement in _statements(script):
                db.execute(statement)
        db.execute("PRAGMA user_version = 5")
        for uid, email, created in users:
            db.execute(
                "INSERT INTO users (id, email, password_hash, name, role, created_at)"
                " VALUES (?, ?, ?, 'Old', 'customer', ?)",
                (uid, email, hashed, created),
            )
    finally:
        db.close()


@pytest.mark.sqlite_only  # a SQLite file left by version 5 of the embedded schema
async def test_users_stored_before_folding_still_log_in(data_dir: Path) -> None:
    # Two accounts that only the new folding makes one address: the older keeps it.
    users = [
        ("u_mueller", "Müller@Example.com", 1),
        ("u_older", "straße@example.com", 2),
        ("u_newer", "STRASSE@example.com", 3),
    ]
    _v5_database(data_dir / "rtserver.sqlite3", users)
    async with (
        run_node(node_settings(data_dir)) as node,
        httpx.AsyncClient(base_url=node.http) as http,
    ):
        for spelling in ("müller@example.com", "MÜLLER@EXAMPLE.COM", "Müller@Example.com"):
            r = await login(http, spelling)
            assert r.status_code == 200 and r.json()["user"]["id"] == "u_mueller"
        r = await login(http, "Strasse@Example.com")
        assert r.status_code == 200 and r.json()["user"]["id"] == "u_older"
        assert (await register(http, "MÜLLER@example.com")).status_code == 409


# -- names -------------------------------------------------------------------------------------


async def test_names_with_bidi_overrides_or_controls_are_refused_and_not_stored(
    node: Node, api: Api, clients: Clients, data_dir: Path
) -> None:
    http = api.http
    for name in ("Eve\u202egnp.exe", "\u2066Admin\u2069", "Eve\u200b", "Eve\x1b[2J", "  "):
        email = f"{unique('n')}@example.com"
        r = await register(http, email, name)
        assert r.status_code == 422, name
        assert r.json()["error"]["code"] == "invalid_field"
        assert r.json()["error"]["field"] == "name"
        assert (await login(http, email)).status_code == 401
    assert (await register(http, f"{unique('n')}@example.com", "  Zoë  ")).json()["user"][
        "name"
    ] == "Zoë"

    _, etoken = await new_expert(api)
    prefs = {"title": "Senior \u202edev", "skills": ["python"], "languages": ["en"]}
    prefs |= {"years_experience": 1, "rate_cents_per_15min": 1000, "bio": ""}
    auth = {"Authorization": f"Bearer {etoken}"}
    r = await http.put("/api/me/preferences", json=prefs, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "title"

    cuser, ctoken = await new_customer(api)
    c = await clients.connect(node, ctoken)
    bad = await c.request(
        "request.create", kind="instant", title="Pay \u202e", skills=["python"], language="en"
    )
    assert bad["code"] == "invalid_field" and bad["field"] == "title"
    sql = "SELECT count(*) FROM requests WHERE customer_id = ?"
    assert _count(data_dir, sql, cuser["id"]) == 0


def test_user_create_refuses_a_name_with_a_bidi_override(data_dir: Path) -> None:
    argv = [sys.executable, "-m", "rtserver", "user", "create", *storage_flags(data_dir)]
    argv += ["--email", "boss@example.com", "--password", PASSWORD, "--role", "manager"]
    env = {"PATH": "/usr/bin:/bin", "RT_KDF_MEMORY_KIB": "1024", "RT_KDF_TIME_COST": "1"}
    bad = subprocess.run(
        [*argv, "--name", "Boss\u202e"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert bad.returncode != 0
    assert b"control or formatting" in bad.stderr
    good = subprocess.run(
        [*argv, "--name", "Boss"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
