"""Screenshots of every portal page, filled with realistic data made through the API.

``python -m tests.browser.screenshots [OUT_DIR]`` writes them to
``docs/screenshots/`` (default); ``tests/browser/test_screenshots.py`` runs the
same into a temporary directory, so that the script keeps working.

The history spans months: the node runs on a clock set back about ten weeks and
moved forward to today while the data is made (sessions bill real minutes of
that clock, payouts run for months that have ended). Everything else is real:
the node, its SQLite file, the sockets, the HTTP API and Chromium.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from clients.rtclient import Api, Client
from tests.browser.conftest import VIEWPORT, Person, Site, chromium
from tests.servers import node_settings, run_node

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "new-requests",
    "upcoming-sessions",
    "session-history",
    "session-details",
    "my-earnings",
    "session-summary",
    "transaction-record",
    "payout-profile",
    "expert-profile",
    "manager-console",
    "live-session",
]


class TimeMachine:
    """The wall clock set back by ``back``, moved forward on demand (never past now)."""

    def __init__(self, back: timedelta) -> None:
        self.offset = back

    def now(self) -> datetime:
        return datetime.now(UTC) - self.offset

    def forward(self, **delta: float) -> None:
        self.offset = max(timedelta(0), self.offset - timedelta(**delta))

    def to(self, before_now: timedelta) -> None:
        """Move to ``before_now`` before the real time (only forward)."""
        self.offset = min(self.offset, before_now)


class Story:
    """The marketplace's past, made one session at a time."""

    def __init__(self, site: Site, clock: TimeMachine, expert: Person) -> None:
        self.site = site
        self.clock = clock
        self.expert = expert

    async def session(
        self,
        customer: Person,
        title: str,
        minutes: float,
        chat: list[tuple[str, str]],
        *,
        code: tuple[str, str] | None = None,
        files: tuple[str, ...] = (),
        recording: bool = False,
        discount_pct: int = 0,
        stars: int | None = None,
        comment: str = "",
    ) -> dict[str, Any]:
        """An instant session: request, accept, chat, ``minutes`` of billing, end, review."""
        e = await Client.connect(self.site.node.ws, self.expert.token)
        c = await Client.connect(self.site.node.ws, customer.token)
        try:
            await e.call("presence", status="available")
            await c.call(
                "request.create",
                kind="instant",
                title=title,
                description=chat[0][1] if chat else "",
                skills=["unity"],
                language="en",
            )
            offer = await e.wait_event("offer.new", timeout=30)
            sid = (await e.call("offer.accept", request_id=offer["offer"]["request_id"]))[
                "session"
            ]["id"]
            for client in (e, c):
                await client.call("session.join", session_id=sid)
            await e.call("billing.start", session_id=sid)
            for i, (who, text) in enumerate(chat):
                sender = c if who == "c" else e
                await sender.call(
                    "message.send", session_id=sid, cid=f"m{i}", kind="text", text=text
                )
                self.clock.forward(seconds=minutes * 60 / (len(chat) + 1))
            if code:
                await e.call(
                    "message.send",
                    session_id=sid,
                    cid="code",
                    kind="code",
                    code={"language": code[0], "source": code[1]},
                )
            for name in files:
                att = await self.upload(customer, sid, name, "file")
                await c.call(
                    "message.send", session_id=sid, cid="f-" + name, kind="attachment",
                    attachment_id=att["id"],
                )  # fmt: skip
            if recording:
                await self.upload(self.expert, sid, "session-recording.webm", "recording")
            self.clock.forward(seconds=minutes * 60 / (len(chat) + 1))
            await e.call("session.end", session_id=sid, discount_pct=discount_pct)
            await e.call("presence", status="away")
        finally:
            await e.close()
            await c.close()
        if stars:
            await self.site.call(
                customer,
                "POST",
                f"/api/sessions/{sid}/review",
                json={"stars": stars, **({"comment": comment} if comment else {})},
            )
        self.clock.forward(hours=5)
        session: dict[str, Any] = (await self.site.call(customer, "GET", f"/api/sessions/{sid}"))[
            "session"
        ]
        return session

    async def live(
        self,
        customer: Person,
        title: str,
        chat: list[tuple[str, str]],
        code: tuple[str, str],
        file: str,
    ) -> tuple[str, list[Client]]:
        """An instant session still going on: chat (the code after the second-last line, the
        file after the first), billing running. Its id, and the two sockets, left open so
        that both are in the room: the caller closes them."""
        e = await Client.connect(self.site.node.ws, self.expert.token)
        c = await Client.connect(self.site.node.ws, customer.token)
        try:
            await e.call("presence", status="available")
            await c.call(
                "request.create", kind="instant", title=title, description=chat[0][1],
                skills=["shaders"], language="en",
            )  # fmt: skip
            offer = await e.wait_event("offer.new", timeout=30)
            sid = (await e.call("offer.accept", request_id=offer["offer"]["request_id"]))[
                "session"
            ]["id"]
            await e.call("presence", status="away")
            for client in (e, c):
                await client.call("session.join", session_id=sid)
            await e.call("billing.start", session_id=sid)
            for i, (who, text) in enumerate(chat):
                sender = c if who == "c" else e
                if i == len(chat) - 1:
                    await e.call(
                        "message.send", session_id=sid, cid="code", kind="code",
                        code={"language": code[0], "source": code[1]},
                    )  # fmt: skip
                    self.clock.forward(minutes=3)
                await sender.call(
                    "message.send", session_id=sid, cid=f"m{i}", kind="text", text=text
                )
                if i == 0:
                    att = await self.upload(customer, sid, file, "file")
                    await c.call(
                        "message.send", session_id=sid, cid="file", kind="attachment",
                        attachment_id=att["id"],
                    )  # fmt: skip
                self.clock.forward(minutes=2)
        except BaseException:
            await e.close()
            await c.close()
            raise
        return sid, [e, c]

    async def upload(self, who: Person, sid: str, name: str, kind: str) -> dict[str, Any]:
        body = (f"{name}: captured for the session\n" * 40).encode()
        r = await self.site.api.http.post(
            "/api/attachments",
            headers=self.site.auth(who),
            data={"session_id": sid, "kind": kind},
            files={"file": (name, body, "application/octet-stream")},
        )
        r.raise_for_status()
        att: dict[str, Any] = r.json()["attachment"]
        return att

    async def claim(self, customer: Person, session: dict[str, Any], reason: str) -> dict[str, Any]:
        out: dict[str, Any] = (
            await self.site.call(
                customer,
                "POST",
                f"/api/sessions/{session['id']}/refund-claim",
                json={"reason": reason},
            )
        )["claim"]
        return out

    async def payouts(self, manager: Person, month: str) -> None:
        await self.site.call(manager, "POST", "/api/payouts/run", json={"month": month})


