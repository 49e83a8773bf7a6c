"""Refund claims, disputes and decisions over HTTP and the socket, on real SQLite.

Each outcome leaves the ledger balanced and the statements right; a decision
is final; a claim comes once per session and only within the refund window.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from clients.rtclient import Api
from rtserver.notify import LogSender
from tests.portal import auth, ended_session, get, ledger, new_manager, ops_balanced
from tests.servers import Clients, Node, ShiftClock

pytestmark = pytest.mark.both_backends


async def claim(api: Api, sid: str, token: str, reason: str = "did not help", **kw: Any) -> Any:
    return await api.http.post(
        f"/api/sessions/{sid}/refund-claim", json={"reason": reason}, headers=auth(token, **kw)
    )


async def statement(api: Api, token: str) -> dict[str, Any]:
    r = await get(api, "/api/me/statements", token)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.parametrize("outcome", ["refund", "deny", "no_fault"])
async def test_each_outcome_balances_the_ledger_and_the_statements(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path, outcome: str, mail: LogSender
) -> None:
    s = await ended_session(pnode, papi, clients, discount=10)
    charge = s.summary["charge_cents"]
    earning = s.summary["expert_earnings_cents"]
    fee = charge - earning
    assert charge > 0
    manager = await new_manager(pnode, papi, data_dir)

    r = await claim(papi, s.session_id, s.customer_token)
    assert r.status_code == 201, r.text
    c = r.json()["claim"]
    assert c["status"] == "open" and c["amount_cents"] == charge
    for client in (s.customer_client, s.expert_client):
        ev = await client.wait_event("claim.update", lambda e: e["step"] == "claimed")
        assert ev["claim"]["id"] == c["id"]

    r = await papi.http.post(
        f"/api/claims/{c['id']}/dispute",
        json={"summary": "I fixed the bug; the customer left happy"},
        headers=auth(s.expert_token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["claim"]["status"] == "disputed"
    await s.customer_client.wait_event("claim.update", lambda e: e["step"] == "disputed")

    # Under Dispute lists it for the expert.
    r = await get(papi, "/api/sessions", s.expert_token, disputed=1)
    assert [x["id"] for x in r.json()["sessions"]] == [s.session_id]
    # The manager's queue has it, with the transcript at hand.
    r = await get(papi, "/api/claims", manager)
    assert [x["id"] for x in r.json()["claims"]] == [c["id"]]
    r = await get(papi, f"/api/sessions/{s.session_id}/messages", manager)
    assert [m["seq"] for m in r.json()["messages"]] == [1, 2]

    r = await papi.http.post(
        f"/api/claims/{c['id']}/decision",
        json={"outcome": outcome, "note": "reviewed"},
        headers=auth(manager),
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["claim"]["outcome"] == outcome
    ev = await s.expert_client.wait_event("claim.update", lambda e: e["step"] == "decided")
    assert ev["claim"]["status"] == {"refund": "refunded", "deny": "denied"}.get(
        outcome, "no_fault"
    )

    rows = ledger(data_dir)
    assert sum(r["amount_cents"] for r in rows) == 0
    assert ops_balanced(rows)
    moved = {(r["account"], r["kind"]): r["amount_cents"] for r in decided["ledger"]}
    if outcome == "refund":
        assert moved == {
            ("customer", "refund"): charge,
            ("expert", "refund_reversal"): -earning,
            ("platform", "fee_reversal"): -fee,
        }
    elif outcome == "no_fault":
        assert moved == {("customer", "refund"): charge, ("platform", "no_fault_refund"): -charge}
    else:
        assert moved == {}

    # The expert's statement: this month's net is the sum of his rows.
    st = await statement(papi, s.expert_token)
    month = st["months"][0]
    mine = [r for r in rows if r["account"] == "expert" and r["user_id"] == s.expert["id"]]
    assert month["net_cents"] == sum(r["amount_cents"] for r in mine) == st["balance_cents"]
    assert month["sessions"] == 1
    assert month["refund_claims"] == 1
    assert month["net_cents"] == (
        month["gross_cents"]
        + month["platform_fees_cents"]
        + month["refunds_cents"]
        + month["adjustments_cents"]
    )
    expected_net = 0 if outcome == "refund" else earning
    assert month["net_cents"] == expected_net
    assert month["refunded_sessions"] == (1 if outcome == "refund" else 0)
    # The customer's side: what he paid, and what came back.
    cst = await statement(papi, s.customer_token)
    back = charge if outcome in ("refund", "no_fault") else 0
    assert cst["balance_cents"] == -charge + back
    # The Transaction Record shows the same rows with a running balance.
    r = await get(papi, "/api/me/transactions", s.expert_token)
    tx = r.json()["transactions"]
    assert tx[0]["balance_cents"] == expected_net
    assert [t["amount_cents"] for t in tx] == [r["amount_cents"] for r in reversed(mine)]

    # A decision is final.
    r = await papi.http.post(
        f"/api/claims/{c['id']}/decision", json={"outcome": "refund"}, headers=auth(manager)
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
    assert len(ledger(data_dir)) == len(rows)

    # Both sides were told each step: stored notifications and the e-mail outbox.
    r = await get(papi, "/api/notifications", s.customer_token)
    steps = sorted(n["step"] for n in r.json()["notifications"] if n["kind"] == "claim")
    assert steps == ["claimed", "decided", "disputed"]
    for _ in range(100):
        subjects = [m.subject for m in mail.sent if m.address == s.expert["email"]]
        if len(subjects) >= 3:
            break
        await asyncio.sleep(0.05)
    assert sum("Refund claim" in x for x in subjects) == 3


async def test_a_claim_comes_once_within_the_window_and_only_from_the_customer(
    pnode: Node, papi: Api, clients: Clients, clock: ShiftClock, data_dir: Path
) -> None:
    s = await ended_session(pnode, papi, clients)
    r = await claim(papi, s.session_id, s.expert_token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (await claim(papi, s.session_id, s.customer_token)).status_code == 201
    r = await claim(papi, s.session_id, s.customer_token)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"

    late = await ended_session(pnode, papi, clients)
    clock.shift(days=14, seconds=5)
    r = await claim(papi, late.session_id, late.customer_token)
    assert r.status_code == 409 and "window" in r.json()["error"]["message"]
    # An uncharged (free) session has nothing to refund.
    free = await ended_session(pnode, papi, clients, discount=100)
    r = await claim(papi, free.session_id, free.customer_token)
    assert r.status_code == 409
    assert len((await get(papi, "/api/claims", s.customer_token)).json()["claims"]) == 1
    assert ops_balanced(ledger(data_dir))
