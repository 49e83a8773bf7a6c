"""A wheel carries the browser client, so a non-editable install serves ``/`` too."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.servers import ROOT


def test_the_wheel_carries_every_file_of_the_browser_client(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("rtserver-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    static = ROOT / "rtserver" / "static"
    wanted = {
        "rtserver/" + p.relative_to(ROOT / "rtserver").as_posix()
        for p in static.rglob("*")
        if p.is_file() and "tests" not in p.relative_to(static).parts
    }
    assert "rtserver/static/index.html" in wanted
    assert any(n.startswith("rtserver/static/views/") for n in wanted)
    assert wanted <= names, sorted(wanted - names)
