"""Contract section 2 over real HTTP, and the ``rtserver user create`` CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients.rtclient import Api, Client
from rtserver.http import api as api_module
from rtserver.http import attachments as attachments_module
from rtserver.http import portal as portal_module
from tests.servers import (
    Node,
    new_customer,
    new_expert,
    node_settings,
    rtserver_cli,
    run_node,
    unique,
)
from tests.storage import opened, storage_flags

PASSWORD = "password-123"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_http_error(r: httpx.Response, status: int | None, code: str | None = None) -> None:
    """An error status (this one, or any 4xx) with the contract's error body."""
    if status is None:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
    else:
        assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body


async def register(api: Api, **fields: Any) -> httpx.Response:
    return await api.http.post("/api/auth/register", json=fields)


async def login(api: Api, email: str, password: str) -> httpx.Response:
    return await api.http.post("/api/auth/login", json={"email": email, "password": password})


# -- register and login ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["customer", "expert"])
async def test_register(api: Api, role: str) -> None:
    email = f"{unique()}@example.com"
    r = await register(api, email=email, password=PASSWORD, name="Ann Example", role=role)
    assert r.status_code == 201, r.text
    body = r.json()
    assert {"user", "token"} <= set(body)
    user = body["user"]
    assert {"id", "email", "name", "role"} <= set(user)
    assert isinstance(user["id"], str) and user["id"]
    assert (user["email"], user["name"], user["role"]) == (email, "Ann Example", role)
    assert "password" not in user and "password_hash" not in user
    # The token is a working bearer token for this user.
    me = await api.http.get("/api/me", headers=auth(body["token"]))
    assert me.status_code == 200
    assert me.json()["user"]["id"] == user["id"]
    assert me.json()["user"]["role"] == role


async def test_register_manager_is_forbidden(api: Api) -> None:
    email = f"{unique()}@example.com"
    r = await register(api, email=email, password=PASSWORD, name="Boss", role="manager")
    assert_http_error(r, 403, "forbidden")
    # Nothing was created.
    assert_http_error(await login(api, email, PASSWORD), 401, "unauthenticated")


async def test_register_duplicate_email_is_refused(api: Api) -> None:
    local = unique()
    email = f"{local}@example.com"
    first = await register(api, email=email, password=PASSWORD, name="First", role="customer")
    assert first.status_code == 201
    for dup in (email, email.upper(), f"{local.capitalize()}@Example.COM"):
        r = await register(api, email=dup, password="another-pass-1", name="Dup", role="expert")
        assert r.status_code != 201
        assert_http_error(r, None)
    # The first account is untouched: its password works, the second one does not.
    ok = await login(api, email, PASSWORD)
    assert ok.status_code == 200
    assert ok.json()["user"]["id"] == first.json()["user"]["id"]
    assert ok.json()["user"]["role"] == "customer"
    assert_http_error(await login(api, email, "another-pass-1"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "not-an-email", "password": PASSWORD, "name": "N", "role": "customer"},
        {"email": "two@@example.com x", "password": PASSWORD, "name": "N", "role": "customer"},
        {"email": "EMAIL", "password": "short7!", "name": "N", "role": "customer"},
        {"email": "EMAIL", "password": PASSWORD, "role": "customer"},
        {"email": "EMAIL", "password": PASSWORD, "name": "N"},
        {"password": PASSWORD, "name": "N", "role": "customer"},
        {"email": "EMAIL", "password": PASSWORD, "name": "N", "role": "admin"},
        {"email": "EMAIL", "password": PASSWORD, "name": "", "role": "customer"},
        {"email": "EMAIL", "password": 12345678, "name": "N", "role": "customer"},
    ],
    ids=[
        "bad-email",
        "bad-email-2",
        "short-password",
        "no-name",
        "no-role",
        "no-email",
        "unknown-role",
        "empty-name",
        "password-not-string",
    ],
)
async def test_register_invalid_body(api: Api, fields: dict[str, Any]) -> None:
    email = f"{unique()}@example.com"
    body = {k: (email if v == "EMAIL" else v) for k, v in fields.items()}
    r = await register(api, **body)
    assert_http_error(r, None)
    if "email" in fields and fields["email"] == "EMAIL" and isinstance(body["password"], str):
        # Nothing was created under that e-mail.
        assert_http_error(await login(api, email, body["password"]), 401)


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"just a string"', b"\xff\xfe"])
async def test_register_non_json_body(api: Api, content: bytes) -> None:
    r = await api.http.post(
        "/api/auth/register", content=content, headers={"Content-Type": "application/json"}
    )
    assert_http_error(r, None)


