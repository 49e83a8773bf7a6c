"""Client commands: frozen structs in one tagged union, mirroring the server's schemas.

Each struct has the same wire ``type`` and field names as its twin in
``rtserver/schemas.py`` (a test in the server's repository holds them equal);
validation is left to the server, which answers ``invalid_field`` with the
field it names. Fields left at their defaults are not sent.
"""

from __future__ import annotations

from typing import Literal

import msgspec

CommandId = int | str | None


class Command(msgspec.Struct, frozen=True, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every client command; ``id`` is set by the client when it sends it."""

    id: CommandId = None


class Hello(Command, tag="hello", kw_only=True, frozen=True):
    """Authenticate a new socket."""

    token: str


class Ping(Command, tag="ping", kw_only=True, frozen=True):
    """Answered with ``ok``."""


class Presence(Command, tag="presence", kw_only=True, frozen=True):
    """An expert says whether he takes instant requests now."""

    status: Literal["available", "away"]


class RequestCreate(Command, tag="request.create", kw_only=True, frozen=True):
    """A customer asks for help, now or at one of the proposed times."""

    kind: Literal["instant", "scheduled"]
    title: str
    description: str = ""
    skills: list[str]
    language: str
    expert_id: str | None = None
    proposed_times: list[str] = []
    attachment_ids: list[str] = []
    # The client's key for this request: a resend returns the first request.
    cid: str | None = None


class RequestCancel(Command, tag="request.cancel", kw_only=True, frozen=True):
    """The customer withdraws an open request."""

    request_id: str


class RequestMessage(Command, tag="request.message", kw_only=True, frozen=True):
    """A message about an open request, before anyone accepts it."""

    request_id: str
    text: str


class OfferAccept(Command, tag="offer.accept", kw_only=True, frozen=True):
    """An offered expert takes the request; the first one wins."""

    request_id: str
    time: str | None = None


class OfferDecline(Command, tag="offer.decline", kw_only=True, frozen=True):
    """An offered expert passes on the request."""

    request_id: str


class SessionJoin(Command, tag="session.join", kw_only=True, frozen=True):
    """Enter a session room and fetch what was missed after ``after_seq``."""

    session_id: str
    after_seq: int = 0


class SessionLeave(Command, tag="session.leave", kw_only=True, frozen=True):
    """Leave a session room without ending the session."""

    session_id: str


class CodeBlock(msgspec.Struct, frozen=True):
    """A code snippet in a chat message."""

    language: str
    source: str


class MessageSend(Command, tag="message.send", kw_only=True, frozen=True):
    """A chat message; ``cid`` makes a resend store nothing twice."""

    session_id: str
    cid: str
    kind: Literal["text", "code", "attachment"]
    text: str | None = None
    code: CodeBlock | None = None
    attachment_id: str | None = None


class Typing(Command, tag="typing", kw_only=True, frozen=True):
    """A participant is typing."""

    session_id: str


class BillingStart(Command, tag="billing.start", kw_only=True, frozen=True):
    """The session's expert starts billable time."""

    session_id: str


class BillingPause(Command, tag="billing.pause", kw_only=True, frozen=True):
    """The session's expert pauses billable time."""

    session_id: str


class SessionEnd(Command, tag="session.end", kw_only=True, frozen=True):
    """A participant ends the session; the expert may discount it (0-100)."""

    session_id: str
    discount_pct: int | None = None


class SessionCancel(Command, tag="session.cancel", kw_only=True, frozen=True):
    """Either side cancels a scheduled session before it starts."""

    session_id: str


ALL_COMMANDS: tuple[type[Command], ...] = (
    Hello,
    Ping,
    Presence,
    RequestCreate,
    RequestCancel,
    RequestMessage,
    OfferAccept,
    OfferDecline,
    SessionJoin,
    SessionLeave,
    MessageSend,
    Typing,
    BillingStart,
    BillingPause,
    SessionEnd,
    SessionCancel,
)
