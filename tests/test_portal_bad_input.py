"""Bad input to the portal API (protocol section 4) gets a contract error and stores nothing.

Bodies that are not JSON answer 400 ``bad_frame``; missing, wrong-typed and
out-of-range fields, bad query parameters and bad ``Idempotency-Key`` headers
answer 422 ``invalid_field`` (with ``field`` where the server names it). After
every refused call what is stored is read back from the database and compared: no
ledger row, claim, review, payout, profile, phone or audit entry changed.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.rtclient import Api
from tests.portal import Ended, auth, ended_session, new_manager
from tests.servers import (
    Clients,
    Node,
    ShiftClock,
    new_customer,
    new_expert,
)
from tests.storage import query

PROFILE = {
    "billing": {
        "holder_name": "Erika Expert",
        "account_type": "iban",
        "iban": "DE89 3704 0044 0532 0130 00",
    },
    "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    "tax": {"form": "W-8BEN", "legal_name": "Erika Expert", "tax_id": "DE-123456"},
}
NOT_JSON: list[str | bytes] = ["nope", "{", '{"reason": "x"', "", b"\xff\xfe\x00", "{'a': 1}"]
NOT_AN_OBJECT = ["[]", "null", "5", '"text"', "true"]
# Digits that are not ASCII but that Python's ``\d`` and ``int`` accept (U+FF10 to U+FF19).
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


@dataclass
class World:
    api: Api
    data_dir: Path
    tokens: dict[str, str]
    users: dict[str, dict[str, Any]]
    sessions: list[Ended]

    def id(self, who: str) -> str:
        return str(self.users[who]["id"])

    async def call(
        self,
        method: str,
        path: str,
        who: str,
        body: Any = None,
        *,
        raw: str | bytes | None = None,
        key: str | None = None,
        **params: Any,
    ) -> httpx.Response:
        """One call as ``who``, with a JSON ``body`` or ``raw`` bytes as they are."""
        headers = auth(self.tokens[who], key)
        if raw is not None:
            headers["Content-Type"] = "application/json"
            return await self.api.http.request(
                method, path, headers=headers, content=raw, params=params or None
            )
        return await self.api.http.request(
            method, path, headers=headers, json=body, params=params or None
        )


async def make_world(node: Node, api: Api, clients: Clients, data_dir: Path, n: int) -> World:
    """``n`` ended, charged sessions (each with its own customer and expert), and a manager."""
    sessions = list(await asyncio.gather(*(ended_session(node, api, clients) for _ in range(n))))
    for s in sessions:
        assert s.summary["charge_cents"] > 0
    ouser, otoken = await new_customer(api, "Plain Customer")
    xuser, xtoken = await new_expert(api, "Plain Expert")
    mtoken = await new_manager(node, api, data_dir)
    manager = (await api.http.get("/api/me", headers=auth(mtoken))).json()["user"]
    tokens = {"customer": otoken, "expert": xtoken, "manager": mtoken}
    users = {"customer": ouser, "expert": xuser, "manager": manager}
    for i, s in enumerate(sessions):
        tokens[f"c{i}"], users[f"c{i}"] = s.customer_token, s.customer
        tokens[f"e{i}"], users[f"e{i}"] = s.expert_token, s.expert
    return World(api, data_dir, tokens, users, sessions)


@pytest.fixture
async def w(pnode: Node, papi: Api, clients: Clients, data_dir: Path) -> World:
    """Two ended sessions (customers c0, c1; experts e0, e1), plus a customer, an expert
    and a manager of no session."""
    return await make_world(pnode, papi, clients, data_dir, 2)


@pytest.fixture
async def w1(pnode: Node, papi: Api, clients: Clients, data_dir: Path) -> World:
    """As ``w``, with one session."""
    return await make_world(pnode, papi, clients, data_dir, 1)


STORED = {
    "ledger": "SELECT * FROM ledger ORDER BY id",
    "claims": "SELECT * FROM refund_claims ORDER BY id",
    "reviews": "SELECT * FROM reviews ORDER BY session_id",
    "payouts": "SELECT * FROM payouts ORDER BY id",
    "payout_profiles": "SELECT user_id, data FROM payout_profiles ORDER BY user_id",
    "idempotency_keys": "SELECT user_id, key, fingerprint FROM idempotency_keys ORDER BY key",
    "audit": "SELECT * FROM audit_log ORDER BY id",
    "accounts": "SELECT id, status, phone FROM users ORDER BY id",
    "verification": "SELECT user_id, verification_status FROM expert_profiles ORDER BY user_id",
}


def stored(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Everything the portal's routes write, read straight from the test's database."""
    return {name: query(data_dir, sql) for name, sql in STORED.items()}


