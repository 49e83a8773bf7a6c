"""Money that moves once: idempotency keys, decisions raced across nodes, payouts.

Real SQLite files, a real Redis and node processes for the cross-node race.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.rtclient import Api
from rtserver.notify import LogPayer
from tests.portal import auth, ended_session, get, ledger, new_manager, ops_balanced
from tests.servers import (
    Clients,
    Node,
    RedisServer,
    ShiftClock,
    node_settings,
    rtserver_cli,
    run_node,
    start_cluster,
)
from tests.storage import storage_flags

pytestmark = pytest.mark.both_backends

COMPLETE_PROFILE = {
    "billing": {
        "holder_name": "Ada Lovelace",
        "account_type": "iban",
        "iban": "GB82 WEST 1234 5698 7654 32",
    },
    "address": {
        "line1": "1 Analytical Way",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "gb",
    },
    "tax": {"form": "W-8BEN", "legal_name": "Ada Lovelace", "tax_id": "AB123456C"},
}


@pytest.fixture
def portal_settings() -> dict[str, Any]:
    # Long enough to claim a refund after a payout a month later.
    return {"refund_window": "60d"}


async def open_claim(api: Api, sid: str, token: str) -> str:
    r = await api.http.post(
        f"/api/sessions/{sid}/refund-claim", json={"reason": "no help"}, headers=auth(token)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["claim"]["id"])


async def test_one_key_replayed_20_times_at_once_moves_money_once(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path
) -> None:
    s = await ended_session(pnode, papi, clients)
    manager = await new_manager(pnode, papi, data_dir)
    claim_id = await open_claim(papi, s.session_id, s.customer_token)
    before = len(ledger(data_dir))

    async def decide() -> httpx.Response:
        return await papi.http.post(
            f"/api/claims/{claim_id}/decision",
            json={"outcome": "refund"},
            headers=auth(manager, "decide-1"),
        )

    answers = await asyncio.gather(*(decide() for _ in range(20)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 19
    rows = ledger(data_dir)
    assert len(rows) == before + 3
    assert ops_balanced(rows) and sum(r["amount_cents"] for r in rows) == 0

    # The same key with another body is refused, and moves nothing.
    r = await papi.http.post(
        f"/api/claims/{claim_id}/decision",
        json={"outcome": "no_fault"},
        headers=auth(manager, "decide-1"),
    )
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "invalid_field",
        "message": "this Idempotency-Key was used for another request",
        "field": "Idempotency-Key",
    }
    # A new key for a decided claim: the decision is final.
    r = await papi.http.post(
        f"/api/claims/{claim_id}/decision",
        json={"outcome": "refund"},
        headers=auth(manager, "decide-2"),
    )
    assert r.status_code == 409
    assert len(ledger(data_dir)) == before + 3

    # Keys belong to their user: the customer's claim key does not collide.
    r = await papi.http.post(
        f"/api/sessions/{s.session_id}/review",
        json={"stars": 2},
        headers=auth(s.customer_token, "decide-1"),
    )
    assert r.status_code == 201


async def test_two_managers_on_two_nodes_decide_at_once_money_moves_once(
    tmp_path: Path, data_dir: Path, redis_server: RedisServer, redis_prefix: str, clients: Clients
) -> None:
    nodes = start_cluster(tmp_path, data_dir, redis_server, redis_prefix, 2, billing_check="200ms")
    api0, api1 = Api(nodes[0].http), Api(nodes[1].http)
    try:
        s = await ended_session(nodes[0], api0, clients)
        m0 = await new_manager(nodes[0], api0, data_dir, "Manager A")
        m1 = await new_manager(nodes[1], api1, data_dir, "Manager B")
        claim_id = await open_claim(api1, s.session_id, s.customer_token)
        before = len(ledger(data_dir))
        for _ in range(3):
            r0, r1 = await asyncio.gather(
                api0.http.post(
                    f"/api/claims/{claim_id}/decision",
                    json={"outcome": "refund"},
                    headers=auth(m0),
                ),
                api1.http.post(
                    f"/api/claims/{claim_id}/decision",
                    json={"outcome": "no_fault"},
                    headers=auth(m1),
                ),
            )
            codes = sorted([r0.status_code, r1.status_code])
            assert codes in ([200, 409], [409, 409]), (r0.text, r1.text)
        rows = ledger(data_dir)
        decision_rows = rows[before:]
        assert len({r["op"] for r in decision_rows}) == 1
        assert ops_balanced(rows) and sum(r["amount_cents"] for r in rows) == 0
        # Both sides heard of the decision once, whichever node decided it.
        ev = await s.customer_client.wait_event(
            "claim.update", lambda e: e["step"] == "decided", timeout=20
        )
        assert ev["claim"]["status"] in ("refunded", "no_fault")
    finally:
        await api0.aclose()
        await api1.aclose()
        for n in nodes:
            n.stop()


async def test_payouts_once_per_period_held_without_a_profile_and_refunds_carried(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path, clock: ShiftClock, payer: LogPayer
) -> None:
    manager = await new_manager(pnode, papi, data_dir)
    a = await ended_session(pnode, papi, clients, discount=50)
    expert = (a.expert, a.expert_token)
    earned_a = a.summary["expert_earnings_cents"]
    december = clock.now().strftime("%Y-%m")

    # December has not ended: refused.
    r = await papi.http.post("/api/payouts/run", json={"month": december}, headers=auth(manager))
    assert r.status_code == 422 and r.json()["error"]["field"] == "month"

    clock.shift(days=32)
    # No payout profile: the money is held.
    r = await papi.http.post("/api/payouts/run", json={"month": december}, headers=auth(manager))
    assert r.status_code == 200, r.text
    held = r.json()["held"]
    assert [h["expert"]["id"] for h in held] == [a.expert["id"]]
    assert held[0]["balance_cents"] == earned_a
    assert set(held[0]["missing"]) == {"billing", "address", "tax"}

    r = await papi.http.put(
        "/api/me/payout-profile", json=COMPLETE_PROFILE, headers=auth(a.expert_token)
    )
    assert r.status_code == 200, r.text
    profile = r.json()["profile"]
    assert profile["complete"] is True and profile["missing"] == []
    assert "5698" not in json.dumps(profile) and profile["billing"]["account_masked"].endswith(
        "5432"
    )

    # Paid once, whatever the retries (and two runs at once).
    runs = await asyncio.gather(
        *(
            papi.http.post("/api/payouts/run", json={"month": december}, headers=auth(manager))
            for _ in range(3)
        )
    )
    paid = [p for r in runs for p in r.json()["payouts"]]
    assert [p["amount_cents"] for p in paid] == [earned_a]
    ev = await a.expert_client.wait_event("payout.sent")
    assert ev["payout"]["amount_cents"] == earned_a
    for _ in range(100):
        if payer.paid:
            break
        await asyncio.sleep(0.05)
    assert [t.amount_cents for t in payer.paid] == [earned_a]
    assert payer.paid[0].iban == "GB82WEST12345698765432"

    # A refund decided after the payout: the balance goes negative, and is carried.
    claim_id = await open_claim(papi, a.session_id, a.customer_token)
    r = await papi.http.post(
        f"/api/claims/{claim_id}/decision", json={"outcome": "refund"}, headers=auth(manager)
    )
    assert r.status_code == 200
    st = (await get(papi, "/api/me/statements", a.expert_token)).json()
    assert st["balance_cents"] == -earned_a

    b = await ended_session(pnode, papi, clients, expert=expert)
    earned_b = b.summary["expert_earnings_cents"]
    assert earned_b > earned_a
    january = clock.now().strftime("%Y-%m")
    clock.shift(days=31)
    r = await papi.http.post("/api/payouts/run", json={"month": january}, headers=auth(manager))
    assert [p["amount_cents"] for p in r.json()["payouts"]] == [earned_b - earned_a]
    st = (await get(papi, "/api/me/statements", a.expert_token)).json()
    assert st["balance_cents"] == 0

    # Payouts are rows of the Transaction Record, and of the month's statement.
    tx = (await get(papi, "/api/me/transactions", a.expert_token)).json()["transactions"]
    kinds = [t["kind"] for t in tx]
    assert kinds.count("payout") == 2
    assert tx[0]["balance_cents"] == 0
    months = {m["month"]: m for m in st["months"]}
    assert months[december]["net_cents"] == earned_a
    assert sum(m["payouts_cents"] for m in st["months"]) == -earned_b
    assert (await get(papi, "/api/me/payouts", a.expert_token)).json()["payouts"][0][
        "amount_cents"
    ] == earned_b - earned_a
    csv_text = (await get(papi, "/api/me/transactions", a.expert_token, format="csv")).text
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,at,session_id")
    assert len(lines) == 1 + len(tx)
    rows = ledger(data_dir)
    assert ops_balanced(rows) and sum(r["amount_cents"] for r in rows) == 0
    audit = (await get(papi, "/api/audit", manager)).json()["entries"]
    assert [e["action"] for e in audit].count("payouts.run") >= 3


async def cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    """``python -m rtserver <args>`` on the test's storage: (exit code, stdout, stderr)."""
    return await rtserver_cli(*args, *storage_flags(data_dir), timeout=60)


