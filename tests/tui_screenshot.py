"""A screenshot of the terminal client (``rtclient``) in a live session, for the README.

``python -m tests.tui_screenshot [OUT_DIR]`` writes ``terminal-client.png`` to
``docs/screenshots/`` (default); ``tests/test_tui_screenshot.py`` runs the same
into a temporary directory, so that the script keeps working.

Everything is real, as in ``tests/test_tui.py``: a node on a free port, the
``rtclient`` console script in a tmux pane signed in as an expert, and a
customer on the SDK. The expert goes available, accepts the customer's offer,
and they chat (a code snippet among it) with billing running. The pane is
captured with its colours (``tmux capture-pane -e``), turned into HTML by
ansi2html, and that page is shot in Debian's Chromium with a dark terminal look.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from ansi2html import Ansi2HTMLConverter
from rtclient import AsyncClient
from rtclient.models import BillingEvent, Message, RequestUpdate

from clients.rtclient import Api
from tests.browser.conftest import chromium
from tests.servers import new_customer, node_settings, run_node, unique
from tests.tmux import tmux_server

ROOT = Path(__file__).resolve().parents[1]
RTCLIENT = Path(sys.executable).parent / "rtclient"
PASSWORD = "password-123"
NAME = "terminal-client"
COLUMNS, ROWS = 110, 26
CODE = """\
def test_checkout_total(cart):
    cart.add("notebook", qty=2)
    cart.add("pen", qty=3)
    assert cart.total() == 2 * 450 + 3 * 120"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
{ansi_css}
<style>
html, body {{ margin: 0; background: #e9ebef; }}
body {{ padding: 24px; display: inline-block; }}
.window {{
  background: #1d1f21; border-radius: 8px; overflow: hidden;
  box-shadow: 0 6px 24px rgba(0, 0, 0, 0.35);
}}
.bar {{
  background: #2d2f33; color: #b4b7bd; height: 30px; line-height: 30px;
  font: 13px "DejaVu Sans", sans-serif; text-align: center; position: relative;
}}
.dots {{ position: absolute; left: 12px; top: 0; }}
.dots i {{
  display: inline-block; width: 12px; height: 12px; border-radius: 6px;
  margin-right: 7px; vertical-align: middle;
}}
pre.ansi2html-content {{
  display: block; margin: 0; padding: 12px 16px; background: #1d1f21; color: #d8dadd;
  font: 14px/1.35 "DejaVu Sans Mono", "Liberation Mono", monospace;
  white-space: pre; width: {columns}ch;
}}
.inv_foreground {{ color: #1d1f21; }}
.inv_background {{ background-color: #c5c8c6; }}
</style></head>
<body><div class="window" id="terminal">
<div class="bar"><span class="dots"><i style="background:#ff5f56"></i><i
style="background:#ffbd2e"></i><i style="background:#27c93f"></i></span>{title}</div>
<pre class="ansi2html-content">{screen}</pre>
</div></body></html>
"""


async def capture() -> str:
    """Run the scene against a fresh node; the expert's terminal as ANSI text."""
    with tempfile.TemporaryDirectory(prefix="rt-tui-shot-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        async with run_node(node_settings(data)) as node, tmux_server("shot") as tmux:
            api = Api(node.http)
            customer: AsyncClient | None = None
            try:
                email = f"{unique('ana')}@example.com"
                _, etoken = await api.register(email, PASSWORD, "Ana Lima", "expert")
                await api.preferences(
                    etoken, skills=["python", "pytest"], languages=["en"], rate_cents_per_15min=6000
                )
                _, ctoken = await new_customer(api, "Dev Patel")
                command = f"{RTCLIENT} --server {node.http} --email {email} --password {PASSWORD}"
                await tmux.run(
                    "new-session", "-d", "-s", tmux.name,
                    "-x", str(COLUMNS), "-y", str(ROWS), command,
                )  # fmt: skip
                await tmux.wait_for("signed in as Ana Lima (expert)")
                await tmux.type("/available")
                await tmux.wait_for("-- you are available")

                customer = await AsyncClient(node.http, ctoken).connect()
                await customer.create_request("Flaky checkout test in CI", ["python"], "en")
                await tmux.wait_for("[offer 1] 'Flaky checkout test in CI' from Dev Patel")
                await tmux.type("/accept 1")
                update = await customer.next_event(RequestUpdate, lambda u: u.status == "accepted")
                assert update.session_id is not None
                sid = update.session_id
                await customer.join(sid)
                await tmux.wait_for("Dev Patel joined")

                await customer.send_text(sid, "Hi! This test fails one run in ten, only on CI:")
                await customer.send_code(sid, CODE, "python")
                await tmux.wait_for("assert cart.total()")
                await tmux.type("Hi Dev. Does cart read prices from a cache shared between tests?")
                await customer.next_event(Message, lambda m: m.kind == "text")
                await tmux.type("/start")
                started = time.monotonic()
                await customer.next_event(BillingEvent)
                await customer.send_text(sid, "Yes, a module-level dict in prices.py.")
                await tmux.wait_for("a module-level dict")
                await tmux.type("/code python monkeypatch.setattr(prices, '_cache', {})")
                await customer.next_event(Message, lambda m: m.kind == "code")
                await customer.send_text(sid, "Trying it now...")
                await tmux.wait_for("Trying it now")
                # A few billed seconds on the status line, and a reply half typed.
                await asyncio.sleep(max(0.0, started + 2.2 - time.monotonic()))
                await tmux.run("send-keys", "-t", tmux.name, "-l", "It should pass 100 runs")
                await tmux.wait_for("pass 100 runs")
                return await tmux.visible()
            finally:
                if customer is not None:
                    await customer.aclose()
                await api.aclose()
    raise AssertionError("unreachable")


def to_html(ansi: str, title: str = "rtclient: Ana Lima (expert)") -> str:
    """The captured pane as a page that looks like a dark terminal window."""
    conv = Ansi2HTMLConverter(dark_bg=True, line_wrap=False, scheme="xterm")
    screen = conv.convert(ansi.rstrip("\n"), full=False)
    return PAGE.format(title=title, ansi_css=conv.produce_headers(), columns=COLUMNS, screen=screen)


async def render(html: str, path: Path) -> Path:
    """Shoot the page's terminal window in Chromium to ``path`` (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        await page.set_content(html)
        await page.locator("#terminal").screenshot(path=str(path))
        await page.close()
    return path


async def take(out: Path) -> Path:
    """Capture the scene and write ``out/terminal-client.png``."""
    return await render(to_html(await capture()), out / f"{NAME}.png")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    path = asyncio.run(take(out))
    print(f"{path} {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
