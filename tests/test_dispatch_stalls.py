"""Issue 8, defect 9: instant requests that got no next wave while experts were free.

Each test is one cause found with ``bench/dispatch.py`` (see docs/benchmarks.md,
"Dispatch stalls"), on a real node, with ``--offer-ttl 60s``: "at once" means
long before the wave's end, and the tests wait on events, never on durations
(their timeouts only keep a broken build from hanging).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from clients.rtclient import Api, Client
from rtserver.clock import from_wire, to_ms
from rtserver.storage.timers import Timer
from tests.servers import new_customer, node_settings, online_expert, run_node
from tests.storage import query

INSTANT = {"kind": "instant", "title": "Help", "skills": ["python"], "language": "en"}


async def test_wakes_do_not_starve_the_timer_they_wake(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose wave was withdrawn (its expert won another one) is due at once.
    Under a burst, experts keep turning free, and each wakes the waiting requests
    (``Hub.expert_free``) between the timer loop's read of a due timer and its claim.
    A wake used to move the due time to its own "now", so the claim (made on the
    due time read) failed, round after round, until --offer-ttl: the bench's stalls.
    A wake now only ever brings a timer forward; one already due is left alone."""
    async with run_node(node_settings(data_dir, offer_batch=1, offer_ttl="60s")) as node:
        assert node.app is not None
        hub = node.app.state.node.hub
        api = Api(node.http)
        customers = [await Client.connect(node.ws, (await new_customer(api))[1]) for _ in "ab"]
        _, first = await online_expert(node, api, name="First")
        r1 = (await customers[0].call("request.create", **INSTANT))["request"]["id"]
        r2 = (await customers[1].call("request.create", **INSTANT))["request"]["id"]
        for rid in (r1, r2):
            await first.wait_event("offer.new", lambda e, rid=rid: e["offer"]["request_id"] == rid)
        _, second = await online_expert(node, api, name="Second")

        real_claim = hub.timer_store.claim

        async def woken_before_claim(timer: Timer, *args: Any, **kw: Any) -> Any:
            # Another expert turns free after the loop read this timer as due: the
            # interleaving a burst makes likely, made certain (a later millisecond).
            if timer.kind == "request":
                await asyncio.sleep(0.002)
                await hub.expert_free("another-expert")
            return await real_claim(timer, *args, **kw)

        monkeypatch.setattr(hub.timer_store, "claim", woken_before_claim)
        # First wins r1: his offer of r2 is withdrawn, and r2 is due at once.
        await first.call("offer.accept", request_id=r1)
        offer = await second.wait_event(
            "offer.new", lambda e: e["offer"]["request_id"] == r2, timeout=10
        )
        assert offer["offer"]["request_id"] == r2
        for c in (*customers, first, second):
            await c.close()
        await api.aclose()


async def test_a_wave_passes_over_experts_racing_for_another_request(data_dir: Path) -> None:
    """Requests made at once all ranked the same best few first, so every wave went
    to them; each could win only one, and the other requests chased them wave after
    wave until their customers gave up. An expert who holds an open offer of another
    instant request now comes after every free expert who holds none (he still gets
    it when nobody else can: tests/test_matching_flow.py, the winner's other offers)."""
    async with run_node(node_settings(data_dir, offer_batch=1, offer_ttl="60s")) as node:
        api = Api(node.http)
        customers = [await Client.connect(node.ws, (await new_customer(api))[1]) for _ in "ab"]
        # Best for both requests: both of their skills, where the other has one.
        _, best = await online_expert(node, api, name="Best", skills=("python", "django"))
        _, other = await online_expert(node, api, name="Other", skills=("python",))
        both = {**INSTANT, "skills": ["python", "django"]}
        r1 = (await customers[0].call("request.create", **both))["request"]["id"]
        await best.wait_event("offer.new", lambda e: e["offer"]["request_id"] == r1)
        r2 = (await customers[1].call("request.create", **both))["request"]["id"]
        offer = await other.wait_event(
            "offer.new", lambda e: e["offer"]["request_id"] == r2, timeout=10
        )
        assert offer["offer"]["request_id"] == r2
        assert [e for e in best.drain() if e["type"] == "offer.new"] == []
        for c in (*customers, best, other):
            await c.close()
        await api.aclose()


