"""Reviews, public profiles, verification, suspension and texts, through real sockets.

Matching ranks by rating and responsiveness and offers unverified experts only
when no verified one can take a request; a suspended account loses its
sockets, offers and requests; reminders and direct requests also go out as a
text to users with a phone number.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clients.rtclient import Api, Client
from rtserver.notify import LogSender
from tests.portal import auth, ended_session, get, new_manager
from tests.servers import Clients, Node, new_customer, new_expert, unique

pytestmark = pytest.mark.both_backends


@pytest.fixture
def batch() -> int:
    """Experts offered a request at once (a test may parametrize it)."""
    return 5


@pytest.fixture
def portal_settings(batch: int) -> dict[str, Any]:
    return {"offer_batch": batch, "reminders": "3s"}


async def available(node: Node, clients: Clients, token: str) -> Client:
    c = await clients.connect(node, token)
    await c.call("presence", status="available")
    return c


async def ask(customer: Client, skill: str, **fields: Any) -> dict[str, Any]:
    reply = await customer.call(
        "request.create", kind="instant", title="Help", skills=[skill], language="en", **fields
    )
    request: dict[str, Any] = reply["request"]
    return request


async def offered(c: Client, request_id: str, wait: float = 1.0) -> bool:
    try:
        await c.wait_event("offer.new", lambda e: e["offer"]["request_id"] == request_id, wait)
    except TimeoutError:
        return False
    return True


async def verify(api: Api, manager: str, expert_id: str, status: str) -> None:
    r = await api.http.put(
        f"/api/experts/{expert_id}/verification", json={"status": status}, headers=auth(manager)
    )
    assert r.status_code == 200, r.text
    assert r.json()["expert"]["verification_status"] == status


@pytest.mark.parametrize("batch", [1])
async def test_reviews_make_the_rating_on_the_public_profile_and_rank_first(
    pnode: Node, papi: Api, clients: Clients
) -> None:
    skill = unique("skill")
    s = await ended_session(pnode, papi, clients, skill=skill)
    r = await papi.http.post(
        f"/api/sessions/{s.session_id}/review",
        json={"stars": 5, "comment": "Fixed it in minutes"},
        headers=auth(s.customer_token),
    )
    assert r.status_code == 201, r.text
    ev = await s.expert_client.wait_event("review.new")
    assert ev["review"]["stars"] == 5
    # Once per session, only the customer.
    r = await papi.http.post(
        f"/api/sessions/{s.session_id}/review", json={"stars": 1}, headers=auth(s.customer_token)
    )
    assert r.status_code == 409
    r = await papi.http.post(
        f"/api/sessions/{s.session_id}/review", json={"stars": 1}, headers=auth(s.expert_token)
    )
    assert r.status_code == 403

    # The public profile, anonymously: rating and responsiveness.
    r = await get(papi, f"/api/experts/{s.expert['id']}", None)
    assert r.status_code == 200
    profile = r.json()["expert"]
    assert profile["rating"] == {"average": 5.0, "count": 1}
    assert profile["median_response_seconds"] is not None
    assert profile["skills"] == [skill]
    reviews = (await get(papi, f"/api/experts/{s.expert['id']}/reviews", None)).json()
    assert [x["comment"] for x in reviews["reviews"]] == ["Fixed it in minutes"]
    assert "email" not in str(reviews)

    # Matching ranks the rated expert before an unrated one with the same skills.
    _, fresh_token = await new_expert(papi, "Fresh", skills=(skill,))
    fresh = await available(pnode, clients, fresh_token)
    rated = s.expert_client
    await rated.call("presence", status="available")
    _, ctoken = await new_customer(papi)
    customer = await clients.connect(pnode, ctoken)
    request = await ask(customer, skill)
    # One expert a wave: the rated one, though the fresh one was offered nothing yet.
    assert await offered(rated, request["id"])
    assert not await offered(fresh, request["id"], 0.5)
    r = await get(papi, "/api/experts", None, skill=skill)
    assert r.json()["experts"][0]["id"] == s.expert["id"]


async def test_unverified_experts_are_offered_work_only_when_no_verified_one_can(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path
) -> None:
    manager = await new_manager(pnode, papi, data_dir)
    skill = unique("skill")
    vuser, vtoken = await new_expert(papi, "Verified", skills=(skill,))
    puser, ptoken = await new_expert(papi, "Pending", skills=(skill,))
    ruser, rtoken = await new_expert(papi, "Rejected", skills=(skill,))
    await verify(papi, manager, vuser["id"], "verified")
    await verify(papi, manager, ruser["id"], "rejected")
    v = await available(pnode, clients, vtoken)
    p = await available(pnode, clients, ptoken)
    rj = await available(pnode, clients, rtoken)
    _, ctoken = await new_customer(papi)
    customer = await clients.connect(pnode, ctoken)

    first = await ask(customer, skill)
    assert first["notified"] == 1
    assert await offered(v, first["id"])
    assert not await offered(p, first["id"], 0.5)

    # The verified expert goes away: the next request goes to the pending one,
    # and never to the rejected one.
    await v.call("presence", status="away")
    second = await ask(customer, skill)
    assert await offered(p, second["id"])
    assert not await offered(rj, second["id"], 0.5)
    assert not await offered(rj, first["id"], 0.1)
    # The public list hides the rejected expert and puts the verified first.
    r = await get(papi, "/api/experts", None, skill=skill)
    assert [e["id"] for e in r.json()["experts"]] == [vuser["id"], puser["id"]]
    r = await get(papi, f"/api/experts/{ruser['id']}", None)
    assert r.status_code == 200  # his page stays reachable by its link
    # The expert was told of his verification, and the audit log has it.
    notes = (await get(papi, "/api/notifications", vtoken)).json()["notifications"]
    assert [n["verification_status"] for n in notes if n["kind"] == "verification"] == ["verified"]
    audit = (await get(papi, "/api/audit", manager)).json()["entries"]
    assert [(e["action"], e["target_id"]) for e in audit][:2] == [
        ("expert.verification", ruser["id"]),
        ("expert.verification", vuser["id"]),
    ]


async def test_suspending_an_expert_closes_his_sockets_and_withdraws_his_offers(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path
) -> None:
    manager = await new_manager(pnode, papi, data_dir)
    skill = unique("skill")
    euser, etoken = await new_expert(papi, "Soon suspended", skills=(skill,))
    _, otoken = await new_expert(papi, "Other", skills=(skill,))
    e = await available(pnode, clients, etoken)
    _, ctoken = await new_customer(papi)
    customer = await clients.connect(pnode, ctoken)
    request = await ask(customer, skill)
    assert await offered(e, request["id"])
    direct = await ask(customer, skill, expert_id=euser["id"])
    assert await offered(e, direct["id"])

    r = await papi.http.post(
        f"/api/users/{euser['id']}/suspend", json={"reason": "chargebacks"}, headers=auth(manager)
    )
    assert r.status_code == 200 and r.json()["user"]["status"] == "suspended"
    for _ in range(200):
        if e.close_code is not None:
            break
        await asyncio.sleep(0.05)
    assert e.close_code == 4403
    # The direct request to him is declined; the other one goes on to the next expert.
    ev = await customer.wait_event(
        "request.update",
        lambda x: x["request_id"] == direct["id"] and x["status"] != "open",
        timeout=10,
    )
    assert ev["status"] == "declined"
    other = await available(pnode, clients, otoken)
    assert await offered(other, request["id"], 10)
    # He cannot come back until restored.
    r = await get(papi, "/api/me", etoken)
    assert r.status_code == 403
    r = await get(papi, f"/api/experts/{euser['id']}", None)
    assert r.status_code == 404
    r = await papi.http.post(f"/api/users/{euser['id']}/restore", json={}, headers=auth(manager))
    assert r.json()["user"]["status"] == "active"
    assert (await get(papi, "/api/me", etoken)).status_code == 200
    audit = (await get(papi, "/api/audit", manager)).json()["entries"]
    assert [e["action"] for e in audit][:2] == ["user.restore", "user.suspend"]


async def test_suspending_a_customer_cancels_his_open_requests(
    pnode: Node, papi: Api, clients: Clients, data_dir: Path
) -> None:
    manager = await new_manager(pnode, papi, data_dir)
    skill = unique("skill")
    _, etoken = await new_expert(papi, "Expert", skills=(skill,))
    e = await available(pnode, clients, etoken)
    cuser, ctoken = await new_customer(papi)
    customer = await clients.connect(pnode, ctoken)
    request = await ask(customer, skill)
    assert await offered(e, request["id"])
    r = await papi.http.post(
        f"/api/users/{cuser['id']}/suspend", json={"reason": "fraud"}, headers=auth(manager)
    )
    assert r.status_code == 200
    ev = await e.wait_event("offer.revoked", lambda x: x["request_id"] == request["id"])
    assert ev["reason"] == "cancelled"
    r = await papi.http.post(
        "/api/auth/login", json={"email": cuser["email"], "password": "password-123"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_reminders_and_direct_requests_also_go_out_as_texts(
    pnode: Node, papi: Api, clients: Clients, texts: LogSender
) -> None:
    skill = unique("skill")
    euser, etoken = await new_expert(papi, "Texted", skills=(skill,))
    r = await papi.http.put(
        "/api/me/phone", json={"phone": "+1 415 555 0100"}, headers=auth(etoken)
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["phone"] == "+14155550100"
    assert (await get(papi, "/api/me", etoken)).json()["user"]["phone"] == "+14155550100"
    _, ctoken = await new_customer(papi)
    customer = await clients.connect(pnode, ctoken)
    e = await clients.connect(pnode, etoken)

    await ask(customer, skill, expert_id=euser["id"])
    # A scheduled session 5 s from now: the 3 s reminder is texted too.
    start = datetime.now(UTC) + timedelta(seconds=5)
    when = start.isoformat(timespec="milliseconds")
    reply = await customer.call(
        "request.create",
        kind="scheduled",
        title="Later",
        skills=[skill],
        language="en",
        proposed_times=[when],
    )
    rid = reply["request"]["id"]
    offer = await e.wait_event("offer.new", lambda x: x["offer"]["request_id"] == rid)
    await e.call("offer.accept", request_id=rid, time=offer["offer"]["proposed_times"][0])
    await e.wait_event("reminder", timeout=15)
    for _ in range(100):
        subjects = [m.subject for m in texts.sent if m.address == "+14155550100"]
        if len(subjects) >= 2:
            break
        await asyncio.sleep(0.05)
    assert any(x.startswith("Direct request") for x in subjects), subjects
    assert any(x.startswith("Reminder") for x in subjects), subjects
    assert all(m.channel == "sms" for m in texts.sent)
    # A customer without a phone got no text.
    assert {m.address for m in texts.sent} == {"+14155550100"}
    # Removing the number stops the texts.
    r = await papi.http.put("/api/me/phone", json={"phone": None}, headers=auth(etoken))
    assert r.json()["user"]["phone"] is None
