"""Client commands: small immutable value types in one tagged union.

Each command is a frozen ``msgspec.Struct`` tagged by its ``type``. Validation
(types, lengths, ranges, required fields) is declared here and enforced by
msgspec when a decoded frame is converted; nothing here does I/O.
Unknown fields are ignored, so that newer clients can talk to older servers.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Identifiers of objects, as the server hands them out.
ObjId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# A command's id: an integer, or a string of at most 64 characters. (The integer
# must also fit in 64 bits, which msgspec cannot say here for unsigned ones:
# :func:`rtserver.protocol.parse_frame` checks it.)
CommandId = int | Annotated[str, msgspec.Meta(max_length=64)] | None
# A message sequence number: SQLite's integers, and what MessagePack can carry.
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Language = Annotated[str, msgspec.Meta(min_length=1, max_length=35)]
ChatText = Annotated[str, msgspec.Meta(min_length=1, max_length=8_000)]
Cid = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
WireTime = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Command(msgspec.Struct, frozen=True, tag_field="type", kw_only=True):
    """Base of every client command."""

    id: CommandId = None


class Hello(Command, tag="hello", kw_only=True, frozen=True):
    """Authenticate a new socket."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class Ping(Command, tag="ping", kw_only=True, frozen=True):
    """Answered with ``ok``; keeps idle proxies from closing the socket."""


class Presence(Command, tag="presence", kw_only=True, frozen=True):
    """An expert says whether he takes instant requests now."""

    status: Literal["available", "away"]


class RequestCreate(Command, tag="request.create", kw_only=True, frozen=True):
    """A customer asks for help, now or at one of the proposed times."""

    kind: Literal["instant", "scheduled"]
    title: Title
    description: Description = ""
    skills: Annotated[list[Skill], msgspec.Meta(min_length=1, max_length=20)]
    language: Language
    expert_id: ObjId | None = None
    proposed_times: Annotated[list[WireTime], msgspec.Meta(max_length=5)] = []
    attachment_ids: Annotated[list[ObjId], msgspec.Meta(max_length=10)] = []
    # The client's key for this request: sent again (a retry after a lost answer),
    # it returns the request it made the first time instead of a second one.
    cid: Cid | None = None


class RequestCancel(Command, tag="request.cancel", kw_only=True, frozen=True):
    """The customer withdraws an open request."""

    request_id: ObjId


class RequestMessage(Command, tag="request.message", kw_only=True, frozen=True):
    """A message about an open request, before anyone accepts it."""

    request_id: ObjId
    text: ChatText


class OfferAccept(Command, tag="offer.accept", kw_only=True, frozen=True):
    """An offered expert takes the request; the first one wins."""

    request_id: ObjId
    time: WireTime | None = None


class OfferDecline(Command, tag="offer.decline", kw_only=True, frozen=True):
    """An offered expert passes on the request."""

    request_id: ObjId


class SessionJoin(Command, tag="session.join", kw_only=True, frozen=True):
    """Enter a session room and fetch what was missed."""

    session_id: ObjId
    after_seq: Seq = 0


class SessionLeave(Command, tag="session.leave", kw_only=True, frozen=True):
    """Leave a session room without ending the session."""

    session_id: ObjId


class CodeBlock(msgspec.Struct, frozen=True):
    """A code snippet in a chat message."""

    language: Annotated[str, msgspec.Meta(max_length=32)]
    source: Annotated[str, msgspec.Meta(min_length=1)]


class MessageSend(Command, tag="message.send", kw_only=True, frozen=True):
    """A chat message in a session room."""

    session_id: ObjId
    cid: Cid
    kind: Literal["text", "code", "attachment"]
    # Lengths are checked by the room (too_large), not here (invalid_field).
    text: str | None = None
    code: CodeBlock | None = None
    attachment_id: ObjId | None = None


class Typing(Command, tag="typing", kw_only=True, frozen=True):
    """A participant is typing."""

    session_id: ObjId


class BillingStart(Command, tag="billing.start", kw_only=True, frozen=True):
    """The session's expert starts billable time."""

    session_id: ObjId


class BillingPause(Command, tag="billing.pause", kw_only=True, frozen=True):
    """The session's expert pauses billable time."""

    session_id: ObjId


class SessionCancel(Command, tag="session.cancel", kw_only=True, frozen=True):
    """Either side cancels a scheduled session before it starts (an extension)."""

    session_id: ObjId


class SessionEnd(Command, tag="session.end", kw_only=True, frozen=True):
    """A participant ends the session; the expert may discount it."""

    session_id: ObjId
    discount_pct: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None


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


def command_types(commands: tuple[type[Command], ...] = ALL_COMMANDS) -> dict[str, type[Command]]:
    """Map each wire ``type`` to its struct."""
    return {str(c.__struct_config__.tag): c for c in commands}


# --- HTTP bodies --------------------------------------------------------------

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RegisterBody(msgspec.Struct, frozen=True):
    """``POST /api/auth/register``."""

    email: Email
    password: Password
    name: Name
    role: Literal["customer", "expert", "manager"]


class LoginBody(msgspec.Struct, frozen=True):
    """``POST /api/auth/login``."""

    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


class PreferencesBody(msgspec.Struct, frozen=True):
    """``PUT /api/me/preferences``: what an expert offers and charges."""

    title: Annotated[str, msgspec.Meta(max_length=200)]
    skills: Annotated[list[Skill], msgspec.Meta(max_length=50)]
    languages: Annotated[list[Language], msgspec.Meta(min_length=1, max_length=20)]
    years_experience: Annotated[int, msgspec.Meta(ge=0, le=80)]
    rate_cents_per_15min: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
    bio: Annotated[str, msgspec.Meta(max_length=10_000)] = ""


# -- the portal's HTTP bodies ------------------------------------------------------------

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Note = Annotated[str, msgspec.Meta(max_length=2000)]


class ClaimBody(msgspec.Struct, frozen=True):
    """A customer's refund claim: why."""

    reason: Reason


class DisputeBody(msgspec.Struct, frozen=True):
    """The expert's summary of the session, disputing a claim."""

    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class DecisionBody(msgspec.Struct, frozen=True):
    """A community manager's decision on a claim."""

    outcome: Literal["refund", "deny", "no_fault"]
    note: Note = ""


class ReviewBody(msgspec.Struct, frozen=True):
    """A customer's rating of an ended session."""

    stars: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Note = ""


class PhoneBody(msgspec.Struct, frozen=True):
    """A phone number for texts, E.164; null removes it."""

    phone: Annotated[str, msgspec.Meta(max_length=32)] | None


class VerificationBody(msgspec.Struct, frozen=True):
    """A manager sets an expert's verification status."""

    status: Literal["pending", "verified", "rejected"]
    note: Note = ""


class SuspendBody(msgspec.Struct, frozen=True):
    """A manager suspends an account: why."""

    reason: Reason


class RestoreBody(msgspec.Struct, frozen=True):
    """A manager restores a suspended account."""

    reason: Note = ""


class PayoutRunBody(msgspec.Struct, frozen=True):
    """Pay out one month (UTC)."""

    month: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}$")]
