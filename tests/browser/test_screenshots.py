"""The screenshot script keeps working: every portal page, filled with data, under 200 KB."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import HAVE_CHROMIUM
from tests.browser.screenshots import PAGES, take

pytestmark = pytest.mark.timeout(600)

PNG = b"\x89PNG\r\n\x1a\n"


async def test_every_portal_page_is_shot(tmp_path: Path) -> None:
    if not HAVE_CHROMIUM:
        pytest.fail("/usr/bin/chromium is missing: scripts/test installs it")
    paths = await take(tmp_path)
    assert [p.stem for p in paths] == PAGES
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG), p
        assert 10_000 < len(data) < 200_000, (p, len(data))