SHADOW_SETUP = """\
var urp = (UniversalRenderPipelineAsset)GraphicsSettings.currentRenderPipeline;
urp.shadowDepthBias = 0.5f;
urp.shadowNormalBias = 0.4f;
urp.shadowCascadeCount = 4;"""


DISSOLVE = """\
float edge = smoothstep(_Cutoff, _Cutoff + _EdgeWidth, noise);
half3 glow = saturate(_EdgeColor.rgb * _EdgeIntensity) * (1 - edge);
o.Emission = glow;
clip(noise - _Cutoff);"""


async def decide(
    site: Site, manager: Person, claim: dict[str, Any], outcome: str, note: str
) -> None:
    await site.call(
        manager,
        "POST",
        f"/api/claims/{claim['id']}/decision",
        json={"outcome": outcome, "note": note},
    )


def month_of(t: datetime) -> str:
    return f"{t.year:04d}-{t.month:02d}"


async def make_story(site: Site, clock: TimeMachine) -> dict[str, Any]:
    """Experts, customers, three months of sessions, claims, reviews and payouts."""
    manager = await site.manager("Morgan Lee")
    ana = await site.expert(
        "Ana Kovač",
        title="Senior Unity developer · rendering and performance",
        skills=["unity", "c#", "shaders", "urp", "profiling"],
        languages=["en", "de", "hr"],
        years_experience=11,
        rate_cents_per_15min=3000,
        bio=(
            "Eleven years of shipping Unity games on mobile and console. I help with "
            "shaders, the render pipelines, frame time and memory, and build sizes."
        ),
    )
    diego = await site.expert("Diego Ramos", title="Gameplay programmer", skills=["unity", "ai"])
    mei = await site.expert("Mei Chen", title="Technical artist", skills=["shaders", "vfx"])
    ben = await site.customer("Ben Ortiz")
    chloe = await site.customer("Chloe Martin")
    dev = await site.customer("Dev Patel")
    for who, status in ((ana, "verified"), (mei, "verified"), (diego, "pending")):
        await site.call(
            manager, "PUT", f"/api/experts/{who.id}/verification", json={"status": status}
        )
    await site.call(
        ana,
        "PUT",
        "/api/me/payout-profile",
        json={
            "billing": {
                "holder_name": "Ana Kovač",
                "account_type": "iban",
                "iban": "DE89 3704 0044 0532 0130 00",
            },
            "address": {
                "line1": "Oranienstraße 24",
                "city": "Berlin",
                "postal_code": "10999",
                "country": "DE",
            },
            "tax": {"form": "W-8BEN", "legal_name": "Ana Kovač", "tax_id": "HR 12345678903"},
        },
    )
    story = Story(site, clock, ana)

    # About ten weeks ago.
    await story.session(
        ben, "URP shader pink on Android", 35,
        [("c", "My custom shader renders pink on Android only."),
         ("e", "Is it in the Always Included Shaders list?"),
         ("c", "No... adding it now."), ("e", "Also strip the unused variants.")],
        stars=5, comment="Found it in minutes. Clear explanations.",
    )  # fmt: skip
    await story.session(
        chloe, "Frame spikes when enemies spawn", 50,
        [("c", "Every wave spawn costs 40 ms."), ("e", "Let's open the profiler."),
         ("e", "It's Instantiate plus GC: pool them.")],
        stars=5, comment="The pooling fix took our spikes away.",
    )  # fmt: skip
    clock.forward(days=6)
    await story.session(
        dev, "Addressables build is 2 GB", 25,
        [("c", "The Android build doubled."), ("e", "Two groups include the same textures.")],
        stars=4,
    )  # fmt: skip

    # About six weeks ago: the first month is paid out.
    first_month = month_of(clock.now())
    clock.to(timedelta(days=44))
    await story.payouts(manager, first_month)
    await story.session(
        ben, "Lightmaps bake for hours", 40,
        [("c", "Progressive CPU takes 4 hours."), ("e", "Switch to GPU and lower the texels.")],
        stars=4, comment="Helpful.",
    )  # fmt: skip
    refunded = await story.session(
        dev, "NavMesh agents stuck at doorways", 30,
        [("c", "Agents stop at every door."), ("e", "Let's check the agent radius."),
         ("c", "Still stuck."), ("e", "I need the scene to look further.")],
    )  # fmt: skip
    claim = await story.claim(dev, refunded, "The problem was not solved.")
    await decide(site, manager, claim, "refund", "No fix was found in the session.")
    denied = await story.session(
        chloe, "Timeline signals fire twice", 20,
        [("c", "Signals fire twice in play mode."), ("e", "Two receivers on the same object.")],
        stars=3,
    )  # fmt: skip
    claim = await story.claim(chloe, denied, "Too expensive for a small fix.")
    await decide(site, manager, claim, "deny", "The issue was solved in the session.")

    # About two weeks ago: the second month is paid out.
    second_month = month_of(clock.now())
    clock.to(timedelta(days=14))
    if second_month != month_of(clock.now()):
        await story.payouts(manager, second_month)
    await story.session(
        ben, "IL2CPP build fails on iOS", 30,
        [("c", "Xcode fails to link."), ("e", "A plugin ships an arm64 slice twice.")],
        stars=5, comment="Saved our release day.",
    )  # fmt: skip

    # Today.
    clock.to(timedelta(hours=14))
    disputed = await story.session(
        chloe, "Shadow acne on the terrain", 45,
        [("c", "The terrain shows striped shadows at dusk."),
         ("e", "That is shadow acne. Which bias settings are you on?"),
         ("c", "Depth bias 1, normal bias 0."),
         ("e", "Raise the normal bias to 0.4 and check the cascade split."),
         ("c", "Better, but now objects float a little."),
         ("e", "Then lower the depth bias to 0.5: here is the setup.")],
        code=("csharp", SHADOW_SETUP),
        files=("terrain-shadows.png",), recording=True, stars=2,
        comment="It helped a bit, but the floating was not fixed.",
    )  # fmt: skip
    claim = await story.claim(
        chloe, disputed, "The floating objects were not fixed; I had to ask elsewhere."
    )
    await site.call(
        ana,
        "POST",
        f"/api/claims/{claim['id']}/dispute",
        json={
            "summary": "Acne was fixed in the session. Floating needs a lower depth bias per "
            "light, which I showed; the customer ended the session before trying it."
        },
    )
    open_claim = await story.session(
        dev, "Input System loses the gamepad", 15,
        [("c", "After a scene load the gamepad stops."), ("e", "Is the PlayerInput persisted?")],
    )  # fmt: skip
    await story.claim(dev, open_claim, "The expert had to leave early.")

    # Going on now: Mei helps Dev since about twenty minutes (shot last, "live-session").
    clock.to(timedelta(minutes=21))
    live_sid, live_sockets = await Story(site, clock, mei).live(
        dev, "Dissolve shader has black edges on iOS",
        [("c", "My dissolve shader gets black edges on iOS; the editor looks fine."),
         ("e", "Thanks for the capture. Which precision does the edge color use?"),
         ("c", "Half, it's a Shader Graph exported to HLSL."),
         ("e", "The glow overflows half on Metal. Clamp it before the emission:"),
         ("c", "That fixed it on the iPhone 12! Checking the iPad now.")],
        code=("hlsl", DISSOLVE),
        file="dissolve-ios.png",
    )  # fmt: skip
    clock.to(timedelta(0))
    return {
        "live": (mei, live_sid, live_sockets),
        "manager": manager,
        "ana": ana,
        "customers": (ben, chloe, dev),
        "details": disputed,
        "diego": diego,
    }