async def test_login(api: Api) -> None:
    email = f"{unique()}@example.com"
    user, _ = await api.register(email, PASSWORD, "Lou", "expert")
    r = await login(api, email, PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == user["id"]
    assert (body["user"]["email"], body["user"]["name"], body["user"]["role"]) == (
        email,
        "Lou",
        "expert",
    )
    me = await api.http.get("/api/me", headers=auth(body["token"]))
    assert me.status_code == 200 and me.json()["user"]["id"] == user["id"]

    assert_http_error(await login(api, email, PASSWORD + "x"), 401, "unauthenticated")
    assert_http_error(await login(api, email, ""), 401, "unauthenticated")
    assert_http_error(await login(api, f"{unique()}@example.com", PASSWORD), 401, "unauthenticated")
    r = await api.http.post("/api/auth/login", content=b"{nope")
    assert_http_error(r, None)


# -- bearer tokens -----------------------------------------------------------------------


async def test_me_requires_a_valid_token(node: Node, api: Api, data_dir: Path) -> None:
    user, token = await new_customer(api)
    # The signing key of the deployment (SQLite: <data-dir>/secret.key; PostgreSQL: a row).
    async with opened(data_dir) as db:
        secret = await db.shared_secret("token")
    now = int(time.time())

    def signed(key: bytes | str, exp: int) -> str:
        return jwt.encode({"sub": user["id"], "iat": now, "exp": exp}, key, algorithm="HS256")

    # Control: a token made here the way the server makes them is accepted, so the
    # refusals below are for the one thing each changes.
    r = await api.http.get("/api/me", headers=auth(signed(secret, now + 3600)))
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == user["id"]

    unsigned = jwt.encode({"sub": user["id"], "exp": now + 3600}, None, algorithm="none")
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": token},
        auth(signed(b"another secret of another server", now + 3600)),
        auth(signed(secret, now - 60)),
        auth(unsigned),
        auth(jwt.encode({"sub": "u-nobody", "exp": now + 3600}, secret, algorithm="HS256")),
        auth(jwt.encode({"sub": user["id"]}, secret, algorithm="HS256")),
    ):
        r = await api.http.get("/api/me", headers=headers)
        assert_http_error(r, 401, "unauthenticated")
    # Also on every other /api route.
    for path in ("/api/requests", "/api/offers", "/api/requests/x", "/api/sessions/x"):
        assert_http_error(await api.http.get(path), 401, "unauthenticated")
        r = await api.http.get(path, headers=auth(signed(secret, now - 60)))
        assert_http_error(r, 401, "unauthenticated")
    r = await api.http.put("/api/me/preferences", json={})
    assert_http_error(r, 401, "unauthenticated")


# -- preferences ---------------------------------------------------------------------------

PREFS = {
    "title": "Senior Python developer",
    "skills": ["python", "django", "asyncio"],
    "languages": ["en", "de"],
    "years_experience": 7,
    "rate_cents_per_15min": 4500,
    "bio": "Ten years of backends.",
}


async def me(api: Api, token: str) -> dict[str, Any]:
    r = await api.http.get("/api/me", headers=auth(token))
    assert r.status_code == 200, r.text
    user: dict[str, Any] = r.json()["user"]
    return user


