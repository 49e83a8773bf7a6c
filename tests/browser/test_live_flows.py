"""The live flows in real Chromium: one customer and three experts, each in a browser.

1. An instant request offered to three experts; two accept at the same moment and exactly
   one wins; chat with code and an attachment; the customer's network drops while both
   sides write (nothing lost or doubled, in the pages or in the stored transcript);
   billing time and amount; the end with a discount, as shown and as stored.
2. A scheduled request with three proposed times: booked, reminded, and cancelled as a
   no-show. The node's clock is shifted forward (:class:`tests.servers.ShiftClock`) so
   that the reminders and the no-show fall due at once; the pages run on real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, FilePayload, Page, WebSocket, expect

from clients.rtclient import Api
from rtserver.clock import from_wire
from tests.browser.conftest import Site
from tests.servers import ShiftClock, node_settings, run_node

pytestmark = pytest.mark.timeout(300)

TITLE = "Player falls through the floor after a scene load"
LOG = b"".join(b"[%03d] Physics: collider of 'Floor' is disabled\n" % i for i in range(120))
SNIPPET = """void OnEnable() {
    SceneManager.sceneLoaded += (scene, mode) => floor.enabled = true;
}"""


class Frames:
    """What one page's sockets sent and received, decoded (Playwright's websocket events)."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._socket)

    def _socket(self, ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: self._keep(self.sent, payload))
        ws.on("framereceived", lambda payload: self._keep(self.received, payload))

    @staticmethod
    def _keep(into: list[dict[str, Any]], payload: str | bytes) -> None:
        with contextlib.suppress(ValueError, TypeError):  # not JSON: not ours to read
            into.append(json.loads(payload))

    def replies_to(self, type_: str) -> list[dict[str, Any]]:
        """The replies (ok or error) to every command of ``type_`` this page sent."""
        ids = {f["id"] for f in self.sent if f.get("type") == type_}
        return [f for f in self.received if f.get("type") in ("ok", "error") and f.get("re") in ids]


# What the room shows once billing has run 3 s or more (no upper bound: a slow machine).
AT_LEAST_3_S = re.compile(r"^(0:0[3-9]|0:[1-5]\d|[1-9]\d*:\d\d)$")
AT_LEAST_40_CENTS = re.compile(r"^\$(0\.[4-9]\d|[1-9][\d,]*\.\d\d)$")


def money(cents: int) -> str:
    dollars, rest = divmod(cents, 100)
    return f"${dollars:,}.{rest:02d}"


async def shown_messages(page: Page) -> list[tuple[int, str]]:
    """The transcript in the room as shown: (seq, text of the message) in page order."""
    rows = (
        await page.get_by_test_id("room-transcript")
        .get_by_test_id("message")
        .evaluate_all("els => els.map((e) => [Number(e.dataset.seq), e.innerText])")
    )
    return [(int(seq), str(text)) for seq, text in rows]


