"""tmux as a terminal that tests can type into and read: the terminal client's tests
(tests/test_tui.py) and its screenshot (tests/tui_screenshot.py) drive ``rtclient`` in it."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest


class Tmux:
    """One tmux session on a private server socket."""

    def __init__(self, name: str) -> None:
        self.socket = f"rt-{name}"
        self.name = name

    async def run(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux",
            "-L",
            self.socket,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0 or not check, err.decode()
        return out.decode()

    async def type(self, text: str) -> None:
        """Type a line and press Enter."""
        await self.run("send-keys", "-t", self.name, "-l", text)
        await self.run("send-keys", "-t", self.name, "Enter")

    async def screen(self) -> str:
        """The pane with its scroll-back."""
        return await self.run("capture-pane", "-p", "-J", "-t", self.name, "-S", "-500")

    async def visible(self) -> str:
        """The visible pane only, as the terminal shows it: text with its colours and
        attributes as ANSI escape sequences (``-e``), trailing spaces kept (``-N``: a
        reversed status line spans the width)."""
        return await self.run("capture-pane", "-p", "-e", "-N", "-t", self.name)

    async def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """Wait until ``text`` is on the screen (a bound only against hangs)."""
        screen = ""
        try:
            async with asyncio.timeout(timeout):
                while text not in (screen := await self.screen()):  # noqa: ASYNC110 - polling tmux
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pytest.fail(f"{text!r} never showed; the screen:\n{screen}")
        return screen

    async def kill(self) -> None:
        """Stop this tmux server (and whatever still runs in it)."""
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, "kill-server", stderr=asyncio.subprocess.DEVNULL
        )
        await proc.wait()


@asynccontextmanager
async def tmux_server(prefix: str = "tui") -> AsyncIterator[Tmux]:
    """A private tmux server, killed on exit."""
    assert shutil.which("tmux"), "tmux is missing: apt-get install tmux (scripts/test does)"
    t = Tmux(f"{prefix}{secrets.token_hex(4)}")
    try:
        yield t
    finally:
        await t.kill()
