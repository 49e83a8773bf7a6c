"""The terminal client's screenshot script (tests/tui_screenshot.py) keeps working: the
scene plays against a real node, the pane keeps its colours, and the PNG is a real one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import HAVE_CHROMIUM
from tests.tui_screenshot import NAME, capture, render, to_html

PNG = b"\x89PNG\r\n\x1a\n"


async def test_the_terminal_client_is_shot(tmp_path: Path) -> None:
    if not HAVE_CHROMIUM:
        pytest.fail("/usr/bin/chromium is missing: scripts/test installs it")
    ansi = await capture()
    text = re.sub(r"\x1b\[[0-9;]*m", "", ansi)
    assert "\x1b[7m" in ansi, "the status line is shown reversed"
    assert "Dev Patel [code python]:" in text and "monkeypatch.setattr" in text
    # Entered once, though both /accept and the session's update lead into it.
    assert text.count("-- in session 'Flaky checkout test in CI'") == 1, text
    assert re.search(r"session 'Flaky checkout test in CI': billing 0:00:0[1-9] = \$0\.", text)
    html = to_html(ansi)
    assert "inv_background" in html and "DejaVu Sans Mono" in html
    path = await render(html, tmp_path / f"{NAME}.png")
    data = path.read_bytes()
    assert data.startswith(PNG)
    assert 20_000 < len(data) < 200_000, len(data)
