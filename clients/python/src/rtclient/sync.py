"""The blocking client, for scripts and threads: :class:`Client`.

It runs an :class:`~rtclient.client.AsyncClient` on a private event loop in a
thread of its own (as httpx pairs its two clients, the logic lives once): every
method hands a coroutine to that loop and waits for its result, so reconnects,
resume and the outbox work exactly as in the async client, even while the
calling thread is busy. State callbacks run on the loop's thread. ``api`` is
the blocking HTTP API (:class:`~rtclient.http.Api`) with the same token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar

from rtclient.client import AsyncClient, ConnectionState, Statistics
from rtclient.commands import Command, MessageSend
from rtclient.errors import ReplyTimeout
from rtclient.http import Api
from rtclient.models import (
    BillingState,
    Event,
    JoinReply,
    Message,
    Reply,
    Request,
    RequestNote,
    SendReply,
    Session,
    SessionCancelReply,
    Summary,
    UnknownEvent,
    User,
)

T = TypeVar("T")
E = TypeVar("E", bound=Event)
P = TypeVar("P", bound=Reply)


class Client:
    """A blocking rtserver client: ``with Client(url, token) as client: ...``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        credentials: tuple[str, str] | None = None,
        **kw: Any,
    ) -> None:
        self.api = Api(base_url, token)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="rtclient-loop", daemon=True
        )
        self._thread.start()

        async def make() -> AsyncClient:
            if credentials is not None:
                return await AsyncClient.login(base_url, *credentials, **kw)
            return AsyncClient(base_url, token, **kw)

        try:
            self._client = self._run(make())
        except BaseException:
            self._stop_loop()
            raise
        self.api.token = self._client.api.token

    @classmethod
    def login(cls, base_url: str, email: str, password: str, **kw: Any) -> Client:
        """A client with a fresh token (not connected yet: ``with`` or :meth:`connect`);
        it logs in again when the token expires (see :meth:`AsyncClient.login`)."""
        return cls(base_url, credentials=(email, password), **kw)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def connect(self, timeout: float | None = 30.0) -> Client:
        """Open the connection; see :meth:`AsyncClient.connect`."""
        self._run(self._client.connect(timeout))
        return self

    def close(self) -> None:
        """Close the socket and stop the loop's thread."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.aclose(), timeout=30)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self.api.close()

    def __enter__(self) -> Client:
        try:
            return self.connect()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- state --------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state now."""
        return self._client.state

    @property
    def user(self) -> User | None:
        """The signed-in user, after the first hello."""
        return self._client.user

    def on_state_change(self, callback: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``callback(state)`` (on the loop's thread) at each change."""
        return self._client.on_state_change(callback)

    def wait_state(self, *states: ConnectionState, timeout: float | None = None) -> ConnectionState:
        """Block until the state is one of ``states``."""
        return self._run(self._client.wait_state(*states), timeout)

    def statistics(self) -> Statistics:
        """Counters now."""
        return self._client.statistics()

    # -- commands -------------------------------------------------------------------------------

    def call(self, command: Command, reply_type: type[P], *, timeout: float | None = None) -> P:
        """Any command; its typed ``ok``."""
        return self._run(self._client.call(command, reply_type, timeout=timeout))

    def ping(self) -> None:
        """A round trip."""
        self._run(self._client.ping())

    def set_presence(self, status: Literal["available", "away"]) -> None:
        """``available`` or ``away`` (experts); sent again after reconnects."""
        self._run(self._client.set_presence(status))

    def create_request(
        self, title: str, skills: list[str], language: str = "en", **kw: Any
    ) -> Request:
        """Ask for help; see :meth:`AsyncClient.create_request`."""
        return self._run(self._client.create_request(title, skills, language, **kw))

    def cancel_request(self, request_id: str) -> None:
        """Withdraw an open request."""
        self._run(self._client.cancel_request(request_id))

    def request_message(self, request_id: str, text: str) -> RequestNote:
        """A message about an open request."""
        return self._run(self._client.request_message(request_id, text))

    def accept_offer(self, request_id: str, time: str | None = None) -> Session:
        """Take an offered request."""
        return self._run(self._client.accept_offer(request_id, time))

    def decline_offer(self, request_id: str) -> None:
        """Pass on an offer."""
        self._run(self._client.decline_offer(request_id))

    def join(self, session_id: str) -> JoinReply:
        """Enter a session room; joined again after reconnects."""
        return self._run(self._client.join(session_id))

    def leave(self, session_id: str) -> None:
        """Leave a session room."""
        self._run(self._client.leave(session_id))

    def messages(self, session_id: str) -> list[Message]:
        """The session's messages held by this client, each once, in seq order."""

        async def read() -> list[Message]:
            return self._client.transcript(session_id).messages()

        return self._run(read())

    def send(self, command: MessageSend, timeout: float | None = None) -> SendReply:
        """Send a message and wait until it is stored (across reconnects)."""
        return self._run(self._client.send(command), timeout)

    def send_text(self, session_id: str, text: str, *, timeout: float | None = None) -> SendReply:
        """A text message, exactly once."""
        return self._run(self._client.send_text(session_id, text), timeout)

    def send_code(self, session_id: str, source: str, language: str = "") -> SendReply:
        """A code snippet."""
        return self._run(self._client.send_code(session_id, source, language))

    def send_attachment(self, session_id: str, attachment_id: str) -> SendReply:
        """An uploaded attachment posted in the chat."""
        return self._run(self._client.send_attachment(session_id, attachment_id))

    def typing(self, session_id: str) -> None:
        """Tell the other side you are typing."""
        self._run(self._client.typing(session_id))

    def start_billing(self, session_id: str) -> BillingState:
        """Start billable time (the expert)."""
        return self._run(self._client.start_billing(session_id))

    def pause_billing(self, session_id: str) -> BillingState:
        """Pause billable time (the expert)."""
        return self._run(self._client.pause_billing(session_id))

    def end_session(self, session_id: str, discount_pct: int | None = None) -> Summary | None:
        """End the session (the expert may discount it)."""
        return self._run(self._client.end_session(session_id, discount_pct))

    def cancel_session(self, session_id: str) -> SessionCancelReply:
        """Cancel a scheduled session."""
        return self._run(self._client.cancel_session(session_id))

    # -- events -----------------------------------------------------------------------------------

    def next_event(
        self, type_: type[E], where: Callable[[E], bool] | None = None, timeout: float = 30.0
    ) -> E:
        """The next event of this type; others taken meanwhile are discarded."""
        return self._run(self._client.next_event(type_, where, timeout))

    def get_event(self, timeout: float | None = None) -> Event | UnknownEvent | None:
        """The next event, waiting up to ``timeout``; None if none came (or the client closed)."""

        async def get() -> Event | UnknownEvent | None:
            try:
                async with asyncio.timeout(timeout):
                    return await self._client.get_event()
            except TimeoutError:
                return None

        return self._run(get())

    def events(self, timeout: float | None = None) -> Iterator[Event | UnknownEvent]:
        """Events as they come; stops when none came for ``timeout`` or the client closed."""
        while True:
            event = self.get_event(timeout)
            if event is None:
                return
            yield event


__all__ = ["Client", "ConnectionState", "ReplyTimeout"]
