"""The terminal client (`rtclient`), driven through tmux against a real node: an expert
signs in, goes available, accepts an offer, chats (text, code, a file) and ends the
session with a discount; the customer is the SDK."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rtclient import AsyncClient
from rtclient.models import BillingEvent, Message, OfferNew, RequestUpdate, SessionUpdate

from clients.rtclient import Api
from tests.servers import Node, new_customer, unique
from tests.tmux import Tmux, tmux_server

RTCLIENT = Path(sys.executable).parent / "rtclient"
PASSWORD = "password-123"


@pytest.fixture
async def tmux() -> AsyncIterator[Tmux]:
    async with tmux_server() as t:
        yield t


async def test_expert_accepts_chats_and_ends_with_a_discount(
    node: Node, api: Api, tmux: Tmux, tmp_path: Path
) -> None:
    email = f"{unique('e')}@example.com"
    _, etoken = await api.register(email, PASSWORD, "Erin", "expert")
    await api.preferences(etoken, skills=["python"], languages=["en"], rate_cents_per_15min=6000)
    _, ctoken = await new_customer(api, "Carl")
    # No --password: the client asks for it, hidden.
    command = f"{RTCLIENT} --server {node.http} --email {email} --log {tmp_path / 'tui.log'}"
    await tmux.run("new-session", "-d", "-s", tmux.name, "-x", "160", "-y", "50", command)
    await tmux.wait_for("password:")
    await tmux.type(PASSWORD)
    screen = await tmux.wait_for("signed in as Erin (expert)")
    assert PASSWORD not in screen
    await tmux.type("/available")
    await tmux.wait_for("-- you are available")

    customer = await AsyncClient(node.http, ctoken).connect()
    try:
        other = await customer.create_request("Not for me", ["python"], "en")
        await tmux.wait_for("[offer 1] 'Not for me' from Carl (python; en, $60.00/15 min)")
        await tmux.type("/decline 1")
        await tmux.wait_for("-- declined 'Not for me'")
        await customer.cancel_request(other.id)
        request = await customer.create_request("Flaky test", ["python"], "en")
        await tmux.wait_for("[offer 2] 'Flaky test' from Carl")
        await tmux.type("/accept 2")
        update = await customer.next_event(RequestUpdate, lambda u: u.status == "accepted")
        assert update.request_id == request.id and update.session_id is not None
        sid = update.session_id
        await customer.join(sid)
        await tmux.wait_for("-- in session 'Flaky test'")

        await customer.send_text(sid, "my test fails one time in ten")
        await tmux.wait_for("Carl: my test fails one time in ten")
        await tmux.type("let us look at it")
        got = await customer.next_event(Message)
        assert got.text == "let us look at it" and got.from_ is not None
        assert got.from_.name == "Erin"

        await tmux.type("/code python print('seed', 42)")
        code = await customer.next_event(Message)
        assert code.kind == "code" and code.code is not None
        assert (code.code.language, code.code.source) == ("python", "print('seed', 42)")

        notes = tmp_path / "notes.txt"
        notes.write_text("run it with -p no:randomly")
        await tmux.type(f"/attach {notes}")
        sent = await customer.next_event(Message)
        assert sent.kind == "attachment" and sent.attachment is not None
        assert await customer.api.download_attachment(sent.attachment.id) == notes.read_bytes()
        await tmux.wait_for("-- sent notes.txt (26 bytes)")

        await tmux.type("/start")
        assert (await customer.next_event(BillingEvent)).running is True
        await tmux.wait_for("session 'Flaky test': billing")

        await tmux.type("/end 25")
        ended = await customer.next_event(SessionUpdate, lambda u: u.session.status == "ended")
        assert ended.session.summary is not None and ended.session.summary.discount_pct == 25
        await tmux.wait_for("(25% discount)")
        await tmux.type("/quit")
        # The client exits, and its tmux session (its only one) with it.
        async with asyncio.timeout(30):
            while tmux.name in await tmux.run("list-sessions", check=False):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        await customer.aclose()


async def test_customer_asks_and_chats(node: Node, api: Api, tmux: Tmux) -> None:
    email = f"{unique('c')}@example.com"
    await api.register(email, PASSWORD, "Carl", "customer")
    _, etoken = await api.register(f"{unique('e')}@example.com", PASSWORD, "Erin", "expert")
    await api.preferences(etoken, skills=["go"], languages=["en"], rate_cents_per_15min=3000)
    expert = await AsyncClient(node.http, etoken).connect()
    try:
        await expert.set_presence("available")
        command = f"{RTCLIENT} --server {node.http} --email {email} --password {PASSWORD}"
        await tmux.run("new-session", "-d", "-s", tmux.name, "-x", "160", "-y", "50", command)
        await tmux.wait_for("signed in as Carl (customer)")
        await tmux.type("/ask go Data race in my worker pool")
        await tmux.wait_for("-- asked for help: 'Data race in my worker pool'")
        offer = await expert.next_event(OfferNew)
        session = await expert.accept_offer(offer.offer.request_id)
        await expert.join(session.id)
        # The terminal follows its accepted request into the session by itself.
        await tmux.wait_for("-- in session 'Data race in my worker pool'")
        await expert.send_text(session.id, "run it with -race")
        await tmux.wait_for("Erin: run it with -race")
        await tmux.type("found it, thanks")
        got = await expert.next_event(Message)
        assert got.text == "found it, thanks"
        await expert.start_billing(session.id)
        await tmux.wait_for("billing running")
        await expert.end_session(session.id, discount_pct=100)
        await tmux.wait_for("charged $0.00 (100% discount)")
        await tmux.type("/quit")
    finally:
        await expert.aclose()
