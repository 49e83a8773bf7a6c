"""The manager console's dead letters: an e-mail that failed every try, listed and retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from clients.rtclient import Api
from rtserver.notify import Outgoing
from tests.browser.conftest import Site
from tests.servers import node_settings, run_node

pytestmark = pytest.mark.timeout(300)


class Provider:
    """A Sender whose provider is down until told otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.sent: list[str] = []

    async def send(self, message: Outgoing) -> None:
        if self.down:
            raise ConnectionRefusedError("smtp.example.com refused the connection")
        self.sent.append(message.address)


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
async def dsite(tmp_path: Path, browser: Browser, provider: Provider) -> AsyncIterator[Site]:
    """A node whose e-mails fail, tried twice a tenth of a second apart."""
    data = tmp_path / "data"
    data.mkdir()
    settings = node_settings(data, timer_attempts=2, timer_retry="100ms")
    async with run_node(settings, sender=provider) as node:
        api = Api(node.http)
        s = Site(node, api, browser)
        try:
            yield s
        finally:
            for c in s.contexts:
                await c.close()
            await api.aclose()
    assert not s.errors, "errors in the page:\n" + "\n".join(s.errors)


async def test_a_manager_sees_a_dead_letter_and_retries_it(dsite: Site, provider: Provider) -> None:
    expert = await dsite.expert("Erin Expert")
    manager = await dsite.manager()
    # Verifying the expert e-mails him; the provider refuses it twice.
    await dsite.call(
        manager, "PUT", f"/api/experts/{expert.id}/verification", json={"status": "verified"}
    )
    mp = await dsite.signed_in(manager, "#/manager/dead-letters")
    row = mp.get_by_test_id("dead-letter-row").filter(has_text=expert.email)
    # The list is read once: reload the tab until the letter is there.
    for _ in range(100):
        await asyncio.sleep(0.3)
        if await row.count():
            break
        await mp.get_by_test_id("manager-tab-audit").click()
        await mp.get_by_test_id("manager-tab-dead-letters").click()
    await expect(row).to_have_count(1)
    await expect(row.get_by_test_id("dead-letter-what")).to_contain_text("Verification: verified")
    await expect(row.get_by_test_id("dead-letter-error")).to_contain_text("refused")

    provider.down = False
    await row.get_by_test_id("dead-letter-retry").click()
    await expect(row.get_by_test_id("dead-letter-retried")).to_contain_text("Morgan Manager")
    for _ in range(100):
        if provider.sent:
            break
        await asyncio.sleep(0.3)
    assert provider.sent == [expert.email]