async def test_the_command_line_pays_a_past_month_once(data_dir: Path, clients: Clients) -> None:
    clock = ShiftClock()
    clock.shift(days=-40)  # the session happens 40 days ago: its month has ended
    month = clock.now().strftime("%Y-%m")
    # Tokens are signed at the shifted time and checked by the real one: make them last.
    settings = node_settings(data_dir, billing_check="200ms", token_ttl="100d")
    async with run_node(settings, clock=clock) as node:
        api = Api(node.http)
        try:
            s = await ended_session(node, api, clients)
            r = await api.http.put(
                "/api/me/payout-profile", json=COMPLETE_PROFILE, headers=auth(s.expert_token)
            )
            assert r.status_code == 200
        finally:
            await api.aclose()
    code, out, err = await cli(data_dir, "payouts", "run", "--month", month)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    assert [p["amount_cents"] for p in result["payouts"]] == [s.summary["expert_earnings_cents"]]
    code, out, _ = await cli(data_dir, "payouts", "run", "--month", month)
    assert code == 0 and json.loads(out)["payouts"] == []
    code, _, err = await cli(data_dir, "payouts", "run", "--month", "2999-01")
    assert code == 1 and "not ended" in err
    rows = ledger(data_dir)
    assert [r["kind"] for r in rows].count("payout") == 1
    assert ops_balanced(rows)


