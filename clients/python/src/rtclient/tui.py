"""``rtclient``: the terminal (desktop) client, on prompt_toolkit.

A chat-style terminal: events print above the prompt as they arrive (offers,
messages, billing), a status line at the bottom shows the connection, the
current session and its billing (the server's figure, counted on locally while
it runs), and commands start with ``/`` (``/help``). prompt_toolkit fits this
shape (a prompt that keeps working while output scrolls above it) with one small
dependency; the view itself is pure (:mod:`rtclient.terminal`).

    rtclient --server http://127.0.0.1:8000 [--email E] [--password P | --token T]

The password is asked for when not given (or taken from ``RTCLIENT_PASSWORD``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import mimetypes
import os
import time
from pathlib import Path

from rtclient.client import AsyncClient, ConnectionState
from rtclient.codec import JSON, MSGPACK
from rtclient.errors import CallError, ClientClosed, RtError
from rtclient.models import Attachment, RequestUpdate, SessionUpdate
from rtclient.terminal import EXTENSIONS, HELP, Input, View, parse_input

log = logging.getLogger("rtclient.tui")


def read_file(raw: str) -> tuple[str, bytes] | None:
    """A file's name and bytes, or None when there is no such file (run in a thread)."""
    path = Path(raw).expanduser()
    if not path.is_file():
        return None
    return path.name, path.read_bytes()


def guess_type(name: str) -> str:
    """The content type of a file name, for the upload."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


class App:
    """The running terminal client: one :class:`AsyncClient`, one :class:`View`."""

    def __init__(self, client: AsyncClient, language: str = "en") -> None:
        self.client = client
        self.view = View()
        self.language = language
        self.entered: set[str] = set()
        client.on_state_change(self._state_changed)

    def _state_changed(self, state: ConnectionState) -> None:
        self.view.connection = state
        if state in (ConnectionState.RECONNECTING, ConnectionState.CLOSED):
            self.say(f"-- connection {state.value}")

    @staticmethod
    def say(line: str) -> None:
        """Print above the prompt."""
        print(line, flush=True)

    def toolbar(self) -> str:
        """The bottom line."""
        return self.view.status(time.monotonic())

    async def pump(self) -> None:
        """Print events as they arrive, and follow sessions as they open."""
        async for event in self.client.events():
            for line in self.view.on_event(event, time.monotonic()):
                self.say(line)
            # A request of ours accepted, or a session made: enter its room.
            sid = None
            if isinstance(event, RequestUpdate) and event.status == "accepted":
                sid = event.session_id
            elif isinstance(event, SessionUpdate) and event.session.status == "active":
                sid = event.session.id
            if sid is not None and sid not in self.entered and self.view.current in (None, sid):
                try:
                    await self.enter(sid)
                except RtError as exc:
                    self.say(f"!! cannot join {sid}: {exc}")

    async def enter(self, session_id: str) -> None:
        """Join a session and make it the current one."""
        # Marked before the join: an accepted offer is entered both by /accept and by the
        # pump (the session's update), whichever comes first; the other must see it.
        self.entered.add(session_id)
        try:
            reply = await self.client.join(session_id)
        except BaseException:
            self.entered.discard(session_id)
            raise
        self.view.current = session_id
        self.view.set_session(reply.session, time.monotonic())
        if reply.billing is not None:
            self.view.set_billing(
                reply.billing.running, reply.billing.billable_seconds, time.monotonic()
            )
        self.say(f"-- in session {reply.session.title!r} ({session_id}); /help for commands")

    def session_id(self) -> str:
        """The current session, or a :class:`CallError` the user sees."""
        if self.view.current is None:
            raise CallError("no current session (/sessions, /join ID)", code="invalid_state")
        return self.view.current

    async def handle(self, cmd: Input) -> bool:
        """Carry out one input; False to quit."""
        c, args, client, view = cmd.command, cmd.args, self.client, self.view
        if c in ("quit", "exit", "q"):
            return False
        if c == "help":
            self.say(HELP)
        elif c == "say":
            await client.send_text(self.session_id(), cmd.text)
        elif c in ("available", "away"):
            await client.set_presence("available" if c == "available" else "away")
            view.presence = c
            self.say(f"-- you are {c}")
        elif c == "offers":
            for n, listed in sorted(view.offers.items()):
                self.say(view.offer_line(n, listed))
            if not view.offers:
                self.say("-- no open offers")
        elif c in ("accept", "decline"):
            offer = view.offer(args[0]) if args else None
            if offer is None:
                self.say(f"-- no such offer; usage: /{c} N")
            elif c == "accept":
                session = await client.accept_offer(offer.request_id)
                view.drop_offer(offer.request_id)
                self.say(f"-- accepted {offer.title!r}")
                if session.id not in self.entered:
                    await self.enter(session.id)
            else:
                await client.decline_offer(offer.request_id)
                view.drop_offer(offer.request_id)
                self.say(f"-- declined {offer.title!r}")
        elif c == "ask":
            if len(args) < 2:
                self.say("-- usage: /ask SKILL TITLE...")
            else:
                request = await client.create_request(" ".join(args[1:]), [args[0]], self.language)
                view.request_id = request.id
                self.say(f"-- asked for help: {request.title!r} ({request.id})")
        elif c == "cancel":
            if view.request_id is None:
                self.say("-- no open request")
            else:
                await client.cancel_request(view.request_id)
        elif c == "sessions":
            for s in view.sessions.values():
                mark = "*" if s.id == view.current else " "
                self.say(f"{mark} {s.id} {s.title!r} {s.status}")
        elif c == "join":
            if not args:
                self.say("-- usage: /join SESSION_ID")
            else:
                await self.enter(args[0])
        elif c == "code":
            await self.send_code(args, cmd.text)
        elif c == "attach":
            await self.attach(cmd.text)
        elif c in ("start", "pause"):
            sid = self.session_id()
            if c == "start":
                billing = await client.start_billing(sid)
            else:
                billing = await client.pause_billing(sid)
            view.set_billing(billing.running, billing.billable_seconds, time.monotonic())
        elif c == "end":
            discount = int(args[0].rstrip("%")) if args else None
            summary = await client.end_session(self.session_id(), discount)
            self.say(f"-- session ended: {view.summary(summary)}")
        else:
            self.say(f"-- unknown command /{c}; /help lists them")
        return True

    async def send_code(self, args: tuple[str, ...], text: str) -> None:
        """``/code PATH`` (a file) or ``/code LANG SOURCE...``."""
        if not args:
            self.say("-- usage: /code PATH, or /code LANG SOURCE...")
            return
        found = await asyncio.to_thread(read_file, args[0]) if len(args) == 1 else None
        if found is not None:
            name, content = found
            language = EXTENSIONS.get(Path(name).suffix.lower(), "")
            source = content.decode("utf-8", errors="replace")
        else:
            language, _, source = text.partition(" ")
            if not source:
                language, source = "", text
        await self.client.send_code(self.session_id(), source, language)

    async def attach(self, raw_path: str) -> None:
        """Upload a file and post it in the current session."""
        sid = self.session_id()
        found = await asyncio.to_thread(read_file, raw_path.strip().strip("'\""))
        if found is None:
            self.say(f"-- no such file: {raw_path}")
            return
        name, content = found
        body = await self.client.api.upload_attachment(
            content, name=name, content_type=guess_type(name), session_id=sid
        )
        attachment = Attachment(**body["attachment"])
        await self.client.send_attachment(sid, attachment.id)
        self.say(f"-- sent {attachment.name} ({attachment.size} bytes)")

    async def run(self) -> None:
        """Read commands until /quit or end of input, printing events meanwhile."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        prompt: PromptSession[str] = PromptSession(
            bottom_toolbar=self.toolbar, refresh_interval=1.0
        )
        with patch_stdout(raw=True):
            await self.client.connect()
            self.view.me = self.client.user
            self.view.connection = self.client.state
            me = self.client.user
            if me is not None:
                self.say(f"-- signed in as {me.name} ({me.role}); /help for commands")
            async with asyncio.TaskGroup() as tg:
                pump = tg.create_task(self.pump(), name="rtclient.tui.pump")
                try:
                    while True:
                        try:
                            line = await prompt.prompt_async("> ")
                        except (EOFError, KeyboardInterrupt):
                            break
                        cmd = parse_input(line)
                        if cmd is None:
                            continue
                        try:
                            if not await self.handle(cmd):
                                break
                        except (RtError, ValueError, OSError) as exc:
                            self.say(f"!! {exc}")
                            if isinstance(exc, ClientClosed):
                                break
                finally:
                    pump.cancel()