def assert_error(r: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    what = (r.request.method, str(r.request.url), r.request.content[:80], r.status_code, r.text)
    assert r.status_code == status, what
    body = r.json()
    assert set(body) == {"error"}, what
    assert body["error"]["code"] == code, what
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], what
    if field is not None:
        assert body["error"].get("field") == field, what


def assert_invalid(r: httpx.Response, field: str | None = None) -> None:
    assert_error(r, 422, "invalid_field", field)


def assert_ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    body: dict[str, Any] = r.json()
    return body


def cursor(parts: Any) -> str:
    """A cursor in the server's own encoding (base64 of a JSON array) with these parts."""
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


async def open_claim(w: World, i: int, key: str | None = None) -> str:
    sid = w.sessions[i].session_id
    r = await w.call("POST", f"/api/sessions/{sid}/refund-claim", f"c{i}", {"reason": "x"}, key=key)
    return str(assert_ok(r, 201)["claim"]["id"])


# -- bodies -------------------------------------------------------------------------------------


def body_routes(w: World, cid: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every route of section 4 with a body: method, path, the caller allowed, a valid body."""
    sid = w.sessions[0].session_id
    return [
        ("POST", f"/api/sessions/{sid}/refund-claim", "c0", {"reason": "did not help"}),
        ("POST", f"/api/sessions/{sid}/review", "c0", {"stars": 3}),
        ("POST", f"/api/claims/{cid}/dispute", "e1", {"summary": "I fixed it"}),
        ("POST", f"/api/claims/{cid}/decision", "manager", {"outcome": "deny"}),
        ("PUT", "/api/me/payout-profile", "expert", PROFILE),
        ("PUT", "/api/me/phone", "customer", {"phone": "+14155550100"}),
        ("PUT", f"/api/experts/{w.id('expert')}/verification", "manager", {"status": "verified"}),
        ("POST", f"/api/users/{w.id('customer')}/suspend", "manager", {"reason": "spam"}),
        ("POST", f"/api/users/{w.id('customer')}/restore", "manager", {"reason": "appeal"}),
        ("POST", "/api/payouts/run", "manager", {"month": "2020-01"}),
    ]


async def test_a_body_that_is_not_json_or_not_an_object_is_refused(w: World) -> None:
    cid = await open_claim(w, 1)
    before = stored(w.data_dir)
    for method, path, who, _ in body_routes(w, cid):
        for raw in NOT_JSON:
            r = await w.call(method, path, who, raw=raw, key="k-bad")
            assert_error(r, 400, "bad_frame")
        for raw in NOT_AN_OBJECT:
            assert_invalid(await w.call(method, path, who, raw=raw, key="k-bad"))
    assert stored(w.data_dir) == before
    # Control: each route takes its valid body (suspend before restore, in this order).
    for method, path, who, good in body_routes(w, cid):
        r = await w.call(method, path, who, good)
        assert r.status_code in (200, 201), (path, r.text)


async def test_missing_wrong_typed_and_out_of_range_fields_are_refused(w: World) -> None:
    sid = w.sessions[0].session_id
    cid = await open_claim(w, 1)
    eid = w.id("expert")
    long = "x" * 2001
    # (method, path, caller, bad bodies, field named by the server or None)
    cases: list[tuple[str, str, str, list[Any], str | None]] = [
        # refund-claim: reason 1-2000 characters, not blank.
        (
            "POST",
            f"/api/sessions/{sid}/refund-claim",
            "c0",
            [
                {},
                {"reason": None},
                {"reason": 5},
                {"reason": ["x"]},
                {"reason": ""},
                {"reason": long},
            ],
            None,
        ),
        ("POST", f"/api/sessions/{sid}/refund-claim", "c0", [{"reason": "   "}], "reason"),
        # review: stars 1-5 (an integer), comment up to 2000.
        (
            "POST",
            f"/api/sessions/{sid}/review",
            "c0",
            [
                {},
                {"stars": 0},
                {"stars": 6},
                {"stars": -1},
                {"stars": "5"},
                {"stars": 4.5},
                {"stars": 4.0},
                {"stars": True},
                {"stars": None},
                {"stars": 5, "comment": long},
                {"stars": 5, "comment": None},
                {"stars": 5, "comment": 7},
            ],
            None,
        ),
        # dispute: summary 1-4000, not blank.
        (
            "POST",
            f"/api/claims/{cid}/dispute",
            "e1",
            [{}, {"summary": ""}, {"summary": "x" * 4001}, {"summary": 1}, {"summary": None}],
            None,
        ),
        ("POST", f"/api/claims/{cid}/dispute", "e1", [{"summary": " \n\t "}], "summary"),
        # decision: a known outcome; note up to 2000.
        (
            "POST",
            f"/api/claims/{cid}/decision",
            "manager",
            [
                {},
                {"outcome": "maybe"},
                {"outcome": "REFUND"},
                {"outcome": "refunded"},
                {"outcome": ""},
                {"outcome": None},
                {"outcome": 1},
                {"outcome": ["refund"]},
                {"outcome": "refund", "note": long},
                {"outcome": "refund", "note": None},
            ],
            None,
        ),
        # verification: a known status; note up to 2000.
        (
            "PUT",
            f"/api/experts/{eid}/verification",
            "manager",
            [
                {},
                {"status": "approved"},
                {"status": "VERIFIED"},
                {"status": None},
                {"status": "verified", "note": long},
            ],
            None,
        ),
        # suspend: a reason 1-2000; restore: an optional reason up to 2000.
        (
            "POST",
            f"/api/users/{w.id('customer')}/suspend",
            "manager",
            [{}, {"reason": ""}, {"reason": long}, {"reason": None}, {"reason": 3}],
            None,
        ),
        (
            "POST",
            f"/api/users/{w.id('customer')}/restore",
            "manager",
            [{"reason": long}, {"reason": None}, {"reason": 3}],
            None,
        ),
        # payouts/run: month YYYY-MM.
        (
            "POST",
            "/api/payouts/run",
            "manager",
            [{}, {"month": None}, {"month": 202601}, {"month": "26-01"}, {"month": "2026-1"}],
            None,
        ),
        (
            "POST",
            "/api/payouts/run",
            "manager",
            [
                {"month": "2026-13"},
                {"month": "2026-00"},
                {"month": "1969-12"},
                {"month": "2999-01"},
            ],
            "month",
        ),
        # phone: a string or null.
        ("PUT", "/api/me/phone", "customer", [{}, {"phone": 14155550100}, {"phone": ["+1"]}], None),
    ]
    before = stored(w.data_dir)
    for method, path, who, bodies, field in cases:
        for body in bodies:
            assert_invalid(await w.call(method, path, who, body, key="k-bad"), field)
    assert stored(w.data_dir) == before
    r = await w.call("GET", f"/api/sessions/{sid}", "c0")
    assert assert_ok(r)["session"]["claim"] is None and assert_ok(r)["session"]["review"] is None
    r = await w.call("GET", f"/api/claims/{cid}", "e1")
    assert assert_ok(r)["claim"]["status"] == "open"


async def test_a_month_not_yet_ended_cannot_be_paid_out(w1: World, clock: ShiftClock) -> None:
    w = w1
    month = clock.now().strftime("%Y-%m")
    r = await w.call("PUT", "/api/me/payout-profile", "e0", PROFILE)
    assert assert_ok(r)["profile"]["complete"] is True
    before = stored(w.data_dir)
    r = await w.call("POST", "/api/payouts/run", "manager", {"month": month}, key="k-now")
    assert_invalid(r, "month")
    assert stored(w.data_dir) == before
    # Once the month is over, the same call pays (and the key was not spent on the refusal).
    clock.shift(days=40)
    r = await w.call("POST", "/api/payouts/run", "manager", {"month": month}, key="k-now")
    assert [p["expert"]["id"] for p in assert_ok(r)["payouts"]] == [w.id("e0")]


# -- Idempotency-Key ----------------------------------------------------------------------------


async def test_an_idempotency_key_of_256_characters_is_refused(w: World) -> None:
    sid = w.sessions[0].session_id
    cid = await open_claim(w, 1)
    calls = [
        ("POST", f"/api/sessions/{sid}/refund-claim", "c0", {"reason": "no help"}),
        ("POST", f"/api/sessions/{sid}/review", "c0", {"stars": 2}),
        ("POST", f"/api/claims/{cid}/dispute", "e1", {"summary": "it was fine"}),
        ("POST", f"/api/claims/{cid}/decision", "manager", {"outcome": "refund"}),
        ("POST", "/api/payouts/run", "manager", {"month": "2020-01"}),
    ]
    before = stored(w.data_dir)
    for method, path, who, body in calls:
        for key in ("k" * 256, "k" * 1000, ""):
            r = await w.call(method, path, who, body, key=key)
            assert_invalid(r, "Idempotency-Key")
    assert stored(w.data_dir) == before
    r = await w.call("GET", f"/api/claims/{cid}", "manager")
    assert assert_ok(r)["claim"]["status"] == "open"
    # 255 characters is a key (one per call: keys are per user, whatever the route).
    for i, (method, path, who, body) in enumerate(calls):
        key = str(i) + "k" * 254
        r = await w.call(method, path, who, body, key=key)
        assert r.status_code in (200, 201), (path, r.text)
        again = await w.call(method, path, who, body, key=key)
        assert again.status_code == r.status_code and again.json() == r.json()
        assert again.headers.get("idempotent-replayed") == "true"


async def test_a_key_reused_with_another_body_is_refused_and_does_nothing(w: World) -> None:
    s0, s1 = (s.session_id for s in w.sessions)
    # The customer of session 0 claims with key K.
    r = await w.call("POST", f"/api/sessions/{s0}/refund-claim", "c0", {"reason": "a"}, key="K")
    first = assert_ok(r, 201)
    c0 = first["claim"]["id"]
    before = stored(w.data_dir)
    # Another reason, another route: the key is his, and spent.
    r = await w.call("POST", f"/api/sessions/{s0}/refund-claim", "c0", {"reason": "b"}, key="K")
    assert_invalid(r, "Idempotency-Key")
    r = await w.call("POST", f"/api/sessions/{s0}/review", "c0", {"stars": 1}, key="K")
    assert_invalid(r, "Idempotency-Key")
    assert stored(w.data_dir) == before
    # The same body again is the kept answer.
    r = await w.call("POST", f"/api/sessions/{s0}/refund-claim", "c0", {"reason": "a"}, key="K")
    assert assert_ok(r, 201) == first and r.headers["idempotent-replayed"] == "true"
    # Keys are per user: the customer of session 1 may use K for his own claim.
    c1 = await open_claim(w, 1, key="K")

    # The expert of session 0 disputes with key D; another summary under D does nothing.
    r = await w.call("POST", f"/api/claims/{c0}/dispute", "e0", {"summary": "one"}, key="D")
    assert assert_ok(r)["claim"]["dispute_summary"] == "one"
    before = stored(w.data_dir)
    r = await w.call("POST", f"/api/claims/{c0}/dispute", "e0", {"summary": "two"}, key="D")
    assert_invalid(r, "Idempotency-Key")
    assert stored(w.data_dir) == before

    # The manager denies claim 0 with key M.
    r = await w.call("POST", f"/api/claims/{c0}/decision", "manager", {"outcome": "deny"}, key="M")
    decided = assert_ok(r)
    assert decided["claim"]["status"] == "denied" and decided["ledger"] == []
    before = stored(w.data_dir)
    # M with a refund of the same claim: refused, no money moves, the claim stays denied.
    for body in ({"outcome": "refund"}, {"outcome": "deny", "note": "changed my mind"}):
        r = await w.call("POST", f"/api/claims/{c0}/decision", "manager", body, key="M")
        assert_invalid(r, "Idempotency-Key")
    # M on the other claim: refused, and that claim is not decided.
    r = await w.call("POST", f"/api/claims/{c1}/decision", "manager", {"outcome": "deny"}, key="M")
    assert_invalid(r, "Idempotency-Key")
    assert stored(w.data_dir) == before
    r = await w.call("GET", f"/api/claims/{c0}", "c0")
    assert assert_ok(r)["claim"]["status"] == "denied"
    r = await w.call("GET", f"/api/claims/{c1}", "c1")
    assert assert_ok(r)["claim"]["status"] == "open"
    # The kept answer is still the one given.
    r = await w.call("POST", f"/api/claims/{c0}/decision", "manager", {"outcome": "deny"}, key="M")
    assert assert_ok(r) == decided and r.headers["idempotent-replayed"] == "true"

    # The customer of session 1 reviews with key R; other stars under R do nothing.
    r = await w.call("POST", f"/api/sessions/{s1}/review", "c1", {"stars": 5}, key="R")
    assert assert_ok(r, 201)["review"]["stars"] == 5
    before = stored(w.data_dir)
    r = await w.call("POST", f"/api/sessions/{s1}/review", "c1", {"stars": 1}, key="R")
    assert_invalid(r, "Idempotency-Key")
    assert stored(w.data_dir) == before

    # A payout run with key P; another month under P does nothing.
    r = await w.call("POST", "/api/payouts/run", "manager", {"month": "2020-01"}, key="P")
    assert_ok(r)
    before = stored(w.data_dir)
    r = await w.call("POST", "/api/payouts/run", "manager", {"month": "2020-02"}, key="P")
    assert_invalid(r, "Idempotency-Key")
    assert stored(w.data_dir) == before


# -- query parameters ---------------------------------------------------------------------------


def paginated(w: World) -> list[tuple[str, str]]:
    """Every paginated list of section 4, with a caller who may read it."""
    return [
        ("/api/sessions", "c0"),
        ("/api/sessions", "manager"),
        ("/api/claims", "c0"),
        ("/api/claims", "manager"),
        ("/api/me/transactions", "e0"),
        (f"/api/experts/{w.id('e0')}/reviews", "customer"),
        ("/api/users", "manager"),
        ("/api/audit", "manager"),
    ]


async def test_bad_query_parameters_are_refused(w1: World) -> None:
    w = w1
    sid = w.sessions[0].session_id
    before = stored(w.data_dir)
    for path, who in paginated(w):
        for bad in ("garbage", "%%%", "W10", cursor([]), cursor({"a": 1}), cursor([1.5, "x"])):
            assert_invalid(await w.call("GET", path, who, cursor=bad), "cursor")
        for bad in ("0", "101", "-1", "x", "1.5", "", "1e2"):
            assert_invalid(await w.call("GET", path, who, limit=bad), "limit")
        for good in ("1", "100"):
            assert_ok(await w.call("GET", path, who, limit=good))
    messages = f"/api/sessions/{sid}/messages"
    for bad in ("0", "501", "x", "-3"):
        assert_invalid(await w.call("GET", messages, "c0", limit=bad), "limit")
    assert_ok(await w.call("GET", messages, "c0", limit="500"))
    for bad in ("-1", "x", "1.0", ""):
        assert_invalid(await w.call("GET", messages, "c0", after_seq=bad), "after_seq")
    for who in ("c0", "manager"):
        for bad in ("bogus", "ended,bogus", "ENDED", "open"):
            assert_invalid(await w.call("GET", "/api/sessions", who, status=bad), "status")
        for bad in ("bogus", "open,bogus", "refund", "OPEN", "ended"):
            assert_invalid(await w.call("GET", "/api/claims", who, status=bad), "status")
    for params in ({"role": "admin"}, {"role": ""}, {"status": "banned"}, {"status": "Active"}):
        assert_invalid(await w.call("GET", "/api/users", "manager", **params), next(iter(params)))
    for bad in ("26", "20x6", "202", "20266", "", "-202"):
        assert_invalid(await w.call("GET", "/api/me/statements", "c0", year=bad), "year")
    for bad in ("xml", "CSV", ""):
        assert_invalid(await w.call("GET", "/api/me/transactions", "c0", format=bad), "format")
    for bad in ("2026-13", "26-01", "2026-1", "x", "", "2026-00", "1969-12"):
        assert_invalid(await w.call("GET", "/api/payouts", "manager", month=bad), "month")
    assert stored(w.data_dir) == before


# -- the payout profile and the phone -----------------------------------------------------------


async def test_an_invalid_payout_profile_or_phone_is_refused_and_keeps_the_stored_one(
    pnode: Node, papi: Api, data_dir: Path
) -> None:
    _, etoken = await new_expert(papi, "Profiled Expert")
    _, ctoken = await new_customer(papi, "Phoned Customer")
    r = await papi.http.put("/api/me/payout-profile", json=PROFILE, headers=auth(etoken))
    profile = assert_ok(r)["profile"]
    assert profile["complete"] is True
    iban = PROFILE["billing"]
    us = {"holder_name": "Sam", "account_type": "us", "account_number": "123456789"}
    address = PROFILE["address"]
    w8 = PROFILE["tax"]
    w9 = {"form": "W-9", "legal_name": "Sam", "tax_id": "123-45-6789"}
    bad: list[tuple[dict[str, Any], str | None]] = [
        ({}, "billing"),
        ({"billing": None, "address": None, "tax": None}, "billing"),
        # IBANs: a wrong check digit, a wrong length, not an IBAN country, empty, missing.
        ({"billing": {**iban, "iban": "DE89 3704 0044 0532 0130 01"}}, "billing.iban"),
        ({"billing": {**iban, "iban": "DE89 3704 0044 0532 0130 0"}}, "billing.iban"),
        ({"billing": {**iban, "iban": "XX89 3704 0044 0532 0130 00"}}, "billing.iban"),
        ({"billing": {**iban, "iban": "not an iban"}}, "billing.iban"),
        ({"billing": {**iban, "iban": ""}}, "billing.iban"),
        ({"billing": {"holder_name": "Sam", "account_type": "iban"}}, "billing.iban"),
        ({"billing": {**iban, "holder_name": "  "}}, "billing.holder_name"),
        # US accounts: a routing number with a wrong check digit or length, a bad account.
        ({"billing": {**us, "routing_number": "123456789"}}, "billing.routing_number"),
        ({"billing": {**us, "routing_number": "02100002"}}, "billing.routing_number"),
        ({"billing": {**us, "routing_number": "0210000211"}}, "billing.routing_number"),
        ({"billing": {**us}}, "billing.routing_number"),
        (
            {"billing": {**us, "routing_number": "021000021", "account_number": "12ab"}},
            "billing.account_number",
        ),
        (
            {"billing": {**us, "routing_number": "021000021", "account_number": "123"}},
            "billing.account_number",
        ),
        # Countries: ISO 3166-1 alpha-2 only.
        ({"address": {**address, "country": "XX"}}, "address.country"),
        ({"address": {**address, "country": "DEU"}}, "address.country"),
        ({"address": {**address, "country": ""}}, "address.country"),
        ({"address": {**address, "city": " "}}, "address.city"),
        # Tax ids: a W-9 needs an SSN, ITIN or EIN; a W-8BEN a plain id.
        ({"tax": {**w9, "tax_id": "000-00-0000"}}, "tax.tax_id"),
        ({"tax": {**w9, "tax_id": "078-05-1120"}}, "tax.tax_id"),
        ({"tax": {**w9, "tax_id": "12345"}}, "tax.tax_id"),
        ({"tax": {**w9, "tax_id": ""}}, "tax.tax_id"),
        ({"tax": {**w8, "tax_id": "!"}}, "tax.tax_id"),
        ({"tax": {**w8, "legal_name": " "}}, "tax.legal_name"),
        # A valid part next to an invalid one: nothing is replaced.
        (
            {
                "billing": {**us, "routing_number": "021000021"},
                "address": {**address, "country": "ZZ"},
            },
            "address.country",
        ),
        # Wrong types and unknown choices (the schema's own message, no field).
        ({"billing": {**iban, "account_type": "swift"}}, None),
        ({"billing": "DE89370400440532013000"}, None),
        ({"address": {"line1": "x"}}, None),
        ({"tax": {**w9, "form": "W-8"}}, None),
        ({"tax": {**w9, "tax_id": 123456789}}, None),
    ]
    before = stored(data_dir)
    for body, field in bad:
        r = await papi.http.put("/api/me/payout-profile", json=body, headers=auth(etoken))
        assert_invalid(r, field)
    for raw in NOT_JSON:
        r = await papi.http.put("/api/me/payout-profile", content=raw, headers=auth(etoken))
        assert_error(r, 400, "bad_frame")
    assert stored(data_dir) == before
    r = await papi.http.get("/api/me/payout-profile", headers=auth(etoken))
    assert assert_ok(r)["profile"] == profile

    r = await papi.http.put("/api/me/phone", json={"phone": "+14155550100"}, headers=auth(ctoken))
    assert assert_ok(r)["user"]["phone"] == "+14155550100"
    before = stored(data_dir)
    for phone in (
        "4155550100",
        "004155550100",
        "+1415555010",
        "+1 415 555 01000",
        "+999 123 456",
        "+",
        "+1 415 555 01x0",
        "+1 000 000 0000",
        "+44 20",
        "+" + "1" * 39,
        "+14155550100 ext. 12345678901234567890",
    ):
        r = await papi.http.put("/api/me/phone", json={"phone": phone}, headers=auth(ctoken))
        assert_invalid(r, "phone" if len(phone) <= 32 else None)
    for body in ({}, {"phone": 14155550100}, {"number": "+14155550100"}):
        assert_invalid(await papi.http.put("/api/me/phone", json=body, headers=auth(ctoken)))
    assert stored(data_dir) == before
    me = assert_ok(await papi.http.get("/api/me", headers=auth(ctoken)))["user"]
    assert me["phone"] == "+14155550100"


# -- server bugs: out-of-range and non-ASCII numbers ----------------------------------------------


async def test_a_cursor_with_a_number_out_of_range_is_refused_not_a_crash(w1: World) -> None:
    """A well-formed cursor whose number does not fit SQLite's 64 bits is still not a cursor of
    the list: 422 ``invalid_field`` (field ``cursor``), never 500 ``internal``."""
    w = w1
    before = stored(w.data_dir)
    for path, who in paginated(w):
        for parts in ([10**30, "x"], [10**30], [-(10**30), "x"], [-(10**30)]):
            r = await w.call("GET", path, who, cursor=cursor(parts))
            assert_invalid(r, "cursor")
    assert stored(w.data_dir) == before


async def test_an_after_seq_out_of_range_is_refused_not_a_crash(w1: World) -> None:
    """GET /api/sessions/{id}/messages?after_seq=10**30: 422 ``after_seq``, not 500."""
    sid = w1.sessions[0].session_id
    r = await w1.call("GET", f"/api/sessions/{sid}/messages", "c0", after_seq=str(10**30))
    assert_invalid(r, "after_seq")


async def test_a_year_in_other_digits_is_refused_not_a_crash(pnode: Node, papi: Api) -> None:
    """``?year=²⁰²⁶`` passes ``str.isdigit`` but not ``int``: 422 ``year``, not 500."""
    _, token = await new_customer(papi)
    for year in ("²⁰²⁶", "①②③④"):
        r = await papi.http.get("/api/me/statements", params={"year": year}, headers=auth(token))
        assert_invalid(r, "year")


async def test_a_payout_month_in_other_digits_is_refused_and_pays_nobody_twice(
    w1: World, pnode: Node, papi: Api, clients: Clients, clock: ShiftClock
) -> None:
    """A month written in fullwidth digits (U+FF10 to U+FF19) matches the body's
    ``\\d{4}-\\d{2}`` and ``int`` reads it, but it is not YYYY-MM: it must be refused (422
    ``month``). Taken as a period of its own, it escapes the once-per-expert-and-period rule
    and pays the same month a second time."""
    w = w1
    expert = (w.users["e0"], w.tokens["e0"])
    r = await w.call("PUT", "/api/me/payout-profile", "e0", PROFILE)
    assert assert_ok(r)["profile"]["complete"] is True
    month = clock.now().strftime("%Y-%m")
    clock.shift(days=40)
    r = await w.call("POST", "/api/payouts/run", "manager", {"month": month})
    assert len(assert_ok(r)["payouts"]) == 1
    # He earns again in the next month; the month already paid must not be paid again.
    await ended_session(pnode, papi, clients, expert=expert)
    before = stored(w.data_dir)
    r = await w.call("POST", "/api/payouts/run", "manager", {"month": month.translate(FULLWIDTH)})
    assert_invalid(r, "month")
    assert stored(w.data_dir) == before
    r = await w.call("GET", "/api/payouts", "manager", month=month.translate(FULLWIDTH))
    assert_invalid(r, "month")
