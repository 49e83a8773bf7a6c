"""The message path without the sockets: ``Node.handle`` for ``message.send``, in process.

Run it from the repository root, in the project's venv::

    python bench/message_path.py                 # 500 sessions, 20 messages each, 3 rounds
    python bench/message_path.py --sessions 200 --messages 50

It starts one embedded node in this process (uvicorn on a free port of
127.0.0.1, a fresh SQLite file in a temporary directory), opens ``--sessions``
sessions through the public interface (register, preferences, ``request.create``,
``offer.accept``, ``session.join`` over real sockets), then calls
``Node.handle`` directly with each customer's real :class:`Connection`: every
session sends ``--messages`` messages one after another, all sessions at once
(the shape of the shared bench's W2, without the frames). Each message is
stored (the transcript's group commit) and relayed to the expert's socket
queue, exactly as over a socket; only the WebSocket framing and the ASGI
adapter are left out, which is the point: it shows what the server's own
path costs per message, in CPU of the event loop's thread and of the whole
process (the writer thread included), with less noise than a socket bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from clients.rtclient import Api, Client  # noqa: E402
from rtserver.server import tune_gc  # noqa: E402
from tests.servers import new_customer, new_expert, node_settings, run_node  # noqa: E402


async def open_sessions(node: Any, api: Api, count: int) -> list[tuple[Any, str]]:
    """``count`` active sessions: (the customer's server-side Connection, session id)."""
    out: list[tuple[Any, str]] = []
    server = node.app.state.node
    for _ in range(count):
        _, ctoken = await new_customer(api)
        _, etoken = await new_expert(api)
        # No permessage-deflate: the shared bench's clients do not ask for it.
        customer = await Client.connect(node.ws, ctoken, compression=None)
        expert = await Client.connect(node.ws, etoken, compression=None)
        await expert.call("presence", status="available")
        reply = await customer.call(
            "request.create", kind="instant", title="Help", skills=["python"], language="en"
        )
        rid = reply["request"]["id"]
        await expert.wait_event("offer.new", lambda e, rid=rid: e["offer"]["request_id"] == rid)
        session = (await expert.call("offer.accept", request_id=rid))["session"]
        await customer.call("session.join", session_id=session["id"])
        await expert.call("session.join", session_id=session["id"])
        # The clients stop reading: their CPU would count as the server's (same
        # process). The expert's socket queue takes the relayed events (the node
        # runs with a large --send-queue); the writer blocks once TCP is full.
        conns = server.registry.of(customer.hello["user"]["id"])
        out.append((next(iter(conns)), session["id"]))
        for client in (customer, expert):
            if client._reader is not None:
                client._reader.cancel()
    return out


async def run_round(
    server: Any, sessions: list[tuple[Any, str]], messages: int, tag: int
) -> dict[str, float]:
    async def one(conn: Any, sid: str) -> None:
        for i in range(messages):
            frame = json.dumps(
                {
                    "type": "message.send",
                    "id": i,
                    "session_id": sid,
                    "cid": f"r{tag}-{i}",
                    "kind": "text",
                    "text": "x" * 64,
                }
            )
            reply = await server.handle(conn, frame)
            assert reply is not None and reply["type"] == "ok", reply

    wall0, cpu0, loop0 = time.perf_counter(), time.process_time(), time.thread_time()
    await asyncio.gather(*(one(c, s) for c, s in sessions))
    wall, cpu, loop = (
        time.perf_counter() - wall0,
        time.process_time() - cpu0,
        time.thread_time() - loop0,
    )
    n = len(sessions) * messages
    return {
        "messages": n,
        "messages_per_s": round(n / wall),
        "process_cpu_us_per_message": round(cpu / n * 1e6, 1),
        "loop_cpu_us_per_message": round(loop / n * 1e6, 1),
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = node_settings(
            Path(tmp), message_rate="1000000", message_burst="1000000", send_queue=100_000
        )
        async with run_node(settings) as node:
            api = Api(node.http)
            sessions = await open_sessions(node, api, args.sessions)
            server = node.app.state.node
            tune_gc()  # as `rtserver serve` does after start-up
            spy = None
            if args.profile:
                # py-spy samples this process (every thread) during the measured rounds.
                spy = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited)
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "-p",
                        str(os.getpid()),
                        "-r",
                        "250",
                        "-f",
                        "raw",
                        "--nonblocking",
                        "-o",
                        args.profile,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(1)
            for r in range(args.rounds):
                print(json.dumps(await run_round(server, sessions, args.messages, r)), flush=True)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            await api.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", metavar="FILE", help="py-spy (raw, collapsed stacks) into FILE")
    try:
        import uvloop

        uvloop.run(main(p.parse_args()))
    except ImportError:
        asyncio.run(main(p.parse_args()))
