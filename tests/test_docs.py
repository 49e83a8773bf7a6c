"""The docs stand on their own: what a user who clones the repository reads
points at nothing outside it, and docs/protocol.md names every error code and
every command the code knows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from rtserver.http.ops import _error_codes as error_codes
from rtserver.schemas import command_types

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "docs" / "protocol.md"

# Spelled in two parts, so that this file does not mention what it forbids.
CONTRACT_PATH = "../shared/" + "contract.md"
# An absolute path of the machine the project was written on.
WORK_PATH = re.compile(r"(?<![\w.~-])/" + r"work/")


def _tracked() -> list[Path]:
    """Every file git tracks in this checkout; outside one (an unpacked archive),
    every file of the tree but the virtualenv and the caches."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        out = subprocess.run(
            [git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    skip = {".venv", ".git", "node_modules", ".mypy_cache", ".ruff_cache", "__pycache__"}
    return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_no_tracked_file_points_at_the_contract_outside_the_repository() -> None:
    needle = CONTRACT_PATH.encode()
    offenders = [
        str(p.relative_to(ROOT)) for p in _tracked() if p.is_file() and needle in p.read_bytes()
    ]
    assert offenders == [], f"{CONTRACT_PATH} is not in the repository: {offenders}"


def test_docs_carry_no_absolute_work_paths() -> None:
    docs = [
        p
        for p in _tracked()
        if p.suffix == ".md" and (p == ROOT / "README.md" or (ROOT / "docs") in p.parents)
    ]
    assert ROOT / "README.md" in docs and PROTOCOL in docs
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in docs
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if WORK_PATH.search(line)
    ]
    assert offenders == [], f"commands must start from the checkout: {offenders}"


def test_protocol_names_every_error_code() -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    codes = set(error_codes())
    assert "offer_taken" in codes and "internal" in codes
    missing = sorted(c for c in codes if f"`{c}`" not in text)
    assert missing == [], f"error codes not in docs/protocol.md: {missing}"


def test_protocol_names_every_command() -> None:
    text = PROTOCOL.read_text(encoding="utf-8")
    types = set(command_types())
    assert "hello" in types and "message.send" in types
    missing = sorted(t for t in types if f"`{t}`" not in text)
    assert missing == [], f"frame types not in docs/protocol.md: {missing}"
