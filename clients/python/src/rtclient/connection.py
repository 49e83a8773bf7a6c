"""The connection under :class:`~rtclient.client.AsyncClient`: one WebSocket kept open.

:class:`Connection` is a thin pump around the pure parts (:mod:`rtclient.policy`,
:mod:`rtclient.outbox`, :mod:`rtclient.codec`, :mod:`rtclient.models`):

- it connects, says ``hello``, and on any loss reconnects with jittered
  exponential backoff (a node going away, 1001/1012: at once); 4401 (the token
  is refused; after one new login, when it has a ``relogin``) and 4403
  (suspended) stop it for good (:class:`AuthFailed`, :class:`AccountSuspended`);
- after each new ``hello`` it sends the last ``presence`` again, joins every
  session it had joined with ``after_seq`` = the last seq it holds (messages are
  kept once by seq), then sends its outbox: messages not yet acknowledged, each
  with the ``cid`` it was made with, so that the server stores each exactly once;
- events go to a bounded queue. **Overflow policy: drop the oldest** and count
  it (:meth:`Connection.statistics`), never block the reader: a reader that
  blocks stops replies too, and the server would close a socket that does not
  read (4408). Chat messages are also kept in each session's
  :class:`~rtclient.outbox.Transcript`, which a slow consumer can read instead.

Commands sent while the client is reconnecting wait for the socket (up to their
timeout). A command whose socket closes before its reply raises
:class:`Disconnected`: it may or may not have been carried out. ``message.send``
and ``request.create`` carry a client id and are sent again by the client
itself; the others are left to the caller (``state`` after a reconnect tells
what happened).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random as _random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from rtclient.codec import JSON, Codec
from rtclient.commands import (
    Command,
    Hello,
    MessageSend,
    Presence,
    SessionJoin,
    SessionLeave,
)
from rtclient.errors import (
    AccountSuspended,
    AuthFailed,
    CallError,
    ClientClosed,
    Disconnected,
    InvalidState,
    NotFound,
    RateLimited,
    ReplyTimeout,
    RtError,
    TransportError,
    Unauthenticated,
    error_from_wire,
)
from rtclient.http import AsyncApi
from rtclient.models import (
    EmptyReply,
    Event,
    HelloReply,
    JoinReply,
    Message,
    Person,
    PresenceReply,
    Reply,
    SendReply,
    SessionCancelled,
    SessionUpdate,
    State,
    UnknownEvent,
    User,
    to_event,
)
from rtclient.outbox import Outbox, Transcript
from rtclient.policy import CLOSE_UNAUTHENTICATED, Backoff, CloseAction, close_action

log = logging.getLogger("rtclient.connection")

E = TypeVar("E", bound=Event)
P = TypeVar("P", bound=Reply)


class ConnectionState(enum.Enum):
    """Where the connection is; watch it with :meth:`AsyncClient.on_state_change`."""

    CONNECTING = "connecting"  # the first connection is being made
    OPEN = "open"  # authenticated: commands go out now
    RECONNECTING = "reconnecting"  # lost; waiting out the backoff or connecting again
    CLOSED = "closed"  # not started, closed by aclose(), or refused for good


@dataclass(frozen=True, slots=True)
class Statistics:
    """Counters of one client (trio's ``statistics()``)."""

    state: ConnectionState
    connects: int
    events_queued: int
    events_dropped: int
    outbox_pending: int
    last_close_code: int | None


class _Room:
    """A session this client takes part in: its transcript, and whether to rejoin it."""

    def __init__(self, session_id: str) -> None:
        self.transcript = Transcript(session_id)
        self.wanted = False  # joined by the user: join again after each reconnect
        self.over = False  # ended or cancelled: nothing more is sent


_CLOSED = object()  # the end of the event stream, put in the queue by aclose()


def ws_url_for(base_url: str) -> str:
    """``http(s)://host[:port][/prefix]`` to ``ws(s)://host[:port][/prefix]/ws``."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))


class Connection:
    """One rtserver connection: ``async with`` it (or :meth:`connect` and :meth:`aclose`).

    ``base_url`` is the server's HTTP address (``http://127.0.0.1:8000``); the
    socket is ``/ws`` there unless ``ws_url`` says otherwise. ``api`` is the
    HTTP API with the same token. ``max_events`` bounds the event queue (drop
    oldest past it), ``max_outbox`` the unsent messages (:class:`OutboxFull`).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        subprotocol: str = JSON,
        ws_url: str | None = None,
        backoff: Backoff | None = None,
        max_events: int = 1000,
        max_outbox: int = 1000,
        reply_timeout: float = 30.0,
        open_timeout: float = 10.0,
        random: Callable[[], float] = _random.random,
        relogin: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.api = AsyncApi(base_url, token)
        # Gets a fresh token when the server refuses this one (4401): tokens expire
        # (--token-ttl) and a socket never outlives its token.
        self._relogin = relogin
        self._relogged = False
        self.ws_url = ws_url or ws_url_for(base_url)
        self.codec = Codec(subprotocol)
        self.backoff = backoff or Backoff()
        self.reply_timeout = reply_timeout
        self.open_timeout = open_timeout
        self._random = random
        self._events: asyncio.Queue[Any] = asyncio.Queue(max_events)
        self._events_dropped = 0
        self._outbox = Outbox(max_outbox)
        self._sent: dict[str, asyncio.Future[SendReply]] = {}
        self._outbox_wake = asyncio.Event()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._rooms: dict[str, _Room] = {}
        self._presence: Literal["available", "away"] | None = None
        self._state = ConnectionState.CLOSED
        self._state_changed = asyncio.Event()
        self._listeners: list[Callable[[ConnectionState], None]] = []
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopped: ClientClosed | None = None
        self._ended = False  # the end of the event stream was queued
        self._attempt = 0
        self._connects = 0
        self.user: User | None = None
        self.hello: HelloReply | None = None
        self.last_state: State | None = None
        self.last_close_code: int | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def connect(self, timeout: float | None = 30.0) -> Self:
        """Start the connection and wait until it is open (or refused for good).

        Raises :class:`AuthFailed` when the token is refused, :class:`ReplyTimeout`
        when no server answered within ``timeout`` (the client keeps trying).
        """
        if self._stopped is not None:
            raise self._stopped
        if self._runner is None:
            self._set_state(ConnectionState.CONNECTING)
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name="rtclient.connection"
            )
        await self.wait_open(timeout)
        return self

    async def aclose(self) -> None:
        """Close the socket for good; what is still unsent fails with :class:`ClientClosed`."""
        if self._stopped is None:
            self._stopped = ClientClosed("the client was closed")
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._finish()
        await self.api.aclose()

    async def __aenter__(self) -> Self:
        try:
            return await self.connect()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the connection state ---------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state now."""
        return self._state

    @property
    def closed_reason(self) -> ClientClosed | None:
        """Why the client stopped (None while it runs)."""
        return self._stopped

    def on_state_change(self, callback: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``callback(state)`` at each change; returns a function that stops it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def wait_state(self, *states: ConnectionState) -> ConnectionState:
        """Wait until the state is one of ``states``; returns it."""
        while self._state not in states:
            changed = self._state_changed
            await changed.wait()
        return self._state

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the socket is open: :class:`ClientClosed` if it stopped instead."""
        if self._state is ConnectionState.OPEN:
            return
        if self._stopped is not None:
            raise self._stopped
        if self._runner is None:
            raise ClientClosed("not connected: use `async with` or connect()")
        try:
            async with asyncio.timeout(timeout):
                now = await self.wait_state(ConnectionState.OPEN, ConnectionState.CLOSED)
        except TimeoutError:
            raise ReplyTimeout(f"the connection did not open within {timeout} s") from None
        if now is not ConnectionState.OPEN:
            raise self._stopped or ClientClosed()

    def statistics(self) -> Statistics:
        """Counters now."""
        return Statistics(
            state=self._state,
            connects=self._connects,
            events_queued=self._events.qsize(),
            events_dropped=self._events_dropped,
            outbox_pending=len(self._outbox),
            last_close_code=self.last_close_code,
        )

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        log.debug("%s -> %s", self._state.value, state.value)
        self._state = state
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        for callback in list(self._listeners):
            try:
                callback(state)
            except Exception:
                log.exception("state listener failed")

    # -- the pump ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, and reconnect until closed or refused."""
        try:
            while True:
                code = await self._serve_once()
                action = close_action(code)
                if action is CloseAction.STOP_AUTH and not await self._login_again():
                    self._stopped = AuthFailed("the server refused the token", close_code=code)
                    break
                if action is CloseAction.STOP_SUSPENDED:
                    self._stopped = AccountSuspended("the account is suspended", close_code=code)
                    break
                delay = self.backoff.delay(self._attempt, action, self._random)
                self._attempt += 1
                self._set_state(
                    ConnectionState.RECONNECTING if self._connects else ConnectionState.CONNECTING
                )
                log.info(
                    "socket closed (code %s); reconnecting in %.2f s (attempt %d)",
                    code,
                    delay,
                    self._attempt,
                )
                await asyncio.sleep(delay)
        except Exception as exc:
            # A bug, or a URL that can never work: stop, and say why to every caller.
            log.exception("the connection failed")
            stopped = ClientClosed(f"the connection failed: {exc!r}")
            stopped.__cause__ = exc
            self._stopped = stopped
        finally:
            self._finish()

    async def _login_again(self) -> bool:
        """A fresh token after a 4401, if we can get one: once, until a hello passes again."""
        if self._relogin is None or self._relogged:
            return False
        self._relogged = True
        try:
            self.api.token = await self._relogin()
        except RtError as exc:
            log.warning("cannot log in again: %s", exc)
            return False
        log.info("the token was refused; logged in again")
        return True

    async def _serve_once(self) -> int | None:
        """One socket from connect to close: its close code (None if it never opened)."""
        try:
            ws = await websockets.connect(
                self.ws_url,
                subprotocols=[self.codec.subprotocol],  # type: ignore[list-item]
                open_timeout=self.open_timeout,
                max_size=None,
                compression=None,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            log.info("cannot connect to %s: %r", self.ws_url, exc)
            return None
        self._ws = ws
        try:
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(self._read(ws), name="rtclient.reader")
                session = tg.create_task(self._session(ws), name="rtclient.session")
                code = await reader
                session.cancel()
        finally:
            self._ws = None
            await ws.close()
            self._fail_pending()
        self.last_close_code = code
        return code

    async def _session(self, ws: ClientConnection) -> None:
        """Say hello, then resume what the last socket left: presence, rooms, outbox."""
        try:
            hello = await self._request(ws, Hello(token=self.api.token or ""), HelloReply)
        except Unauthenticated:
            # The server closes with 4401 next; make sure we stop even if it does not.
            await ws.close(CLOSE_UNAUTHENTICATED, "refused")
            return
        except (CallError, TransportError) as exc:
            log.info("hello failed: %r", exc)
            await ws.close()
            return
        self.hello, self.user = hello, hello.user
        self._attempt = 0
        self._relogged = False
        self._connects += 1
        self._set_state(ConnectionState.OPEN)
        try:
            if self._presence is not None:
                try:
                    await self._request(ws, Presence(status=self._presence), PresenceReply)
                except CallError as exc:
                    log.warning("presence %s not restored: %s", self._presence, exc)
            for room in list(self._rooms.values()):
                if room.wanted and not room.over:
                    try:
                        await self._join(ws, room)
                    except CallError as exc:
                        log.warning("session %s not rejoined: %s", room.transcript.session_id, exc)
            await self._flush(ws)
        except TransportError:
            return  # the socket went: the next one starts over

    async def _read(self, ws: ClientConnection) -> int | None:
        """Read frames until the socket closes; its close code."""
        try:
            async for data in ws:
                try:
                    frame = self.codec.decode(data)
                except msgspec.DecodeError:
                    log.warning("a frame that does not decode: %r", data[:200])
                    continue
                if isinstance(frame, dict):
                    self._dispatch(frame)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code

    def _dispatch(self, frame: dict[str, Any]) -> None:
        ftype = frame.get("type")
        if ftype in ("ok", "error"):
            fut = self._pending.get(frame.get("re"))  # type: ignore[arg-type]
            if fut is not None:
                if not fut.done():
                    fut.set_result(frame)
            elif ftype == "error":
                log.warning("error from the server: %s", frame)
            return
        event = to_event(frame)
        if isinstance(event, Message):
            self._take_message(event)
            return
        if isinstance(event, State):
            self.last_state = event
        elif isinstance(event, SessionUpdate) and event.session.status in ("ended", "cancelled"):
            self._session_over(event.session.id)
        elif isinstance(event, SessionCancelled):
            self._session_over(event.session_id)
        self._emit(event)

    def _emit(self, event: Event | UnknownEvent | object) -> None:
        if self._events.full():
            self._events.get_nowait()
            self._events_dropped += 1
            if self._events_dropped == 1 or self._events_dropped % 1000 == 0:
                log.warning(
                    "event queue full (%d): dropped the oldest, %d so far",
                    self._events.maxsize,
                    self._events_dropped,
                )
        self._events.put_nowait(event)

    def _room(self, session_id: str) -> _Room:
        room = self._rooms.get(session_id)
        if room is None:
            room = self._rooms[session_id] = _Room(session_id)
        return room

    def _take_message(self, message: Message) -> None:
        """Keep a message once; our own acknowledges its outbox entry instead of an event."""
        if not self._room(message.session_id).transcript.add(message):
            return
        mine = message.from_ is not None and self.user is not None
        if mine and message.from_.id == self.user.id and message.cid in self._outbox:  # type: ignore[union-attr]
            assert message.cid is not None
            self._outbox.remove(message.cid)
            self._resolve(message.cid, SendReply(seq=message.seq, at=message.at, duplicate=True))
            return
        self._emit(message)

    def _resolve(self, cid: str, reply: SendReply | BaseException) -> None:
        fut = self._sent.pop(cid, None)
        if fut is None or fut.done():
            return
        if isinstance(reply, BaseException):
            fut.set_exception(reply)
        else:
            fut.set_result(reply)

    def _session_over(self, session_id: str) -> None:
        # Not rejoined any more. Its outbox entries stay: one may be stored already
        # with its ok still on the way (the end overtook it); the server answers each.
        room = self._room(session_id)
        room.over, room.wanted = True, False

    async def _join(self, ws: ClientConnection, room: _Room) -> JoinReply:
        sid = room.transcript.session_id
        try:
            reply = await self._request(
                ws, SessionJoin(session_id=sid, after_seq=room.transcript.last_seq), JoinReply
            )
            if reply.reload:
                # The server's history is another one (a restored database): start over.
                room.transcript.reset()
                reply = await self._request(ws, SessionJoin(session_id=sid), JoinReply)
        except (InvalidState, NotFound):
            self._session_over(sid)
            raise
        for message in reply.messages:
            self._take_message(message)
        return reply

    async def _flush(self, ws: ClientConnection) -> None:
        """Send the outbox in order, one at a time, for as long as this socket lives."""
        while True:
            entry = self._outbox.first()
            if entry is None:
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
                continue
            entry.attempts += 1
            try:
                reply = await self._request(ws, entry.command, SendReply)
            except ReplyTimeout:
                continue  # the same cid again: stored at most once
            except CallError as exc:
                retryable = isinstance(exc, RateLimited) or exc.code == "internal"
                if retryable and entry.attempts < 10:
                    await asyncio.sleep(exc.retry_after or min(8.0, 0.25 * 2**entry.attempts))
                    continue
                # Refused for good. (A resend of a message stored before its session
                # ended is not refused: the server answers its first seq.)
                if self._outbox.remove(entry.cid) is not None:
                    self._resolve(entry.cid, exc)
                continue
            if self._outbox.remove(entry.cid) is None:
                continue  # its echo acknowledged it first
            cmd = entry.command
            me = self.user
            self._room(cmd.session_id).transcript.add(
                Message(
                    session_id=cmd.session_id,
                    seq=reply.seq,
                    cid=cmd.cid,
                    from_=Person(id=me.id, name=me.name, role=me.role) if me else None,
                    kind=cmd.kind,
                    text=cmd.text,
                    code=cmd.code,
                    at=reply.at,
                )
            )
            self._resolve(entry.cid, reply)

    async def _request(
        self,
        ws: ClientConnection,
        command: Command,
        reply_type: type[P],
        timeout: float | None = None,
    ) -> P:
        """Send one command on this socket and wait for its reply."""
        cmd_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        try:
            try:
                await ws.send(self.codec.encode(msgspec.structs.replace(command, id=cmd_id)))
            except websockets.ConnectionClosed:
                raise Disconnected("the socket closed before the command went out") from None
            try:
                async with asyncio.timeout(timeout or self.reply_timeout):
                    frame = await fut
            except TimeoutError:
                raise ReplyTimeout(f"no reply to {type(command).__name__}") from None
        finally:
            self._pending.pop(cmd_id, None)
        if frame.get("type") == "error":
            raise error_from_wire(frame)
        return msgspec.convert(frame, reply_type)

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(Disconnected("the socket closed before the reply"))
                # Nobody may be waiting any more (a timed-out caller): not an error.
                fut.exception()

    def _finish(self) -> None:
        """The client stopped: fail what waits, end the event stream."""
        if self._stopped is None:
            self._stopped = ClientClosed("the client stopped")
        self._set_state(ConnectionState.CLOSED)
        self._fail_pending()
        for entry in self._outbox:
            self._outbox.remove(entry.cid)
            self._resolve(entry.cid, self._stopped)
        if not self._ended:
            self._ended = True
            self._emit(_CLOSED)

    # -- commands ---------------------------------------------------------------------------------

    async def call(
        self, command: Command, reply_type: type[P], *, timeout: float | None = None
    ) -> P:
        """Send any command once the socket is open; its typed ``ok`` or a :class:`CallError`."""
        await self.wait_open(timeout or self.reply_timeout)
        ws = self._ws
        if ws is None:
            raise Disconnected("the socket closed")
        return await self._request(ws, command, reply_type, timeout)

    async def set_presence(self, status: Literal["available", "away"]) -> None:
        """Take instant requests (``available``) or not (experts); sent again after reconnects."""
        self._presence = status
        await self.call(Presence(status=status), PresenceReply)

    async def join(self, session_id: str) -> JoinReply:
        """Enter a session room and get what was missed; joined again after every reconnect.

        The reply's messages are also delivered as events (each once).
        """
        room = self._room(session_id)
        room.wanted = True
        await self.wait_open(self.reply_timeout)
        if self._ws is None:
            raise Disconnected("the socket closed")
        return await self._join(self._ws, room)

    async def leave(self, session_id: str) -> None:
        """Leave a session room (the session goes on); not joined again after reconnects."""
        self._room(session_id).wanted = False
        await self.call(SessionLeave(session_id=session_id), EmptyReply)

    def transcript(self, session_id: str) -> Transcript:
        """The session's messages as this client holds them, each once, by seq."""
        return self._room(session_id).transcript

    def send_nowait(self, command: MessageSend) -> asyncio.Future[SendReply]:
        """Queue a message; the future resolves with its ``seq`` once stored.

        Raises :class:`OutboxFull` when ``max_outbox`` messages already wait.
        """
        if self._stopped is not None:
            raise self._stopped
        self._outbox.add(command)
        fut = self._sent.get(command.cid)
        if fut is None:
            fut = self._sent[command.cid] = asyncio.get_running_loop().create_future()
        self._outbox_wake.set()
        return fut

    async def send(self, command: MessageSend) -> SendReply:
        """Queue a message and wait until the server stored it (across reconnects)."""
        return await asyncio.shield(self.send_nowait(command))

    # -- events -----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event | UnknownEvent]:
        """Every event, in order, until the client closes."""
        while (event := await self.get_event()) is not None:
            yield event

    async def get_event(self) -> Event | UnknownEvent | None:
        """The next event, waiting for it; None once the client has closed."""
        event = await self._events.get()
        if event is _CLOSED:
            self._events.put_nowait(_CLOSED)  # for every other reader
            return None
        return event  # type: ignore[no-any-return]

    async def next_event(
        self,
        type_: type[E],
        where: Callable[[E], bool] | None = None,
        timeout: float | None = 30.0,
    ) -> E:
        """The next event of this type (matching ``where``); **events of other types
        taken meanwhile are discarded** (use :meth:`events` to see everything)."""
        try:
            async with asyncio.timeout(timeout):
                while (event := await self.get_event()) is not None:
                    if isinstance(event, type_) and (where is None or where(event)):
                        return event
        except TimeoutError:
            raise ReplyTimeout(f"no {type_.__name__} event within {timeout} s") from None
        raise self._stopped or ClientClosed()

    def get_event_nowait(self) -> Event | UnknownEvent | None:
        """The next queued event, or None."""
        try:
            event = self._events.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if event is _CLOSED:
            self._events.put_nowait(_CLOSED)
            return None
        return event  # type: ignore[no-any-return]