async def test_periods_paid_out_of_order_pay_nothing_twice_nor_the_running_month(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path, clock: ShiftClock
) -> None:
    manager = await new_manager(pnode, papi, data_dir)
    a = await ended_session(pnode, papi, clients)
    expert = (a.expert, a.expert_token)
    r = await papi.http.put(
        "/api/me/payout-profile", json=COMPLETE_PROFILE, headers=auth(a.expert_token)
    )
    assert r.status_code == 200
    first = clock.now().strftime("%Y-%m")
    clock.shift(days=32)
    b = await ended_session(pnode, papi, clients, expert=expert)
    second = clock.now().strftime("%Y-%m")
    clock.shift(days=32)
    c = await ended_session(pnode, papi, clients, expert=expert)  # the month still running

    async def run(month: str) -> list[int]:
        r = await papi.http.post("/api/payouts/run", json={"month": month}, headers=auth(manager))
        assert r.status_code == 200, r.text
        return [p["amount_cents"] for p in r.json()["payouts"]]

    earned = [s.summary["expert_earnings_cents"] for s in (a, b, c)]
    assert await run(second) == [earned[0] + earned[1]]
    assert await run(first) == []
    st = (await get(papi, "/api/me/statements", a.expert_token)).json()
    assert st["balance_cents"] == earned[2]
