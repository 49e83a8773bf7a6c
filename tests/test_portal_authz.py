"""Who may do what on the portal API (protocol section 4), on a real node and its real database.

Every route is called by the session's customer, its expert, another expert,
another customer, a manager and an anonymous caller. A refused call answers
the contract's status and code (401 ``unauthenticated``, 403 ``forbidden``,
404 ``not_found``) and changes nothing stored: no ledger row, no claim, no
review, no payout, no audit entry. The public routes answer anonymous callers.
A suspended account is locked out of HTTP, login and the socket until a
manager restores it, and every manager action is in the audit log.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from clients.rtclient import Api, Client
from tests.portal import Ended, auth, ended_session, new_manager
from tests.servers import (
    Clients,
    Node,
    ShiftClock,
    new_customer,
    new_expert,
)
from tests.storage import query

CALLERS = ("customer", "expert", "other_expert", "other_customer", "manager")
PARTIES = ("customer", "expert")
STRANGERS = ("other_expert", "other_customer")
NOT_MANAGERS = ("customer", "expert", "other_expert", "other_customer")

# A payout profile that is complete (a German expert: IBAN, address, W-8BEN).
PROFILE = {
    "billing": {
        "holder_name": "Erika Expert",
        "account_type": "iban",
        "iban": "DE89 3704 0044 0532 0130 00",
    },
    "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    "tax": {"form": "W-8BEN", "legal_name": "Erika Expert", "tax_id": "DE-123456"},
}


# -- the world: one ended, charged session and everybody around it --------------------------


@dataclass
class World:
    node: Node
    api: Api
    data_dir: Path
    session: Ended
    tokens: dict[str, str]
    users: dict[str, dict[str, Any]]

    @property
    def sid(self) -> str:
        return self.session.session_id

    def id(self, who: str) -> str:
        return str(self.users[who]["id"])

    async def call(
        self,
        method: str,
        path: str,
        who: str | None,
        body: Any = None,
        key: str | None = None,
        **params: Any,
    ) -> httpx.Response:
        """One call as ``who`` (None: anonymous, no Authorization header)."""
        headers = auth(self.tokens[who], key) if who else {}
        return await self.api.http.request(
            method, path, headers=headers, json=body, params=params or None
        )


@pytest.fixture
async def w(pnode: Node, papi: Api, clients: Clients, data_dir: Path) -> World:
    """The world of a test: an ended, charged session, another customer and expert, a manager."""
    s = await ended_session(pnode, papi, clients)
    assert s.summary["charge_cents"] > 0
    ouser, otoken = await new_customer(papi, "Other Customer")
    xuser, xtoken = await new_expert(papi, "Other Expert")
    mtoken = await new_manager(pnode, papi, data_dir)
    r = await papi.http.get("/api/me", headers=auth(mtoken))
    assert r.status_code == 200, r.text
    tokens = {
        "customer": s.customer_token,
        "expert": s.expert_token,
        "other_expert": xtoken,
        "other_customer": otoken,
        "manager": mtoken,
    }
    users = {
        "customer": s.customer,
        "expert": s.expert,
        "other_expert": xuser,
        "other_customer": ouser,
        "manager": r.json()["user"],
    }
    return World(pnode, papi, data_dir, s, tokens, users)


# -- what is stored, read straight from the database ------------------------------------------

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
    """Everything the portal's routes write: money, claims, reviews, payouts, accounts, audit."""
    return {name: query(data_dir, sql) for name, sql in STORED.items()}


