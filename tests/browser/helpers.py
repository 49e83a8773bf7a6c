"""Data for the browser tests made through the real protocol (sockets and HTTP)."""

from __future__ import annotations

import asyncio
from typing import Any

from clients.rtclient import Client
from tests.browser.conftest import Person, Site


async def ended_session(
    site: Site,
    customer: Person,
    expert: Person,
    title: str,
    *,
    chat: tuple[tuple[str, str], ...] = (),
    code: tuple[str, str] | None = None,
    billed_seconds: float = 2.5,
    discount_pct: int = 0,
) -> dict[str, Any]:
    """An instant session from request to end, with billed time: its ended session object.

    ``chat`` is ``(who, text)`` pairs, who being ``"customer"`` or ``"expert"``;
    ``code`` a ``(language, source)`` the expert sends.
    """
    e = await Client.connect(site.node.ws, expert.token)
    c = await Client.connect(site.node.ws, customer.token)
    try:
        await e.call("presence", status="available")
        await c.call(
            "request.create",
            kind="instant",
            title=title,
            description="Details in the chat.",
            skills=["unity"],
            language="en",
        )
        offer = await e.wait_event("offer.new", timeout=30)
        accepted = await e.call("offer.accept", request_id=offer["offer"]["request_id"])
        sid = accepted["session"]["id"]
        for client in (e, c):
            await client.call("session.join", session_id=sid)
        for i, (who, text) in enumerate(chat):
            sender = c if who == "customer" else e
            await sender.call("message.send", session_id=sid, cid=f"m{i}", kind="text", text=text)
        if code:
            await e.call(
                "message.send",
                session_id=sid,
                cid="code",
                kind="code",
                code={"language": code[0], "source": code[1]},
            )
        await e.call("billing.start", session_id=sid)
        await asyncio.sleep(billed_seconds)
        await e.call("session.end", session_id=sid, discount_pct=discount_pct)
        await e.call("presence", status="away")
    finally:
        await e.close()
        await c.close()
    session: dict[str, Any] = (await site.call(customer, "GET", f"/api/sessions/{sid}"))["session"]
    assert session["status"] == "ended"
    assert session["summary"]["charge_cents"] > 0
    return session
