"""A customer script, written with the async client: asks for help, chats, and says bye.

    python customer.py --server http://127.0.0.1:8000 --email me@example.com \\
        --password secret --skill python --title "Flaky test" "first question" "second"

Each message is sent once, whatever the connection does (the client resends it
with its ``cid`` after a reconnect), and each answer is printed once.
"""

from __future__ import annotations

import argparse
import asyncio

from rtclient import AsyncClient
from rtclient.models import Message, RequestUpdate, SessionUpdate


async def chat(args: argparse.Namespace) -> None:
    client = await AsyncClient.login(args.server, args.email, args.password)
    async with client:
        request = await client.create_request(args.title, [args.skill], args.language)
        print(f"asked: {request.title} ({request.id})", flush=True)
        update = await client.next_event(
            RequestUpdate,
            lambda u: u.request_id == request.id and u.status != "open",
            timeout=args.wait,
        )
        if update.status != "accepted" or update.session_id is None:
            print(f"no expert: {update.status}", flush=True)
            return
        sid = update.session_id
        expert = update.expert.name if update.expert else "expert"
        print(f"{expert} accepted", flush=True)
        await client.join(sid)
        for text in [*args.messages, "bye"]:
            await client.send_text(sid, text)
            if text == "bye":
                break
            # Print what the expert says until he answers this message.
            while True:
                msg = await client.next_event(Message, lambda m: m.session_id == sid)
                print(f"{expert}: {msg.text}", flush=True)
                if msg.text == f"you said: {text}":
                    break
        ended = await client.next_event(SessionUpdate, lambda u: u.session.status == "ended")
        summary = ended.session.summary
        if summary is not None:
            print(f"charged {summary.charge_cents} cents", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--skill", default="python")
    parser.add_argument("--language", default="en")
    parser.add_argument("--title", default="I need help")
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for an expert")
    parser.add_argument("messages", nargs="*")
    asyncio.run(chat(parser.parse_args()))


if __name__ == "__main__":
    main()