def assert_refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, (r.request.url, body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def assert_ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    body: dict[str, Any] = r.json()
    return body


async def wait_closed(c: Client, timeout: float = 15) -> int | None:
    """The close code the server closed ``c`` with (None if it stays open ``timeout``)."""
    for _ in range(int(timeout / 0.05)):
        if c.close_code is not None:
            break
        await asyncio.sleep(0.05)
    return c.close_code


# -- session history, transcripts, refund claims, reviews, disputes, decisions ----------------


async def test_history_claims_reviews_disputes_and_decisions_by_caller(w: World) -> None:
    sid = w.sid
    before = stored(w.data_dir)

    # GET /api/sessions: everybody's own; managers every session, ?user_id narrows.
    for who in PARTIES:
        body = assert_ok(await w.call("GET", "/api/sessions", who))
        assert [s["id"] for s in body["sessions"]] == [sid]
    for who in STRANGERS:
        assert assert_ok(await w.call("GET", "/api/sessions", who))["sessions"] == []
        # ?user_id= is the managers' filter: nobody else reads another's history with it.
        r = await w.call("GET", "/api/sessions", who, user_id=w.id("customer"))
        assert assert_ok(r)["sessions"] == []
    body = assert_ok(await w.call("GET", "/api/sessions", "manager"))
    assert sid in [s["id"] for s in body["sessions"]]
    r = await w.call("GET", "/api/sessions", "manager", user_id=w.id("customer"))
    assert [s["id"] for s in assert_ok(r)["sessions"]] == [sid]
    r = await w.call("GET", "/api/sessions", "manager", user_id=w.id("other_customer"))
    assert assert_ok(r)["sessions"] == []
    assert_refused(await w.call("GET", "/api/sessions", None), 401, "unauthenticated")

    # GET /api/sessions/{id} and its transcript: participants and managers; others 404.
    for path in (f"/api/sessions/{sid}", f"/api/sessions/{sid}/messages"):
        for who in (*PARTIES, "manager"):
            assert_ok(await w.call("GET", path, who))
        for who in STRANGERS:
            assert_refused(await w.call("GET", path, who), 404, "not_found")
        assert_refused(await w.call("GET", path, None), 401, "unauthenticated")
    detail = assert_ok(await w.call("GET", f"/api/sessions/{sid}", "manager"))["session"]
    assert detail["id"] == sid and len(detail["ledger"]) == 3
    messages = assert_ok(await w.call("GET", f"/api/sessions/{sid}/messages", "expert"))
    assert [m["seq"] for m in messages["messages"]] == [1, 2]
    # A session that does not exist looks the same as another's.
    for who in CALLERS:
        assert_refused(await w.call("GET", "/api/sessions/s-nope", who), 404, "not_found")
        r = await w.call("GET", "/api/sessions/s-nope/messages", who)
        assert_refused(r, 404, "not_found")

    # POST refund-claim and review: the session's customer only.
    claim_path = f"/api/sessions/{sid}/refund-claim"
    review_path = f"/api/sessions/{sid}/review"
    for path, body_ in ((claim_path, {"reason": "no help"}), (review_path, {"stars": 1})):
        assert_refused(await w.call("POST", path, "expert", body_, key="k1"), 403, "forbidden")
        for who in STRANGERS:
            assert_refused(await w.call("POST", path, who, body_, key="k1"), 404, "not_found")
        assert_refused(await w.call("POST", path, None, body_), 401, "unauthenticated")
    assert stored(w.data_dir) == before

    claim = assert_ok(await w.call("POST", claim_path, "customer", {"reason": "no help"}), 201)
    cid = claim["claim"]["id"]
    assert claim["claim"]["status"] == "open"
    review = assert_ok(await w.call("POST", review_path, "customer", {"stars": 2}), 201)
    assert review["review"]["stars"] == 2

    # GET /api/claims: each his own, managers the queue.
    for who in (*PARTIES, "manager"):
        body = assert_ok(await w.call("GET", "/api/claims", who))
        assert [c["id"] for c in body["claims"]] == [cid]
    for who in STRANGERS:
        assert assert_ok(await w.call("GET", "/api/claims", who))["claims"] == []
        r = await w.call("GET", "/api/claims", who, status="open,disputed,refunded")
        assert assert_ok(r)["claims"] == []
    assert_refused(await w.call("GET", "/api/claims", None), 401, "unauthenticated")

    # GET /api/claims/{id}: its customer and expert, managers.
    for who in (*PARTIES, "manager"):
        assert assert_ok(await w.call("GET", f"/api/claims/{cid}", who))["claim"]["id"] == cid
    for who in STRANGERS:
        assert_refused(await w.call("GET", f"/api/claims/{cid}", who), 404, "not_found")
    assert_refused(await w.call("GET", f"/api/claims/{cid}", None), 401, "unauthenticated")
    for who in CALLERS:
        assert_refused(await w.call("GET", "/api/claims/c-nope", who), 404, "not_found")

    # POST dispute: the session's expert only. Managers see the claim, so they are refused.
    before = stored(w.data_dir)
    dispute_path = f"/api/claims/{cid}/dispute"
    summary = {"summary": "I fixed it"}
    for who in ("customer", "manager"):
        assert_refused(await w.call("POST", dispute_path, who, summary, key="k2"), 403, "forbidden")
    for who in STRANGERS:
        assert_refused(await w.call("POST", dispute_path, who, summary, key="k2"), 404, "not_found")
    assert_refused(await w.call("POST", dispute_path, None, summary), 401, "unauthenticated")
    assert stored(w.data_dir) == before
    r = await w.call("GET", f"/api/claims/{cid}", "customer")
    assert assert_ok(r)["claim"]["status"] == "open"
    body = assert_ok(await w.call("POST", dispute_path, "expert", summary, key="k2"))
    assert body["claim"]["status"] == "disputed"

    # POST decision: managers only; nobody else moves money.
    before = stored(w.data_dir)
    decision_path = f"/api/claims/{cid}/decision"
    for outcome in ("refund", "no_fault", "deny"):
        for who in NOT_MANAGERS:
            r = await w.call("POST", decision_path, who, {"outcome": outcome}, key="k3")
            assert_refused(r, 403, "forbidden")
        r = await w.call("POST", decision_path, None, {"outcome": outcome})
        assert_refused(r, 401, "unauthenticated")
    assert stored(w.data_dir) == before
    r = await w.call("GET", f"/api/claims/{cid}", "manager")
    assert assert_ok(r)["claim"]["status"] == "disputed"
    body = assert_ok(await w.call("POST", decision_path, "manager", {"outcome": "refund"}))
    assert body["claim"]["status"] == "refunded"
    after = stored(w.data_dir)
    assert len(after["ledger"]) == len(before["ledger"]) + 3
    audit = assert_ok(await w.call("GET", "/api/audit", "manager"))["entries"]
    assert [(e["action"], e["target_type"], e["target_id"]) for e in audit] == [
        ("claim.decide", "claim", cid)
    ]
    assert audit[0]["manager"]["id"] == w.id("manager")
    assert audit[0]["details"]["outcome"] == "refund"


async def test_a_manager_is_refused_the_customers_steps_not_told_the_session_is_missing(
    w: World,
) -> None:
    """A manager can read the session (GET 200), so claiming or rating it is the wrong role:
    403 ``forbidden`` (rule 11), as the expert gets, not 404 ``not_found``."""
    before = stored(w.data_dir)
    assert_ok(await w.call("GET", f"/api/sessions/{w.sid}", "manager"))
    r = await w.call("POST", f"/api/sessions/{w.sid}/refund-claim", "manager", {"reason": "x"})
    assert_refused(r, 403, "forbidden")
    r = await w.call("POST", f"/api/sessions/{w.sid}/review", "manager", {"stars": 5})
    assert_refused(r, 403, "forbidden")
    assert stored(w.data_dir) == before


# -- money: statements, transactions, payout profiles, payouts ---------------------------------


async def test_money_routes_by_caller(w: World, clock: ShiftClock) -> None:
    charge = w.session.summary["charge_cents"]
    earning = w.session.summary["expert_earnings_cents"]
    before = stored(w.data_dir)

    # Statements and the transaction record: every user his own account.
    balances = {"customer": -charge, "expert": earning, "other_expert": 0, "other_customer": 0}
    for who, balance in balances.items():
        st = assert_ok(await w.call("GET", "/api/me/statements", who))
        assert st["balance_cents"] == balance
        assert len(st["months"]) == (1 if balance else 0)
        tx = assert_ok(await w.call("GET", "/api/me/transactions", who))["transactions"]
        assert len(tx) == (1 if balance else 0)
        assert all(t["session_id"] == w.sid for t in tx)
        r = await w.call("GET", "/api/me/transactions", who, format="csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert len(r.text.strip().splitlines()) == 1 + len(tx)
    # The protocol says "any user", but a manager has no account of his own: the server
    # answers 403 (see rtserver.portal.money._account).
    assert_refused(await w.call("GET", "/api/me/statements", "manager"), 403, "forbidden")
    assert_refused(await w.call("GET", "/api/me/transactions", "manager"), 403, "forbidden")
    for params in ({}, {"format": "csv"}):
        r = await w.call("GET", "/api/me/transactions", None, **params)
        assert_refused(r, 401, "unauthenticated")
    assert_refused(await w.call("GET", "/api/me/statements", None), 401, "unauthenticated")

    # The payout profile and payouts: experts only, each his own.
    for who in ("customer", "other_customer", "manager"):
        assert_refused(await w.call("GET", "/api/me/payout-profile", who), 403, "forbidden")
        r = await w.call("PUT", "/api/me/payout-profile", who, PROFILE)
        assert_refused(r, 403, "forbidden")
        assert_refused(await w.call("GET", "/api/me/payouts", who), 403, "forbidden")
    for method, body in (("GET", None), ("PUT", PROFILE)):
        r = await w.call(method, "/api/me/payout-profile", None, body)
        assert_refused(r, 401, "unauthenticated")
    assert_refused(await w.call("GET", "/api/me/payouts", None), 401, "unauthenticated")
    assert stored(w.data_dir) == before
    for who in ("expert", "other_expert"):
        profile = assert_ok(await w.call("GET", "/api/me/payout-profile", who))["profile"]
        assert profile["complete"] is False and profile["billing"] is None
        assert assert_ok(await w.call("GET", "/api/me/payouts", who))["payouts"] == []
    profile = assert_ok(await w.call("PUT", "/api/me/payout-profile", "expert", PROFILE))
    assert profile["profile"]["complete"] is True
    # Another expert's PUT writes his own profile, never this one.
    r = await w.call("PUT", "/api/me/payout-profile", "other_expert", {"tax": PROFILE["tax"]})
    assert assert_ok(r)["profile"]["billing"] is None
    r = await w.call("GET", "/api/me/payout-profile", "expert")
    assert assert_ok(r)["profile"] == profile["profile"]

    # Payouts: managers only. The session's month has ended once the clock moves on.
    month = clock.now().strftime("%Y-%m")
    clock.shift(days=40)
    before = stored(w.data_dir)
    for who in NOT_MANAGERS:
        r = await w.call("POST", "/api/payouts/run", who, {"month": month}, key="k-run")
        assert_refused(r, 403, "forbidden")
        assert_refused(await w.call("GET", "/api/payouts", who), 403, "forbidden")
        r = await w.call("GET", "/api/payouts", who, month=month)
        assert_refused(r, 403, "forbidden")
    r = await w.call("POST", "/api/payouts/run", None, {"month": month}, key="k-run")
    assert_refused(r, 401, "unauthenticated")
    assert_refused(await w.call("GET", "/api/payouts", None), 401, "unauthenticated")
    assert stored(w.data_dir) == before
    assert assert_ok(await w.call("GET", "/api/payouts", "manager"))["payouts"] == []

    run = assert_ok(await w.call("POST", "/api/payouts/run", "manager", {"month": month}))
    assert [(p["expert"]["id"], p["amount_cents"]) for p in run["payouts"]] == [
        (w.id("expert"), earning)
    ]
    paid = assert_ok(await w.call("GET", "/api/payouts", "manager", month=month))["payouts"]
    assert [p["id"] for p in paid] == [run["payouts"][0]["id"]]
    mine = assert_ok(await w.call("GET", "/api/me/payouts", "expert"))["payouts"]
    assert [p["id"] for p in mine] == [run["payouts"][0]["id"]]
    assert assert_ok(await w.call("GET", "/api/me/payouts", "other_expert"))["payouts"] == []
    audit = assert_ok(await w.call("GET", "/api/audit", "manager"))["entries"]
    assert [(e["action"], e["target_type"], e["target_id"]) for e in audit] == [
        ("payouts.run", "period", month)
    ]
    assert audit[0]["manager"]["id"] == w.id("manager")
    assert audit[0]["details"] == {"paid": 1, "held": 0, "total_cents": earning}


# -- public profiles ----------------------------------------------------------------------------


async def test_public_profiles_answer_anyone(w: World) -> None:
    r = await w.call("POST", f"/api/sessions/{w.sid}/review", "customer", {"stars": 4})
    assert_ok(r, 201)
    eid = w.id("expert")
    for who in (None, *CALLERS):
        experts = assert_ok(await w.call("GET", "/api/experts", who))["experts"]
        assert {eid, w.id("other_expert")} <= {e["id"] for e in experts}
        # Experts only: customers and managers are not listed.
        ids = {e["id"] for e in experts}
        assert not ids & {w.id("customer"), w.id("other_customer"), w.id("manager")}
        expert = assert_ok(await w.call("GET", f"/api/experts/{eid}", who))["expert"]
        assert expert["id"] == eid and expert["rating"] == {"average": 4.0, "count": 1}
        reviews = assert_ok(await w.call("GET", f"/api/experts/{eid}/reviews", who))
        assert [x["stars"] for x in reviews["reviews"]] == [4]
        # A customer, a manager or nobody at all: not an expert.
        for other in ("customer", "manager"):
            r = await w.call("GET", f"/api/experts/{w.id(other)}", who)
            assert_refused(r, 404, "not_found")
            r = await w.call("GET", f"/api/experts/{w.id(other)}/reviews", who)
            assert_refused(r, 404, "not_found")
        assert_refused(await w.call("GET", "/api/experts/u-nope", who), 404, "not_found")


# -- the manager console, and the phone number ----------------------------------------------------


async def test_manager_console_by_caller_and_every_action_is_audited(w: World) -> None:
    eid, xid = w.id("expert"), w.id("other_expert")
    before = stored(w.data_dir)

    # Verification.
    path = f"/api/experts/{eid}/verification"
    for who in NOT_MANAGERS:
        assert_refused(await w.call("PUT", path, who, {"status": "verified"}), 403, "forbidden")
    assert_refused(await w.call("PUT", path, None, {"status": "verified"}), 401, "unauthenticated")
    # Accounts, suspension, restoring, the audit log.
    for who in NOT_MANAGERS:
        assert_refused(await w.call("GET", "/api/users", who), 403, "forbidden")
        assert_refused(await w.call("GET", "/api/audit", who), 403, "forbidden")
        for target in (xid, w.id("other_customer"), w.id("manager")):
            r = await w.call("POST", f"/api/users/{target}/suspend", who, {"reason": "spam"})
            assert_refused(r, 403, "forbidden")
            r = await w.call("POST", f"/api/users/{target}/restore", who, {"reason": "ok"})
            assert_refused(r, 403, "forbidden")
    for method, p, body in (
        ("GET", "/api/users", None),
        ("GET", "/api/audit", None),
        ("POST", f"/api/users/{xid}/suspend", {"reason": "spam"}),
        ("POST", f"/api/users/{xid}/restore", {}),
    ):
        assert_refused(await w.call(method, p, None, body), 401, "unauthenticated")
    assert stored(w.data_dir) == before
    assert (
        assert_ok(await w.call("GET", f"/api/experts/{eid}", None))["expert"]["verification_status"]
        == "pending"
    )

    # A manager may; not on who is not an expert or not at all.
    for target in (w.id("customer"), w.id("manager"), "u-nope"):
        r = await w.call(
            "PUT", f"/api/experts/{target}/verification", "manager", {"status": "verified"}
        )
        assert_refused(r, 404, "not_found")
    for action in ("suspend", "restore"):
        r = await w.call("POST", f"/api/users/u-nope/{action}", "manager", {"reason": "x"})
        assert_refused(r, 404, "not_found")
        # Nor on himself.
        r = await w.call(
            "POST", f"/api/users/{w.id('manager')}/{action}", "manager", {"reason": "x"}
        )
        assert_refused(r, 409, "invalid_state")
    assert stored(w.data_dir) == before

    r = await w.call("PUT", path, "manager", {"status": "verified", "note": "ID checked"})
    assert assert_ok(r)["expert"]["verification_status"] == "verified"
    users = assert_ok(await w.call("GET", "/api/users", "manager"))["users"]
    assert {u["id"] for u in users} >= {w.id(who) for who in CALLERS}
    r = await w.call("POST", f"/api/users/{xid}/suspend", "manager", {"reason": "spam"})
    assert assert_ok(r)["user"]["status"] == "suspended"
    r = await w.call("POST", f"/api/users/{xid}/restore", "manager", {"reason": "appeal"})
    assert assert_ok(r)["user"]["status"] == "active"

    audit = assert_ok(await w.call("GET", "/api/audit", "manager"))["entries"]
    assert [(e["action"], e["target_id"]) for e in audit] == [
        ("user.restore", xid),
        ("user.suspend", xid),
        ("expert.verification", eid),
    ]
    assert all(e["manager"]["id"] == w.id("manager") for e in audit)
    assert audit[2]["details"] == {"status": "verified", "note": "ID checked"}
    assert audit[1]["details"] == {"reason": "spam"}

    # The phone number: any user sets his own; anonymous callers nobody's.
    for i, who in enumerate(CALLERS):
        phone = f"+1415555{100 + i:04d}"
        r = await w.call("PUT", "/api/me/phone", who, {"phone": phone})
        assert assert_ok(r)["user"]["phone"] == phone
        me = assert_ok(await w.call("GET", "/api/me", who))["user"]
        assert me["phone"] == phone and me["id"] == w.id(who)
    before = stored(w.data_dir)
    r = await w.call("PUT", "/api/me/phone", None, {"phone": "+14155550199"})
    assert_refused(r, 401, "unauthenticated")
    assert stored(w.data_dir) == before


# -- anonymous callers, bad tokens and suspended accounts on every route ---------------------------


def authenticated_routes(w: World, cid: str) -> list[tuple[str, str, Any]]:
    """Every route of section 4 that needs a token (and GET /api/sessions/{id})."""
    sid, eid, xid = w.sid, w.id("expert"), w.id("other_expert")
    return [
        ("GET", "/api/sessions", None),
        ("GET", f"/api/sessions/{sid}", None),
        ("GET", f"/api/sessions/{sid}/messages", None),
        ("POST", f"/api/sessions/{sid}/refund-claim", {"reason": "no help"}),
        ("POST", f"/api/sessions/{sid}/review", {"stars": 1}),
        ("GET", "/api/claims", None),
        ("GET", f"/api/claims/{cid}", None),
        ("POST", f"/api/claims/{cid}/dispute", {"summary": "fine"}),
        ("POST", f"/api/claims/{cid}/decision", {"outcome": "refund"}),
        ("GET", "/api/me/statements", None),
        ("GET", "/api/me/transactions", None),
        ("GET", "/api/me/payout-profile", None),
        ("PUT", "/api/me/payout-profile", PROFILE),
        ("GET", "/api/me/payouts", None),
        ("PUT", "/api/me/phone", {"phone": "+14155550100"}),
        ("PUT", f"/api/experts/{eid}/verification", {"status": "rejected"}),
        ("GET", "/api/users", None),
        ("POST", f"/api/users/{xid}/suspend", {"reason": "spam"}),
        ("POST", f"/api/users/{xid}/restore", {}),
        ("GET", "/api/audit", None),
        ("POST", "/api/payouts/run", {"month": "2020-01"}),
        ("GET", "/api/payouts", None),
        ("GET", "/api/me", None),
    ]


async def test_no_token_a_bad_token_or_a_suspended_account_is_refused_everywhere(
    w: World,
) -> None:
    r = await w.call("POST", f"/api/sessions/{w.sid}/refund-claim", "customer", {"reason": "x"})
    cid = assert_ok(r, 201)["claim"]["id"]
    r = await w.call(
        "POST", f"/api/users/{w.id('customer')}/suspend", "manager", {"reason": "fraud"}
    )
    assert_ok(r)
    before = stored(w.data_dir)
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {w.tokens['expert']}"},
        {"Authorization": w.tokens["expert"]},
    ]
    for method, path, body in authenticated_routes(w, cid):
        for headers in bad_headers:
            r = await w.api.http.request(method, path, headers=headers, json=body)
            assert_refused(r, 401, "unauthenticated")
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
        # The suspended customer's token is still genuine: 403 on every call.
        r = await w.call(method, path, "customer", body, key="k-suspended")
        assert_refused(r, 403, "forbidden")
    assert stored(w.data_dir) == before

    # The public routes answer without a token, and to a genuine one (the suspended
    # customer's too); a token that is given but invalid is refused, as everywhere.
    eid = w.id("expert")
    for path in ("/api/experts", f"/api/experts/{eid}", f"/api/experts/{eid}/reviews"):
        for headers in ({}, auth(w.tokens["customer"])):
            r = await w.api.http.get(path, headers=headers)
            assert r.status_code == 200, (path, headers, r.text)
        for headers in bad_headers[1:]:
            r = await w.api.http.get(path, headers=headers)
            assert_refused(r, 401, "unauthenticated")


async def test_suspension_locks_an_account_out_until_a_manager_restores_it(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path
) -> None:
    manager = await new_manager(pnode, papi, data_dir)
    mid = (await papi.http.get("/api/me", headers=auth(manager))).json()["user"]["id"]
    euser, etoken = await new_expert(papi, "Suspended Expert")
    cuser, ctoken = await new_customer(papi, "Suspended Customer")
    bystander_user, btoken = await new_customer(papi, "Bystander")
    expert_socket = await clients.connect(pnode, etoken)
    customer_socket = await clients.connect(pnode, ctoken)
    bystander = await clients.connect(pnode, btoken)

    for user, token, sock in ((euser, etoken, expert_socket), (cuser, ctoken, customer_socket)):
        r = await papi.http.post(
            f"/api/users/{user['id']}/suspend", json={"reason": "fraud"}, headers=auth(manager)
        )
        assert assert_ok(r)["user"]["status"] == "suspended"
        # His open socket is closed with 4403; nobody else's.
        assert await wait_closed(sock) == 4403
        # His token: 403 on /api/me.
        assert_refused(await papi.http.get("/api/me", headers=auth(token)), 403, "forbidden")
        # His login: 403, with the right password.
        r = await papi.http.post(
            "/api/auth/login", json={"email": user["email"], "password": "password-123"}
        )
        assert_refused(r, 403, "forbidden")
        # A wrong password still says only that it is wrong.
        r = await papi.http.post(
            "/api/auth/login", json={"email": user["email"], "password": "wrong-password"}
        )
        assert_refused(r, 401, "unauthenticated")
        # His hello: an unauthenticated error, then 4401.
        ws = await websockets.connect(pnode.ws, subprotocols=["rt.v1.json"])  # type: ignore[list-item]
        try:
            await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
            reply = await asyncio.wait_for(ws.recv(), 15)
            assert '"unauthenticated"' in str(reply), reply
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 15)
            assert ws.close_code == 4401
        finally:
            await ws.close()
    assert (await bystander.call("ping"))["type"] == "ok"
    assert bystander.close_code is None

    # A suspended expert has no public profile, except to managers.
    r = await papi.http.get(f"/api/experts/{euser['id']}")
    assert_refused(r, 404, "not_found")
    r = await papi.http.get(f"/api/experts/{euser['id']}", headers=auth(btoken))
    assert_refused(r, 404, "not_found")
    experts = (await papi.http.get("/api/experts")).json()["experts"]
    assert euser["id"] not in [e["id"] for e in experts]
    r = await papi.http.get(f"/api/experts/{euser['id']}", headers=auth(manager))
    assert assert_ok(r)["expert"]["id"] == euser["id"]
    users = (
        await papi.http.get("/api/users", headers=auth(manager), params={"status": "suspended"})
    ).json()["users"]
    assert {u["id"] for u in users} == {euser["id"], cuser["id"]}

    # A manager cannot suspend (nor restore) himself.
    for action in ("suspend", "restore"):
        r = await papi.http.post(
            f"/api/users/{mid}/{action}", json={"reason": "oops"}, headers=auth(manager)
        )
        assert_refused(r, 409, "invalid_state")
    assert_ok(await papi.http.get("/api/me", headers=auth(manager)))

    # Restoring lets him log in again, and his socket back in.
    r = await papi.http.post(
        f"/api/users/{euser['id']}/restore", json={"reason": "appeal"}, headers=auth(manager)
    )
    assert assert_ok(r)["user"]["status"] == "active"
    r = await papi.http.post(
        "/api/auth/login", json={"email": euser["email"], "password": "password-123"}
    )
    fresh = assert_ok(r)["token"]
    for token in (fresh, etoken):
        me = assert_ok(await papi.http.get("/api/me", headers=auth(token)))["user"]
        assert me["status"] == "active"
    back = await clients.connect(pnode, fresh)
    assert (await back.call("ping"))["type"] == "ok"
    assert_ok(await papi.http.get(f"/api/experts/{euser['id']}"))
    # The customer is still suspended.
    assert_refused(await papi.http.get("/api/me", headers=auth(ctoken)), 403, "forbidden")

    audit = (await papi.http.get("/api/audit", headers=auth(manager))).json()["entries"]
    assert [(e["action"], e["target_id"]) for e in audit] == [
        ("user.restore", euser["id"]),
        ("user.suspend", cuser["id"]),
        ("user.suspend", euser["id"]),
    ]
    assert all(e["manager"]["id"] == mid and e["target_type"] == "user" for e in audit)
    assert bystander_user["id"] not in [e["target_id"] for e in audit]
