"""The browser client's files: ``/`` and ``/static/...`` as :mod:`rtserver.http.web` serves them.

Built on a bare Starlette app holding only ``web.routes``, so that these hold
whatever the rest of the app mounts; the browser tests (tests/browser) drive the
same files in Chromium against a whole node.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from rtserver.http import web

MODULES = [
    "app.js",
    "conn.js",
    "api.js",
    "store.js",
    "dom.js",
    "format.js",
    "style.css",
    "views/login.js",
    "views/offers.js",
    "views/requests.js",
    "views/preferences.js",
    "views/room.js",
    "views/upcoming.js",
    "views/history.js",
    "views/details.js",
    "views/earnings.js",
    "views/payout.js",
    "views/expert.js",
    "views/receipts.js",
    "views/manager.js",
    "views/notifications.js",
    "views/parts.js",
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Starlette(routes=web.routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://rt.test") as c:
        yield c


async def test_index_is_the_thin_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in r.text
    # Thin: markup for the shell only, no inline script or style (the CSP forbids them).
    assert "<style" not in r.text
    assert re.search(r"<script(?![^>]*\bsrc=)", r.text) is None
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert r.headers["cache-control"] == "no-cache"


async def test_no_page_may_frame_the_client(client: httpx.AsyncClient) -> None:
    for path in ("/", "/static/app.js", "/static/style.css"):
        r = await client.get(path)
        csp = [d.strip() for d in r.headers["content-security-policy"].split(";")]
        assert "frame-ancestors 'none'" in csp, path
        assert "default-src 'self'" in csp, path
        assert r.headers["x-frame-options"] == "DENY", path
    # The page may open its own WebSocket (CSP Level 2 browsers do not count ws: as 'self').
    page = (await client.get("/")).headers["content-security-policy"]
    assert "connect-src 'self' ws://rt.test wss://rt.test" in page
    # A Host that is not a host name is not written into the policy.
    odd = await client.get("/", headers={"host": "rt.test; script-src *"})
    assert "script-src *" not in odd.headers["content-security-policy"]


@pytest.mark.parametrize("path", MODULES)
async def test_every_module_is_served(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get("/static/" + path)
    assert r.status_code == 200, path
    kind = "text/css" if path.endswith(".css") else "javascript"
    assert kind in r.headers["content-type"]
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-content-type-options"] == "nosniff"
    if path.endswith(".js"):
        assert r.text.startswith("// @ts-check"), path


async def test_every_import_resolves(client: httpx.AsyncClient) -> None:
    """Each relative import of each module names a file that is served (no build step)."""
    for path in MODULES:
        if not path.endswith(".js"):
            continue
        text = (await client.get("/static/" + path)).text
        base = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', text):
            parts = (base + target).split("/")
            out: list[str] = []
            for p in parts:
                if p == "..":
                    out.pop()
                elif p not in (".", ""):
                    out.append(p)
            resolved = "/".join(out)
            assert (await client.get("/static/" + resolved)).status_code == 200, (path, target)


async def test_no_cdn_and_no_framework(client: httpx.AsyncClient) -> None:
    for path in ["", *("static/" + m for m in MODULES)]:
        text = (await client.get("/" + path)).text
        assert "https://" not in text and "http://" not in text, path


async def test_missing_files_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/nope.js")).status_code == 404
    assert (await client.get("/static/../http/web.py")).status_code == 404


def test_the_package_ships_every_file() -> None:
    """pyproject's package-data globs (static/* and static/**/*) match every module."""
    files = sorted(
        str(p.relative_to(web.STATIC_DIR)).replace("\\", "/")
        for p in web.STATIC_DIR.rglob("*")
        if p.is_file() and "tests" not in p.parts
    )
    for m in MODULES:
        assert m in files


def test_connection_and_store_logic_under_node() -> None:
    """``node --test rtserver/static/tests``: conn.js and store.js without a DOM (fake socket,
    fake timers): replies by id, timeouts, heartbeat, jittered reconnect, 4401 and 4403,
    resume by ``after_seq``, the outbox resent by ``cid``, dedupe by ``seq``."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing (the machine's Node.js runs the client's unit tests)")
    done = subprocess.run(
        [node, "--test", str(web.STATIC_DIR / "tests")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