async def test_a_wake_during_an_empty_wave_is_not_lost(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expert turns available while a request's timer is running and its matching
    has already found nobody: his wake finds the timer due (leased), so it cannot
    bring it forward, and the run then put the request off to its empty-wave retry
    (10 s), offering it to nobody meanwhile. The wake is now kept on the timer, and
    the run that saw nobody looks again at once."""
    async with run_node(node_settings(data_dir, offer_ttl="60s")) as node:
        assert node.app is not None
        hub = node.app.state.node.hub
        api = Api(node.http)
        customer = await Client.connect(node.ws, (await new_customer(api))[1])
        _, expert = await online_expert(node, api, name="Late")
        await expert.call("presence", status="away")
        rid = (await customer.call("request.create", **INSTANT))["request"]["id"]

        real_instant = hub.matcher.instant
        runs = 0

        async def free_after_matching(request: Any, *args: Any, **kw: Any) -> Any:
            nonlocal runs
            chosen = await real_instant(request, *args, **kw)
            if request.id == rid:
                runs += 1
                if runs == 1:
                    # Nobody was free when this run looked; he turns free right after.
                    await expert.call("presence", status="available")
            return chosen

        monkeypatch.setattr(hub.matcher, "instant", free_after_matching)
        # Run the request's timer now (its first wave was empty: due in 10 s).
        await hub.expert_free("someone-else")
        offer = await expert.wait_event(
            "offer.new", lambda e: e["offer"]["request_id"] == rid, timeout=8
        )
        assert offer["offer"]["request_id"] == rid
        for c in (customer, expert):
            await c.close()
        await api.aclose()


async def test_a_stale_wake_does_not_cut_a_live_wave_short(data_dir: Path) -> None:
    """A wake is chosen from a read (this request waited for anyone) and may land
    after the request's next wave went out: an expert turning free, a decline, or
    another node. The timer's run then ended that fresh wave at once (its offers
    revoked as expired, the bench's ``revoked:expired``) and sent another. Now it
    ends only offers whose time is up, and puts the timer back at the wave's end."""
    async with run_node(node_settings(data_dir, offer_ttl="60s")) as node:
        assert node.app is not None
        hub = node.app.state.node.hub
        api = Api(node.http)
        customer = await Client.connect(node.ws, (await new_customer(api))[1])
        _, expert = await online_expert(node, api, name="Offered")
        rid = (await customer.call("request.create", **INSTANT))["request"]["id"]
        offer = await expert.wait_event("offer.new", lambda e: e["offer"]["request_id"] == rid)
        wave_end = from_wire(offer["offer"]["expires_at"])

        def timer_due() -> int | None:
            rows = query(
                data_dir,
                "SELECT due_at FROM timers WHERE kind = 'request' AND ref = ?"
                " AND lease_owner IS NULL",
                (rid,),
            )
            return int(rows[0]["due_at"]) if rows else None

        # The stale wake: the timer is due now, and the loop runs it.
        await hub._hasten(rid)
        for _ in range(200):
            due = timer_due()
            if due is not None and due == to_ms(wave_end):
                break
            await asyncio.sleep(0.05)
        assert timer_due() == to_ms(wave_end)
        # His offer is still open: no revoke, and his accept wins.
        assert [e for e in expert.drain() if e["type"] == "offer.revoked"] == []
        reply = await expert.call("offer.accept", request_id=rid)
        assert reply["session"]["request_id"] == rid
        for c in (customer, expert):
            await c.close()
        await api.aclose()


@pytest.mark.both_backends
async def test_a_wave_never_offers_work_to_an_expert_turning_busy(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wave chooses its experts from a read inside its transaction, and an accept
    may make one of them busy meanwhile. On PostgreSQL, where nodes and writers run
    side by side, the accept's withdrawal of his open offers ran before the wave
    committed its offer to him: that offer stayed open to a busy expert, and with a
    whole wave of them the request stalled until the wave expired (the bench's
    stalls on PostgreSQL). The wave now locks the rows of the experts it takes and
    asks again; the accept locks its winner's row. Here the accept commits while
    the wave is between its read and its write; on SQLite it waits for the wave
    and withdraws the offer it made."""
    async with run_node(node_settings(data_dir, offer_batch=2, offer_ttl="60s")) as node:
        assert node.app is not None
        hub = node.app.state.node.hub
        api = Api(node.http)
        customers = [await Client.connect(node.ws, (await new_customer(api))[1]) for _ in "ab"]
        best_user, best = await online_expert(node, api, name="Best", skills=("python", "django"))
        _, other = await online_expert(node, api, name="Other", skills=("python",))
        both = {**INSTANT, "skills": ["python", "django"]}
        r1 = (await customers[0].call("request.create", **both))["request"]["id"]
        await best.wait_event("offer.new", lambda e: e["offer"]["request_id"] == r1)

        real_still_free = hub.users.still_free
        accepting: list[asyncio.Future[dict[str, Any]]] = []

        async def accept_meanwhile(conn: Any, expert_ids: list[str]) -> list[str]:
            free = await real_still_free(conn, expert_ids)
            if not accepting and best_user["id"] in free:
                # The wave of r2 has read Best as free; he wins r1 now.
                accepting.append(asyncio.ensure_future(best.call("offer.accept", request_id=r1)))
                await asyncio.sleep(0.5)
            return free

        monkeypatch.setattr(hub.users, "still_free", accept_meanwhile)
        r2 = (await customers[1].call("request.create", **both))["request"]["id"]
        assert accepting, "the wave of r2 did not read Best as free"
        won = await asyncio.wait_for(accepting[0], 10)
        assert won["session"]["expert"]["id"] == best_user["id"]
        await other.wait_event("offer.new", lambda e: e["offer"]["request_id"] == r2)
        # Best, busy now, holds no open offer of r2: offered it and then withdrawn
        # (SQLite), or never offered it (PostgreSQL).
        async with asyncio.timeout(10):
            while True:
                held = query(
                    data_dir,
                    "SELECT status FROM offers WHERE request_id = ? AND expert_id = ?",
                    (r2, best_user["id"]),
                )
                if all(row["status"] != "open" for row in held):
                    break
                await asyncio.sleep(0.05)
        for c in (*customers, best, other):
            await c.close()
        await api.aclose()