async def test_expert_preferences_round_trip(api: Api) -> None:
    user, token = await api.register(f"{unique()}@example.com", PASSWORD, "Exp", "expert")
    r = await api.http.put("/api/me/preferences", json=PREFS, headers=auth(token))
    assert r.status_code == 200, r.text
    got = await me(api, token)
    assert {k: got[k] for k in PREFS} == PREFS
    assert got["verification_status"] == "pending"
    assert (got["id"], got["role"]) == (user["id"], "expert")

    # Replaced, not merged; verification_status is not the expert's to set.
    second = {**PREFS, "skills": ["go"], "languages": ["fr"], "rate_cents_per_15min": 0}
    r = await api.http.put(
        "/api/me/preferences",
        json={**second, "verification_status": "verified"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    got = await me(api, token)
    assert {k: got[k] for k in PREFS} == second
    assert got["verification_status"] == "pending"


async def test_customer_has_no_preferences(api: Api) -> None:
    _, token = await new_customer(api)
    before = await me(api, token)
    r = await api.http.put("/api/me/preferences", json=PREFS, headers=auth(token))
    assert_http_error(r, 403, "forbidden")
    after = await me(api, token)
    assert after == before
    assert "skills" not in after and "rate_cents_per_15min" not in after


@pytest.mark.parametrize(
    "change",
    [
        {"rate_cents_per_15min": -1},
        {"languages": None},
        {"languages": []},
        {"years_experience": -2},
        {"skills": "python"},
        {"title": None},
        {"rate_cents_per_15min": "4500"},
        {"skills": [""]},
    ],
    ids=[
        "negative-rate",
        "missing-languages",
        "empty-languages",
        "negative-years",
        "skills-not-list",
        "missing-title",
        "rate-as-string",
        "empty-skill",
    ],
)
async def test_invalid_preferences_change_nothing(api: Api, change: dict[str, Any]) -> None:
    _, token = await new_expert(api, skills=("python",), languages=("en",), rate=6000)
    before = await me(api, token)
    body = {**PREFS, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = await api.http.put("/api/me/preferences", json=body, headers=auth(token))
    assert_http_error(r, None)
    assert await me(api, token) == before


async def test_preferences_non_json_body(api: Api) -> None:
    _, token = await new_expert(api)
    before = await me(api, token)
    r = await api.http.put(
        "/api/me/preferences",
        content=b"{title: nope",
        headers={**auth(token), "Content-Type": "application/json"},
    )
    assert_http_error(r, None)
    assert await me(api, token) == before


async def test_unknown_api_route_and_method_answer_an_error_body(api: Api) -> None:
    _, token = await new_customer(api)
    for path in ("/api/nope", "/api/requests/x/y"):
        assert_http_error(await api.http.get(path, headers=auth(token)), 404, "not_found")
    for method, path in (
        ("GET", "/api/auth/register"),
        ("POST", "/api/me"),
        ("DELETE", "/api/requests/x"),
    ):
        r = await api.http.request(method, path, headers=auth(token))
        assert_http_error(r, 405)
        assert "allow" in r.headers


# -- operations ----------------------------------------------------------------------------


async def test_healthz(api: Api) -> None:
    r = await api.http.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_metrics_is_prometheus_text(node: Node, api: Api) -> None:
    _, token = await new_customer(api)
    async with await Client.connect(node.ws, token) as c:
        await c.call("ping")
        r = await api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "rt_connections" in text
    assert "rt_offers_sent_total" in text
    # It parses as Prometheus text, and the gauge counts the socket that was open.
    samples = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples["rt_connections"] == 1
    assert samples["rt_offers_sent_total"] == 0


async def test_openapi_lists_every_api_route(api: Api) -> None:
    r = await api.http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    paths = doc["paths"]
    routes = [
        route
        for route in [*api_module.routes, *portal_module.routes, *attachments_module.routes]
        if route.path.startswith("/api")
    ]
    assert len(routes) >= 35
    for route in routes:
        assert route.path in paths, route.path
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in paths[route.path], (route.path, method)


async def test_index_serves_the_browser_client_from_the_package(api: Api) -> None:
    r = await api.http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    r = await api.http.get("/static/conn.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]


# -- the CLI ---------------------------------------------------------------------------------


async def cli(*args: str) -> tuple[int, str]:
    """``python -m rtserver ...`` with cheap password hashing: (exit code, output)."""
    status, out, err = await rtserver_cli(*args, timeout=60)
    return status, out + err


async def test_cli_creates_a_manager(data_dir: Path) -> None:
    email = f"{unique('m')}@example.com"

    def create(email: str, role: str, name: str = "Mona") -> list[str]:
        return ["user", "create", "--email", email, "--password", PASSWORD, "--name", name,
                "--role", role, *storage_flags(data_dir)]  # fmt: skip

    code, out = await cli(*create(email, "manager"))
    assert code == 0, out
    code, out = await cli(*create(email, "manager", "Again"))
    assert code != 0, out
    code, out = await cli(*create(email.upper(), "customer", "Again"))
    assert code != 0, out
    # The role is one of the three.
    boss = f"{unique('b')}@example.com"
    code, out = await cli(*create(boss, "admin"))
    assert code != 0, out
    code, out = await cli(*create(f"{unique()}@example.com", ""))
    assert code != 0, out

    async with run_node(node_settings(data_dir)) as node:
        api = Api(node.http)
        try:
            r = await login(api, email, PASSWORD)
            assert r.status_code == 200, r.text
            user = r.json()["user"]
            assert (user["email"], user["name"], user["role"]) == (email, "Mona", "manager")
            got = await me(api, r.json()["token"])
            assert (got["id"], got["role"]) == (user["id"], "manager")
            # The refused second creation did not replace the first.
            assert_http_error(await login(api, email.upper(), "nope-nope"), 401)
            # Users refused by the CLI do not exist.
            assert_http_error(await login(api, boss, PASSWORD), 401, "unauthenticated")
            # A manager made over HTTP stays impossible on the same data.
            r = await register(api, email=boss, password=PASSWORD, name="B", role="manager")
            assert_http_error(r, 403, "forbidden")
        finally:
            await api.aclose()
