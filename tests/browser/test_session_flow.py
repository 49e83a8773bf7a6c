"""An expert and a customer, each in a browser, from a request to an ended session."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Site

pytestmark = pytest.mark.timeout(300)


async def test_request_to_ended_session_in_two_browsers(site: Site) -> None:
    expert = await site.expert("Erin Expert")
    customer = await site.customer("Carl Customer")
    ep = await site.signed_in(expert)
    cp = await site.signed_in(customer)

    # The expert turns available; the customer asks for instant help.
    await expect(ep.get_by_test_id("offers-empty")).to_contain_text("Switch to Available")
    await ep.get_by_test_id("presence-toggle").click()
    await expect(ep.get_by_test_id("presence-toggle")).to_have_attribute("aria-pressed", "true")

    await expect(cp.get_by_test_id("request-form")).to_be_visible()
    await cp.get_by_test_id("req-title").fill("Shader does not compile on Android")
    await cp.get_by_test_id("req-description").fill("URP, Unity 2022.3, only on Mali GPUs.")
    await cp.get_by_test_id("req-skills").fill("unity, shaders")
    await cp.get_by_test_id("req-language").fill("en")
    await cp.get_by_test_id("req-submit").click()
    request = cp.get_by_test_id("request").filter(has_text="Shader does not compile")
    await expect(request.get_by_test_id("request-status")).to_have_text("open")
    await expect(request.get_by_test_id("request-notified")).to_have_text("1 expert notified")

    # A question before accepting, both ways.
    offer = ep.get_by_test_id("offer").filter(has_text="Shader does not compile")
    await expect(offer).to_be_visible()
    await expect(ep.get_by_test_id("nav-requests")).to_contain_text("1")
    await offer.get_by_test_id("thread-input").fill("Which render pipeline?")
    await offer.get_by_test_id("thread-send").click()
    await expect(request.get_by_test_id("request-message")).to_contain_text(
        "Which render pipeline?"
    )

    # The expert accepts: both rooms open.
    await offer.get_by_test_id("offer-accept").click()
    await expect(ep.get_by_test_id("room-title")).to_have_text("Shader does not compile on Android")
    await expect(cp.get_by_test_id("room-title")).to_have_text("Shader does not compile on Android")
    await expect(ep.get_by_test_id("room-status")).to_have_text("active")
    await expect(ep.get_by_test_id("room-people")).to_contain_text("Carl Customer — here")
    await expect(cp.get_by_test_id("room-people")).to_contain_text("Erin Expert — here")

    # Chat, both ways (Enter sends).
    await cp.get_by_test_id("message-input").fill("Hi! It fails with 'undeclared identifier'.")
    await cp.get_by_test_id("message-input").press("Enter")
    await expect(ep.get_by_test_id("room-transcript")).to_contain_text("undeclared identifier")
    await ep.get_by_test_id("message-input").fill("Let me look at the shader.")
    await ep.get_by_test_id("message-send").click()
    await expect(cp.get_by_test_id("room-transcript")).to_contain_text("Let me look at the shader.")
    # A code message too.
    await ep.get_by_test_id("mode-code").check()
    await ep.get_by_test_id("code-language").fill("hlsl")
    await ep.get_by_test_id("code-input").fill("half4 frag(v2f i) : SV_Target { return 0; }")
    await ep.get_by_test_id("message-send").click()
    await expect(cp.get_by_test_id("room-transcript").locator("pre")).to_contain_text("SV_Target")
    # Every message shown once, in order, on both sides.
    await expect(cp.get_by_test_id("message")).to_have_count(3)
    await expect(ep.get_by_test_id("message")).to_have_count(3)
    await expect(ep.get_by_test_id("room-outbox").get_by_test_id("outbox-entry")).to_have_count(0)

    # Billing: started by the expert, seen running by both; time passes on the server.
    await ep.get_by_test_id("billing-start").click()
    await expect(ep.get_by_test_id("billing-state")).to_have_text("Billing running")
    await expect(cp.get_by_test_id("billing-state")).to_have_text("Billing running")
    await expect(ep.get_by_test_id("billing-clock")).to_have_text(re.compile(r"^0:0[3-9]$"))

    # The expert ends with a 10 % discount (after confirming).
    await ep.get_by_test_id("end-discount").fill("10")
    await ep.get_by_test_id("end-session").click()
    await ep.get_by_test_id("end-confirm-yes").click()
    summary = ep.get_by_test_id("room-summary")
    await expect(summary).to_contain_text("The session has ended.")
    await expect(summary).to_contain_text("10 %")
    await expect(ep.get_by_test_id("room-status")).to_have_text("ended")
    await expect(cp.get_by_test_id("room-status")).to_have_text("ended")
    await expect(cp.get_by_test_id("room-summary")).to_contain_text("10 %")
    await expect(cp.get_by_test_id("message-input")).to_be_disabled()

    # What the server stored agrees with what the pages show.
    sessions = await site.call(customer, "GET", "/api/sessions", params={"status": "ended"})
    (ended,) = sessions["sessions"]
    assert ended["summary"]["discount_pct"] == 10
    assert ended["summary"]["billable_seconds"] >= 3
    assert ended["summary"]["charge_cents"] > 0
    dollars, cents = divmod(ended["summary"]["charge_cents"], 100)
    charge = f"${dollars}.{cents:02d}"
    await expect(cp.get_by_test_id("room-summary")).to_contain_text(charge)
    transcript = await site.call(customer, "GET", f"/api/sessions/{ended['id']}/messages")
    assert [m["seq"] for m in transcript["messages"]] == [1, 2, 3]

    # The customer goes on to the details page from the summary.
    await cp.get_by_test_id("summary-details").click()
    await expect(cp.get_by_test_id("details-title")).to_have_text(
        "Shader does not compile on Android"
    )
    await expect(cp.get_by_test_id("details-charge")).to_have_text(charge)
    await expect(cp.get_by_test_id("transcript").get_by_test_id("message")).to_have_count(3)


async def test_scheduled_session_booked_and_started_from_upcoming(site: Site) -> None:
    expert = await site.expert("Erin Expert")
    customer = await site.customer("Carl Customer")
    ep = await site.signed_in(expert)
    cp = await site.signed_in(customer)

    # The customer proposes a time a few minutes ahead (inside the early-start window).
    await cp.get_by_test_id("req-kind-scheduled").check()
    soon = await cp.evaluate(
        """() => { const d = new Date(Date.now() + 6 * 60000);
                   const p = (n) => String(n).padStart(2, "0");
                   return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}` +
                          `T${p(d.getHours())}:${p(d.getMinutes())}`; }"""
    )
    await cp.get_by_test_id("req-time").first.fill(soon)
    await cp.get_by_test_id("req-title").fill("Pair on the save system")
    await cp.get_by_test_id("req-skills").fill("unity")
    await cp.get_by_test_id("req-expert").fill(expert.id)
    await cp.get_by_test_id("req-submit").click()
    request = cp.get_by_test_id("request").filter(has_text="Pair on the save system")
    await expect(request.get_by_test_id("request-status")).to_have_text("open")

    # The expert books it (offline experts get scheduled offers too; he is online here).
    offer = ep.get_by_test_id("offer").filter(has_text="Pair on the save system")
    await expect(offer.get_by_test_id("offer-time")).to_have_count(1)
    await offer.get_by_test_id("offer-accept").click()
    await expect(ep).to_have_url(f"{site.url}/#/upcoming")
    card = ep.get_by_test_id("upcoming-session").filter(has_text="Pair on the save system")
    await expect(card).to_contain_text("With Carl Customer (customer)")
    await expect(request.get_by_test_id("request-outcome")).to_contain_text("Booked by Erin Expert")

    # Start: the expert waits in the room until the customer starts too.
    await card.get_by_test_id("upcoming-start").click()
    await expect(ep.get_by_test_id("room-title")).to_have_text("Pair on the save system")
    await expect(ep.get_by_test_id("room-waiting")).to_contain_text("Waiting for Carl Customer")
    await cp.get_by_test_id("nav-upcoming").click()
    ccard = cp.get_by_test_id("upcoming-session").filter(has_text="Pair on the save system")
    await expect(ccard).to_contain_text("Erin Expert: joined")
    await ccard.get_by_test_id("upcoming-start").click()

    # Both in: the session is active on both sides and the chat is open.
    await expect(cp.get_by_test_id("room-status")).to_have_text("active")
    await expect(ep.get_by_test_id("room-status")).to_have_text("active")
    await expect(ep.get_by_test_id("room-waiting")).to_be_hidden()
    await expect(ep.get_by_test_id("room-people")).to_contain_text("Carl Customer — here")
    await cp.get_by_test_id("message-input").fill("Ready when you are.")
    await cp.get_by_test_id("message-input").press("Enter")
    await expect(ep.get_by_test_id("room-transcript")).to_contain_text("Ready when you are.")
    await expect(cp.get_by_test_id("message")).to_have_count(1)