async def book_and_ask(site: Site, expert: Person, customers: tuple[Person, ...]) -> None:
    """Two scheduled sessions booked, then one instant and one scheduled request open."""
    ben, chloe, dev = customers
    day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    e = await Client.connect(site.node.ws, expert.token)
    try:
        for customer, title, start in (
            (ben, "Code review: save system", day.replace(hour=15)),
            (dev, "Profiling a crowded city scene", day.replace(hour=9) + timedelta(days=2)),
        ):
            c = await Client.connect(site.node.ws, customer.token)
            try:
                times = [start.isoformat(), (start + timedelta(hours=2)).isoformat()]
                await c.call(
                    "request.create", kind="scheduled", title=title, description="",
                    skills=["unity"], language="en", proposed_times=times,
                    expert_id=expert.id,
                )  # fmt: skip
                offer = await e.wait_event("offer.new", timeout=30)
                await e.call("offer.accept", request_id=offer["offer"]["request_id"], time=times[0])
            finally:
                await c.close()
        await e.call("presence", status="available")
    finally:
        await e.close()
    c = await Client.connect(site.node.ws, chloe.token)
    d = await Client.connect(site.node.ws, ben.token)
    try:
        await c.call(
            "request.create", kind="instant", title="Particles vanish on Metal",
            description="VFX Graph particles disappear on iPhone 12 only; fine in the editor.",
            skills=["unity", "shaders"], language="en",
        )  # fmt: skip
        await d.call(
            "request.create", kind="scheduled", title="Plan a move from Built-in to URP",
            description="A 3-year-old project, ~400 materials. I'd like a migration plan.",
            skills=["urp"], language="en",
            proposed_times=[(day + timedelta(days=1, hours=h)).isoformat() for h in (10, 13, 16)],
        )  # fmt: skip
    finally:
        await c.close()
        await d.close()


