"""The blocking client in plain scripts: clients/python/examples run as subprocesses
(the venv's python, outside the repository) against a real node."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from clients.rtclient import Api
from tests.servers import ROOT, Node, unique

EXAMPLES = ROOT / "clients" / "python" / "examples"
PASSWORD = "password-123"


async def script(cwd: Path, name: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / name),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_expert_bot_and_customer_scripts(node: Node, api: Api, tmp_path: Path) -> None:
    expert_email = f"{unique('bot')}@example.com"
    customer_email = f"{unique('c')}@example.com"
    _, etoken = await api.register(expert_email, PASSWORD, "Bot", "expert")
    await api.preferences(etoken, skills=["python"], languages=["en"], rate_cents_per_15min=900)
    await api.register(customer_email, PASSWORD, "Carl", "customer")
    common = ["--server", node.http, "--password", PASSWORD]
    bot = await script(
        tmp_path, "expert_bot.py", *common, "--email", expert_email, "--skill", "python", "--once"
    )
    try:
        assert bot.stdout is not None
        # The customer asks only once the bot is available.
        line = await asyncio.wait_for(bot.stdout.readline(), 60)
        assert line.decode().strip() == "available"
        customer = await script(
            tmp_path,
            "customer.py",
            *common,
            "--email",
            customer_email,
            "--title",
            "Flaky test",
            "--wait",
            "60",
            "why does it fail?",
            "thanks",
        )
        out, err = await asyncio.wait_for(customer.communicate(), 90)
        assert customer.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert lines[1:] == [
            "Bot accepted",
            "Bot: Hello! I can help with 'Flaky test'.",
            "Bot: you said: why does it fail?",
            "Bot: you said: thanks",
            "charged 0 cents",
        ], out.decode()
        bot_out, bot_err = await asyncio.wait_for(bot.communicate(), 60)
        assert bot.returncode == 0, bot_err.decode()
        assert "customer: bye" in bot_out.decode()
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
