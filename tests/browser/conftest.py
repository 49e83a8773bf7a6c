"""Browser tests: a real rtserver node and Debian's Chromium driven by Playwright.

Nothing is faked: the node is a uvicorn server on a free port with a real SQLite
data dir, and the pages are the shipped ES modules in a headless Chromium
(``/usr/bin/chromium``; ``scripts/test`` installs it when it is missing).
Playwright's own browser download is never used.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from clients.rtclient import Api
from rtserver.clock import to_ms
from tests.servers import Node, node_settings, run_node

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "password-123"
# Generous: a loaded CI machine is slow, and no test measures time.
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class Person:
    """A user the test made: how to sign in, and the token for API calls."""

    user: dict[str, Any]
    email: str
    token: str

    @property
    def id(self) -> str:
        return str(self.user["id"])

    @property
    def name(self) -> str:
        return str(self.user["name"])


@dataclass
class Site:
    """The running node, its HTTP API, and the browser pages opened on it."""

    node: Node
    api: Api
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.node.http

    def auth(self, who: Person) -> dict[str, str]:
        return {"Authorization": f"Bearer {who.token}"}

    async def customer(self, name: str) -> Person:
        email = f"c-{secrets.token_hex(5)}@example.com"
        user, token = await self.api.register(email, PASSWORD, name, "customer")
        return Person(user, email, token)

    async def expert(self, name: str, **prefs: Any) -> Person:
        email = f"e-{secrets.token_hex(5)}@example.com"
        user, token = await self.api.register(email, PASSWORD, name, "expert")
        values: dict[str, Any] = {
            "title": "Senior Unity developer",
            "skills": ["unity", "c#"],
            "languages": ["en"],
            "years_experience": 8,
            "rate_cents_per_15min": 12000,
            "bio": "Ten years of games in Unity.",
        }
        values.update(prefs)
        await self.api.preferences(token, **values)
        return Person(user, email, token)

    async def manager(self, name: str = "Morgan Manager") -> Person:
        """A manager, made in the user store as `rtserver user create` does."""
        assert self.node.app is not None, "an in-process node"
        node = self.node.app.state.node
        email = f"m-{secrets.token_hex(5)}@example.com"
        await node.hub.users.create(
            email,
            await node.auth.hash_password(PASSWORD),
            name,
            "manager",
            to_ms(node.clock.now()),
        )
        r = await self.api.http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
        body = r.json()
        return Person(body["user"], email, body["token"])

    async def call(self, who: Person, method: str, path: str, **kw: Any) -> Any:
        """An API call as ``who``; the decoded answer (raises on an error status)."""
        r = await self.api.http.request(method, path, headers=self.auth(who), **kw)
        if r.status_code >= 400:
            raise httpx.HTTPStatusError(f"{r.status_code} {r.text}", request=r.request, response=r)
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r.text

    async def page(self) -> Page:
        """A fresh browser context (its own storage: one signed-in user) and a page in it."""
        context = await self.browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda msg: self._console(page, msg.type, msg.text))
        return page

    def _console(self, page: Page, kind: str, text: str) -> None:
        # An answer with an error status is logged by Chromium as "Failed to load
        # resource"; the pages expect some (a 404 profile, a 409 claim): not a page error.
        if kind == "error" and "Failed to load resource" not in text:
            self.errors.append(f"{page.url}: console {text}")

    async def signed_in(self, who: Person, hash_: str = "", page: Page | None = None) -> Page:
        """A page signed in through the login form (``page``: one made by :meth:`page`, e.g.
        to watch its socket from the start)."""
        page = page or await self.page()
        await page.goto(self.url + "/#/login")
        await page.get_by_test_id("login-email").fill(who.email)
        await page.get_by_test_id("login-password").fill(PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_test_id("who")).to_contain_text(who.name)
        if who.user["role"] != "manager":
            await expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "online")
        if hash_:
            await page.goto(self.url + "/" + hash_)
        return page


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium: Debian's, never one downloaded by Playwright."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A fresh Chromium for each test."""
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs it (apt-get install chromium)")
    async with chromium() as b:
        yield b


@pytest.fixture
async def site(tmp_path: Path, browser: Browser) -> AsyncIterator[Site]:
    """A node serving the browser client (billing checked every second), and its API."""
    data = tmp_path / "data"
    data.mkdir()
    settings = node_settings(data, billing_check="1s")
    async with run_node(settings) as node:
        api = Api(node.http)
        s = Site(node, api, browser)
        try:
            yield s
        finally:
            for c in s.contexts:
                await c.close()
            await api.aclose()
    assert not s.errors, "errors in the page:\n" + "\n".join(s.errors)