async def _login(args: argparse.Namespace) -> AsyncClient:
    from prompt_toolkit import PromptSession

    subprotocol = MSGPACK if args.msgpack else JSON
    if args.token:
        return AsyncClient(args.server, args.token, subprotocol=subprotocol)
    ask: PromptSession[str] = PromptSession()
    email = args.email or await ask.prompt_async("email: ")
    password = (
        args.password
        or os.environ.get("RTCLIENT_PASSWORD")
        or await ask.prompt_async("password: ", is_password=True)
    )
    return await AsyncClient.login(args.server, email, password, subprotocol=subprotocol)


async def _main(args: argparse.Namespace) -> int:
    try:
        client = await _login(args)
    except RtError as exc:
        print(f"cannot sign in: {exc}")
        return 1
    try:
        await App(client, args.language).run()
    except ClientClosed as exc:
        print(f"closed: {exc}")
        return 1
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return 0


def main(argv: list[str] | None = None) -> None:
    """The ``rtclient`` console script."""
    parser = argparse.ArgumentParser(prog="rtclient", description="rtserver's terminal client")
    parser.add_argument(
        "--server", default=os.environ.get("RTCLIENT_SERVER", "http://127.0.0.1:8000")
    )
    parser.add_argument("--email")
    parser.add_argument("--password")
    parser.add_argument("--token", help="a token instead of e-mail and password")
    parser.add_argument("--language", default="en", help="the language of your requests")
    parser.add_argument("--msgpack", action="store_true", help="use rt.v1.msgpack")
    parser.add_argument("--log", help="write the client's log to this file")
    args = parser.parse_args(argv)
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO)
    else:
        # Log lines on stderr would tear the prompt apart: no log unless asked for.
        logging.getLogger("rtclient").addHandler(logging.NullHandler())
        logging.getLogger("rtclient").propagate = False
    raise SystemExit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