async def shoot(page: Page, out: Path, name: str) -> None:
    """A PNG of the viewport (1280x800), after the page settled."""
    await page.wait_for_load_state("networkidle")
    await page.mouse.move(0, 0)
    await page.screenshot(path=str(out / f"{name}.png"), full_page=False)


async def take(out: Path) -> list[Path]:
    """Make the story on a fresh node and save a PNG of each portal page into ``out``."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    clock = TimeMachine(timedelta(days=72))
    with tempfile.TemporaryDirectory(prefix="rt-shots-") as tmp:
        settings = node_settings(
            Path(tmp),
            billing_check="1h",
            offer_ttl="30m",
            request_ttl="1h",
            token_ttl="4000h",
            refund_window="30d",
        )
        async with run_node(settings, clock=clock) as node, chromium() as browser:
            api = Api(node.http)
            site = Site(node, api, browser)
            live_sockets: list[Client] = []
            try:
                story = await make_story(site, clock)
                live_sockets = story["live"][2]
                ana, manager = story["ana"], story["manager"]
                ep = await site.signed_in(ana)
                await book_and_ask(site, ana, story["customers"])
                await expect(ep.get_by_test_id("offer")).to_have_count(2)
                await shoot(ep, out, "new-requests")

                await ep.get_by_test_id("nav-upcoming").click()
                await expect(ep.get_by_test_id("upcoming-session")).to_have_count(2)
                await shoot(ep, out, "upcoming-sessions")

                await ep.get_by_test_id("nav-history").click()
                await expect(ep.get_by_test_id("history-row").nth(8)).to_be_visible()
                await shoot(ep, out, "session-history")

                await ep.goto(f"{site.url}/#/sessions/{story['details']['id']}")
                messages = ep.get_by_test_id("transcript").get_by_test_id("message")
                await expect(messages).to_have_count(8)
                await shoot(ep, out, "session-details")

                await ep.get_by_test_id("nav-earnings").click()
                await expect(ep.get_by_test_id("month-row").first).to_be_visible()
                await expect(ep.get_by_test_id("payouts-table")).to_be_visible()
                await shoot(ep, out, "my-earnings")
                await ep.get_by_test_id("earnings-tab-summary").click()
                await expect(ep.get_by_test_id("summary-row").first).to_be_visible()
                await shoot(ep, out, "session-summary")
                await ep.get_by_test_id("earnings-tab-transactions").click()
                await expect(ep.get_by_test_id("tx-row").first).to_be_visible()
                await shoot(ep, out, "transaction-record")

                await ep.get_by_test_id("nav-payout").click()
                await expect(ep.get_by_test_id("payout-complete")).to_have_text("Complete")
                await shoot(ep, out, "payout-profile")

                cp = await site.signed_in(story["customers"][0], f"#/experts/{ana.id}")
                await expect(cp.get_by_test_id("review").first).to_be_visible()
                await shoot(cp, out, "expert-profile")

                mp = await site.signed_in(manager)
                await expect(mp.get_by_test_id("claim-card")).to_have_count(2)
                first_claim = mp.get_by_test_id("claim-card").first
                await first_claim.get_by_test_id("claim-transcript").click()
                await shoot(mp, out, "manager-console")

                mei, live_sid, _ = story["live"]
                lp = await site.signed_in(mei, f"#/room/{live_sid}")
                await expect(lp.get_by_test_id("message")).to_have_count(7)
                await expect(lp.get_by_test_id("room-people")).to_contain_text("Dev Patel — here")
                await expect(lp.get_by_test_id("billing-state")).to_have_text("Billing running")
                await shoot(lp, out, "live-session")
            finally:
                for sock in live_sockets:
                    await sock.close()
                for c in site.contexts:
                    await c.close()
                await api.aclose()
            if site.errors:
                raise RuntimeError("errors in the page:\n" + "\n".join(site.errors))
    assert VIEWPORT == {"width": 1280, "height": 800}
    return [out / f"{name}.png" for name in PAGES]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for path in asyncio.run(take(out)):
        print(f"{path} {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
