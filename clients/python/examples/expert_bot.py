"""An expert bot, written with the blocking client: it accepts offers that ask for its
skill, greets, answers each message, and ends the session when told "bye".

    python expert_bot.py --server http://127.0.0.1:8000 --email bot@example.com \\
        --password secret --skill python [--once]

It runs until interrupted (or, with --once, until its first session ends). Lost
connections are the client's business: it reconnects, rejoins the session and
sends what was not acknowledged, so the bot's loop never sees them.
"""

from __future__ import annotations

import argparse
import logging

from rtclient import Client, OfferTaken
from rtclient.errors import Conflict
from rtclient.models import Message, OfferNew, SessionUpdate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--skill", required=True, help="accept offers that ask for this skill")
    parser.add_argument("--discount", type=int, default=0, help="discount when ending, percent")
    parser.add_argument("--once", action="store_true", help="stop after the first session")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    skill = args.skill.lower()

    with Client.login(args.server, args.email, args.password) as client:
        me = client.user
        client.set_presence("available")
        print("available", flush=True)
        for event in client.events():
            match event:
                case OfferNew(offer=offer) if skill in (s.lower() for s in offer.skills):
                    try:
                        session = client.accept_offer(offer.request_id)
                    except (OfferTaken, Conflict) as exc:
                        print(f"missed {offer.title!r}: {exc.code}", flush=True)
                        continue
                    client.join(session.id)
                    client.send_text(session.id, f"Hello! I can help with {offer.title!r}.")
                    print(f"accepted {offer.title!r} as session {session.id}", flush=True)
                case OfferNew(offer=offer):
                    client.decline_offer(offer.request_id)
                case Message(session_id=sid, text=text) if (
                    me and event.from_ and (event.from_.id != me.id)
                ):
                    print(f"customer: {text}", flush=True)
                    if text == "bye":
                        summary = client.end_session(sid, discount_pct=args.discount)
                        print(f"ended: {summary}", flush=True)
                    else:
                        client.send_text(sid, f"you said: {text}")
                case SessionUpdate(session=s) if s.status == "ended" and args.once:
                    break


if __name__ == "__main__":
    main()