async def send_text(page: Page, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("message-input").press("Enter")


async def test_three_experts_race_chat_through_a_network_drop_and_end_with_a_discount(
    site: Site,
) -> None:
    customer = await site.customer("Carl Customer")
    experts = [await site.expert(n) for n in ("Erin Expert", "Eli Expert", "Ema Expert")]
    frames: list[Frames] = []
    epages: list[Page] = []
    for e in experts:
        page = await site.page()
        frames.append(Frames(page))  # from its first socket on
        epages.append(await site.signed_in(e, page=page))
    cp = await site.signed_in(customer)
    for ep in epages:
        await ep.get_by_test_id("presence-toggle").click()
        await expect(ep.get_by_test_id("presence-toggle")).to_have_attribute("aria-pressed", "true")

    # The customer asks; the request is offered to all three experts.
    await cp.get_by_test_id("req-title").fill(TITLE)
    await cp.get_by_test_id("req-description").fill("Only in builds, never in the editor.")
    await cp.get_by_test_id("req-skills").fill("unity")
    await cp.get_by_test_id("req-language").fill("en")
    await cp.get_by_test_id("req-submit").click()
    request = cp.get_by_test_id("request").filter(has_text=TITLE)
    await expect(request.get_by_test_id("request-notified")).to_have_text("3 experts notified")
    offers = [ep.get_by_test_id("offer").filter(has_text=TITLE) for ep in epages]
    for offer in offers:
        await expect(offer.get_by_test_id("offer-accept")).to_be_enabled()

    # Two experts accept at the same moment. The buttons are clicked in the pages' own
    # script: a Playwright click waits for its button to be enabled, and the loser's is
    # disabled as soon as the offer is revoked, which may come before that click.
    await asyncio.gather(
        *(o.get_by_test_id("offer-accept").evaluate("b => b.click()") for o in offers[:2])
    )
    # The one who did not click sees it taken, with why (the note stays 5 s, then the
    # offer leaves the list); so does the loser, below.
    await expect(offers[2].get_by_test_id("offer-gone")).to_have_text("Taken by another expert")
    await expect(cp.get_by_test_id("room-title")).to_have_text(TITLE)
    (active,) = (await site.call(customer, "GET", "/api/sessions", params={"status": "active"}))[
        "sessions"
    ]
    sid = active["id"]
    winner = [e.id for e in experts].index(active["expert"]["id"])
    assert winner in (0, 1), "only the two who clicked can have won"
    loser = 1 - winner
    ep, expert = epages[winner], experts[winner]
    await expect(ep.get_by_test_id("room-title")).to_have_text(TITLE)
    await expect(ep.get_by_test_id("room-status")).to_have_text("active")
    await expect(offers[loser].get_by_test_id("offer-gone")).to_have_text("Taken by another expert")
    for i in (loser, 2):
        await expect(epages[i].get_by_test_id("room-title")).to_have_count(0)
    for i in (loser, 2):
        await expect(epages[i].get_by_test_id("offer")).to_have_count(0)
        await expect(epages[i].get_by_test_id("offers-empty")).to_be_visible()
    # On the sockets (read once the offers left, seconds after any reply): exactly one
    # accept was answered ok; the loser's, if it went out before the revoke reached its
    # page, was answered offer_taken, and the page said so in words.
    accepts = [r for f in frames[:2] for r in f.replies_to("offer.accept")]
    assert [r["type"] for r in accepts].count("ok") == 1, accepts
    assert all(r["code"] == "offer_taken" for r in accepts if r["type"] == "error"), accepts
    if any(r["type"] == "error" for r in accepts):
        await expect(epages[loser].get_by_test_id("status")).to_contain_text(
            "Too late: another expert accepted"
        )
    await expect(cp.get_by_test_id("room-people")).to_contain_text(expert.name)

    # Chat: text, a code snippet, an attachment; both sides see each once.
    await expect(cp.get_by_test_id("room-people")).to_contain_text(f"{expert.name} — here")
    await send_text(cp, "Hi! The player falls through after loading level 2.")
    await ep.get_by_test_id("mode-code").check()
    await ep.get_by_test_id("code-language").fill("c#")
    await ep.get_by_test_id("code-input").fill(SNIPPET)
    await ep.get_by_test_id("message-send").click()
    await ep.get_by_test_id("mode-text").check()
    await cp.get_by_test_id("attach-input").set_input_files(
        files=FilePayload(name="player.log", mimeType="text/plain", buffer=LOG)
    )
    for page in (cp, ep):
        transcript = page.get_by_test_id("room-transcript")
        await expect(transcript.locator("pre")).to_have_text(SNIPPET)
        await expect(transcript.locator("figcaption")).to_have_text("c#")
        await expect(transcript.get_by_test_id("attachment-link")).to_have_text("player.log")
        await expect(page.get_by_test_id("message")).to_have_count(3)
    # The attachment downloads, byte for byte, on the other side.
    async with ep.expect_download() as got:
        await ep.get_by_test_id("room-transcript").get_by_test_id("attachment-link").click()
    download = await got.value
    assert download.suggested_filename == "player.log"
    saved = await asyncio.to_thread(Path(await download.path()).read_bytes)
    assert saved == LOG

    # The customer's network drops. The expert writes meanwhile; the customer writes too,
    # into the outbox.
    await cp.context.set_offline(True)
    await expect(cp.get_by_test_id("conn")).to_have_attribute("data-state", "offline")
    await expect(cp.get_by_test_id("conn")).to_contain_text("no network")
    await expect(ep.get_by_test_id("room-people")).to_contain_text("Carl Customer — not here")
    from_expert = [f"Expert while you were away #{i}" for i in range(1, 4)]
    for text in from_expert:
        await send_text(ep, text)
    await expect(ep.get_by_test_id("message")).to_have_count(6)
    await expect(ep.get_by_test_id("outbox-entry")).to_have_count(0)
    from_customer = [f"Customer typing offline #{i}" for i in range(1, 3)]
    for text in from_customer:
        await send_text(cp, text)
    outbox = cp.get_by_test_id("room-outbox").get_by_test_id("outbox-entry")
    await expect(outbox).to_have_count(2)
    await expect(outbox.first).to_contain_text("Sending…")
    await expect(cp.get_by_test_id("message")).to_have_count(3)

    # Back online: the missed messages arrive, the outbox goes out; nothing lost or doubled.
    await cp.context.set_offline(False)
    await expect(cp.get_by_test_id("conn")).to_have_attribute("data-state", "online")
    await expect(outbox).to_have_count(0)
    for page in (cp, ep):
        await expect(page.get_by_test_id("message")).to_have_count(8)
    stored = (await site.call(customer, "GET", f"/api/sessions/{sid}/messages"))["messages"]
    assert [m["seq"] for m in stored] == list(range(1, 9))
    stored_texts = [m["text"] for m in stored if m["kind"] == "text"]
    assert sorted(stored_texts[1:]) == sorted(from_expert + from_customer)
    assert len({m["cid"] for m in stored}) == 8
    # The customer's offline messages went after the expert's, which were stored first.
    assert stored_texts[-2:] == from_customer
    for page in (cp, ep):
        shown = await shown_messages(page)
        assert [seq for seq, _ in shown] == list(range(1, 9)), shown
        for (_, body), m in zip(shown, stored, strict=True):
            if m["kind"] == "text":
                assert body.endswith(m["text"]), (body, m)
    await expect(cp.get_by_test_id("room-people")).to_contain_text(f"{expert.name} — here")
    await expect(ep.get_by_test_id("room-people")).to_contain_text("Carl Customer — here")

    # Billing: started by the expert; both see the time and the amount run.
    await ep.get_by_test_id("billing-start").click()
    for page in (ep, cp):
        await expect(page.get_by_test_id("billing-state")).to_have_text("Billing running")
        await expect(page.get_by_test_id("billing-clock")).to_have_text(AT_LEAST_3_S)
        # $120.00 per 15 minutes: $0.40 after 3 s.
        await expect(page.get_by_test_id("billing-amount")).to_have_text(AT_LEAST_40_CENTS)

    # The end, with a 25 % discount, after confirming.
    await ep.get_by_test_id("end-discount").fill("25")
    await ep.get_by_test_id("end-session").click()
    await expect(ep.get_by_role("group", name="Confirm")).to_contain_text("with a 25 % discount")
    await ep.get_by_test_id("end-confirm-yes").click()
    for page in (ep, cp):
        await expect(page.get_by_test_id("room-status")).to_have_text("ended")
        await expect(page.get_by_test_id("room-summary")).to_contain_text("The session has ended.")
        await expect(page.get_by_test_id("room-summary")).to_contain_text("25 %")
    await expect(cp.get_by_test_id("message-input")).to_be_disabled()

    # The amounts shown are the ones stored, and follow the billing rule.
    summary = (await site.call(customer, "GET", f"/api/sessions/{sid}"))["session"]["summary"]
    assert summary["discount_pct"] == 25
    assert summary["billable_seconds"] >= 3
    rate = 12000  # the experts' rate per 15 minutes (tests/browser/conftest.py)
    exact = Decimal(rate * summary["billable_seconds"] * 75) / Decimal(900 * 100)
    assert summary["charge_cents"] == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    charge = money(summary["charge_cents"])
    await expect(cp.get_by_test_id("summary-list")).to_contain_text(f"Charge{charge}")
    await expect(ep.get_by_test_id("summary-list")).to_contain_text(f"Customer charged{charge}")
    await expect(ep.get_by_test_id("summary-list")).to_contain_text(
        f"Your earnings{money(summary['expert_earnings_cents'])}"
    )
    seconds = summary["billable_seconds"]
    await expect(cp.get_by_test_id("billing-clock")).to_have_text(
        f"{seconds // 60}:{seconds % 60:02d}"
    )


# -- a scheduled session: booked, reminded, not shown -------------------------------------


@pytest.fixture
async def shifted(tmp_path: Path, browser: Browser) -> AsyncIterator[tuple[Site, ShiftClock]]:
    """Like ``site``, on a node whose clock the test moves forward."""
    data = tmp_path / "data"
    data.mkdir()
    clock = ShiftClock()
    async with run_node(node_settings(data, billing_check="1s"), clock=clock) as node:
        api = Api(node.http)
        s = Site(node, api, browser)
        try:
            yield s, clock
        finally:
            for c in s.contexts:
                await c.close()
            await api.aclose()
    assert not s.errors, "errors in the page:\n" + "\n".join(s.errors)


async def shift_to(clock: ShiftClock, when: datetime) -> None:
    """Move the node's clock forward to ``when`` (its timers look every half second)."""
    clock.shift(seconds=(when - clock.now()).total_seconds())


async def test_scheduled_request_booked_reminded_and_cancelled_as_no_show(
    shifted: tuple[Site, ShiftClock],
) -> None:
    site, clock = shifted
    expert = await site.expert("Erin Expert")
    customer = await site.customer("Carl Customer")
    ep = await site.signed_in(expert)
    cp = await site.signed_in(customer)

    # Three proposed times, two, three and four hours ahead (local times in the form).
    title = "Review the save system before release"
    await cp.get_by_test_id("req-kind-scheduled").check()
    await cp.get_by_test_id("req-add-time").click()
    await cp.get_by_test_id("req-add-time").click()
    times = cp.get_by_test_id("req-time")
    await expect(times).to_have_count(3)
    for i, hours in enumerate((2, 3, 4)):
        local = await cp.evaluate(
            """(h) => { const d = new Date(Date.now() + h * 3600000);
                        const p = (n) => String(n).padStart(2, "0");
                        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}` +
                               `T${p(d.getHours())}:${p(d.getMinutes())}`; }""",
            hours,
        )
        await times.nth(i).fill(local)
    await cp.get_by_test_id("req-title").fill(title)
    await cp.get_by_test_id("req-skills").fill("unity")
    await cp.get_by_test_id("req-submit").click()
    request = cp.get_by_test_id("request").filter(has_text=title)
    await expect(request.get_by_test_id("request-status")).to_have_text("open")

    # The expert books the second time.
    offer = ep.get_by_test_id("offer").filter(has_text=title)
    await expect(offer.get_by_test_id("offer-time")).to_have_count(3)
    await offer.get_by_test_id("offer-time").nth(1).check()
    await offer.get_by_test_id("offer-accept").click()
    await expect(ep).to_have_url(f"{site.url}/#/upcoming")
    card = ep.get_by_test_id("upcoming-session").filter(has_text=title)
    await expect(card).to_contain_text("With Carl Customer (customer)")
    await expect(request.get_by_test_id("request-outcome")).to_contain_text("Booked by Erin Expert")
    (booked,) = (await site.call(customer, "GET", "/api/sessions", params={"status": "scheduled"}))[
        "sessions"
    ]
    starts = from_wire(booked["scheduled_at"])
    asked = (await site.call(customer, "GET", f"/api/requests/{booked['request_id']}"))["request"]
    proposed = sorted(from_wire(t) for t in asked["proposed_times"])
    assert len(proposed) == 3
    assert starts == proposed[1]
    assert timedelta(hours=2, minutes=58) < starts - datetime.now(UTC) <= timedelta(hours=3)
    await cp.get_by_test_id("nav-upcoming").click()
    ccard = cp.get_by_test_id("upcoming-session").filter(has_text=title)
    await expect(ccard).to_contain_text("With Erin Expert (expert)")

    # Thirty minutes before: both are reminded, on the page and in the bell.
    await shift_to(clock, starts - timedelta(minutes=30) + timedelta(seconds=2))
    for page in (ep, cp):
        toast = page.get_by_test_id("toast").filter(has_text="starts in 30 minutes")
        await expect(toast).to_contain_text(f"“{title}”")
        await expect(page.get_by_test_id("bell-count")).to_have_text("1")
    await cp.get_by_test_id("bell").click()
    await expect(cp.get_by_test_id("notification")).to_contain_text(f"Session “{title}” starts at")
    await expect(cp.get_by_test_id("notification")).to_contain_text("Reminder 30 minutes before")

    # Five minutes before, the expert starts (the page loads again to learn the node's
    # time) and waits in the room; the customer never comes.
    await shift_to(clock, starts - timedelta(minutes=5))
    for page in (ep, cp):
        ten = page.get_by_test_id("toast").filter(has_text="starts in 10 minutes")
        await expect(ten).to_have_count(1)
    await ep.reload()
    await expect(ep.get_by_test_id("conn")).to_have_attribute("data-state", "online")
    await card.get_by_test_id("upcoming-start").click()
    await expect(ep.get_by_test_id("room-waiting")).to_contain_text("Waiting for Carl Customer")
    await expect(ccard).to_contain_text("Erin Expert: joined")

    # Past the no-show window: cancelled, the customer pays the fee; both are told.
    await shift_to(clock, starts + timedelta(minutes=10, seconds=2))
    await expect(ep.get_by_test_id("room-status")).to_have_text("cancelled")
    await expect(ep.get_by_test_id("room-summary")).to_contain_text("The session was cancelled.")
    await expect(ep.get_by_test_id("toast").filter(has_text="no-show")).to_have_text(
        re.compile(
            re.escape(f"“{title}” was cancelled: no-show — Carl Customer did not join in time. ")
            + r"Carl Customer was charged \$5\.00; you receive it less the platform fee\."
        )
    )
    await expect(cp.get_by_test_id("toast").filter(has_text="no-show")).to_have_text(
        re.compile(
            re.escape(f"“{title}” was cancelled: no-show — you did not join in time. ")
            + r"You were charged \$5\.00\."
        )
    )
    gone = cp.get_by_test_id("cancelled-session").filter(has_text=title)
    await expect(gone.locator(".pill")).to_have_text("no-show")
    await expect(cp.get_by_test_id("upcoming-session")).to_have_count(0)

    stored = (await site.call(customer, "GET", f"/api/sessions/{booked['id']}"))["session"]
    assert stored["status"] == "cancelled"
    assert stored["cancellation"]["reason"] == "no_show"
    assert stored["cancellation"]["fee_cents"] == 500
    assert stored["cancellation"]["charged_user_id"] == customer.id
