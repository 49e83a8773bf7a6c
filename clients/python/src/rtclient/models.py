"""What the server sends: objects, events (one tagged union by ``type``) and replies.

Every struct is frozen and ignores fields it does not know, so that a newer
server (which may only add fields and frames) never breaks this client; an
event type this version does not know arrives as :class:`UnknownEvent`.
Field names follow docs/protocol.md; ``from`` is spelled ``from_`` in Python.
"""

from __future__ import annotations

from typing import Any

import msgspec

from rtclient.commands import CodeBlock

__all__ = [
    "EVENT_TYPES",
    "AnyEvent",
    "Attachment",
    "BillingEvent",
    "BillingReply",
    "BillingState",
    "Cancellation",
    "ClaimUpdate",
    "CodeBlock",
    "EmptyReply",
    "EndReply",
    "Event",
    "HelloReply",
    "JoinReply",
    "Message",
    "Offer",
    "OfferNew",
    "OfferRevoked",
    "PayoutSent",
    "Person",
    "PresenceReply",
    "Reminder",
    "Reply",
    "Request",
    "RequestMessageEvent",
    "RequestMessageReply",
    "RequestNote",
    "RequestReply",
    "RequestUpdate",
    "ReviewNew",
    "RoomPresence",
    "SendReply",
    "Session",
    "SessionCancelReply",
    "SessionCancelled",
    "SessionReply",
    "SessionUpdate",
    "State",
    "Summary",
    "TypingEvent",
    "UnknownEvent",
    "User",
    "VerificationUpdate",
    "to_event",
]


class Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the objects the server sends."""


class Person(Wire, frozen=True, kw_only=True):
    """Someone inside another object: ``{id, name, role}``."""

    id: str
    name: str | None = None
    role: str | None = None


class User(Wire, frozen=True, kw_only=True):
    """The signed-in user (``GET /api/me``, the hello reply); experts carry their profile."""

    id: str
    email: str | None = None
    name: str = ""
    role: str = ""
    status: str | None = None
    phone: str | None = None
    title: str | None = None
    skills: list[str] = []
    languages: list[str] = []
    years_experience: int | None = None
    rate_cents_per_15min: int | None = None
    bio: str | None = None
    verification_status: str | None = None
    presence: str | None = None


class Attachment(Wire, frozen=True, kw_only=True):
    """An uploaded file."""

    id: str
    name: str = ""
    size: int = 0
    content_type: str = ""
    sha256: str = ""
    kind: str = "file"


class Offer(Wire, frozen=True, kw_only=True):
    """A request as an offered expert sees it."""

    request_id: str
    kind: str
    direct: bool = False
    title: str = ""
    description: str = ""
    skills: list[str] = []
    language: str = ""
    customer: Person | None = None
    proposed_times: list[str] = []
    attachments: list[Attachment] = []
    expires_at: str | None = None
    rate_cents_per_15min: int | None = None


class Request(Wire, frozen=True, kw_only=True):
    """A request as its customer sees it."""

    id: str
    kind: str
    direct: bool = False
    expert_id: str | None = None
    title: str = ""
    description: str = ""
    skills: list[str] = []
    language: str = ""
    proposed_times: list[str] = []
    attachments: list[Attachment] = []
    status: str = "open"
    notified: int = 0
    created_at: str | None = None
    expires_at: str | None = None
    session_id: str | None = None


class BillingState(Wire, frozen=True, kw_only=True):
    """Whether billable time runs, and how much was counted (when the server says)."""

    running: bool
    billable_seconds: int | None = None


class Summary(Wire, frozen=True, kw_only=True):
    """What ending a session charged."""

    billable_seconds: int
    charge_cents: int
    discount_pct: int = 0
    expert_earnings_cents: int
    platform_fee_cents: int | None = None


class Cancellation(Wire, frozen=True, kw_only=True):
    """Why a scheduled session was cancelled, and who paid."""

    reason: str
    fee_cents: int = 0
    charged_user_id: str | None = None


class Session(Wire, frozen=True, kw_only=True):
    """A session as its participants see it."""

    id: str
    request_id: str | None = None
    kind: str = "instant"
    title: str = ""
    status: str
    customer: Person | None = None
    expert: Person | None = None
    scheduled_at: str | None = None
    rate_cents_per_15min: int | None = None
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    last_seq: int = 0
    billing: BillingState | None = None
    summary: Summary | None = None
    joined: list[str] = []
    cancellation: Cancellation | None = None


# -- events ---------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event the server pushes (frames without ``re``)."""


class State(Event, tag="state", frozen=True, kw_only=True):
    """After each hello (and ``resync: true`` when re-sent): replace your view with it."""

    offers: list[Offer] = []
    requests: list[Request] = []
    sessions: list[Session] = []
    presence: str | None = None
    resync: bool = False


class OfferNew(Event, tag="offer.new", frozen=True, kw_only=True):
    """An expert is offered a request."""

    offer: Offer


class OfferRevoked(Event, tag="offer.revoked", frozen=True, kw_only=True):
    """An offer was withdrawn: ``taken``, ``cancelled``, ``expired`` or ``withdrawn``."""

    request_id: str
    reason: str


class RequestUpdate(Event, tag="request.update", frozen=True, kw_only=True):
    """A customer's request changed status; ``session_id`` and ``expert`` when accepted."""

    request_id: str
    status: str
    notified: int = 0
    session_id: str | None = None
    expert: Person | None = None


class RequestMessageEvent(Event, tag="request.message", frozen=True, kw_only=True):
    """A message about an open request."""

    request_id: str
    from_: Person | None = msgspec.field(default=None, name="from")
    text: str = ""
    at: str | None = None


class SessionUpdate(Event, tag="session.update", frozen=True, kw_only=True):
    """A session was created, started, ended."""

    session: Session


class Message(Event, tag="message", frozen=True, kw_only=True):
    """A chat message (also the items of a join reply's ``messages``)."""

    session_id: str
    seq: int
    cid: str | None = None
    from_: Person | None = msgspec.field(default=None, name="from")
    kind: str = "text"
    text: str | None = None
    code: CodeBlock | None = None
    attachment: Attachment | None = None
    at: str | None = None


class TypingEvent(Event, tag="typing", frozen=True, kw_only=True):
    """The other side is typing."""

    session_id: str
    from_: Person | None = msgspec.field(default=None, name="from")


class BillingEvent(Event, tag="billing", frozen=True, kw_only=True):
    """Billable time started or paused (``reason: disconnected`` when by itself)."""

    session_id: str
    running: bool
    billable_seconds: int = 0
    reason: str | None = None


class Reminder(Event, tag="reminder", frozen=True, kw_only=True):
    """A scheduled session starts soon."""

    session_id: str
    starts_at: str
    minutes_before: float
    seconds_before: float | None = None


class SessionCancelled(Event, tag="session.cancelled", frozen=True, kw_only=True):
    """A scheduled session was cancelled (``no_show`` or ``cancelled``)."""

    session_id: str
    reason: str
    fee_cents: int = 0
    charged_user_id: str | None = None


class RoomPresence(Event, tag="room.presence", frozen=True, kw_only=True):
    """Someone joined (``present``) or left a session room."""

    session_id: str
    user: Person
    present: bool


class ClaimUpdate(Event, tag="claim.update", frozen=True, kw_only=True):
    """A refund claim moved a step (``claimed``, ``disputed``, ``decided``)."""

    step: str
    claim: dict[str, Any]


class ReviewNew(Event, tag="review.new", frozen=True, kw_only=True):
    """A customer reviewed the expert."""

    review: dict[str, Any]


class VerificationUpdate(Event, tag="verification.update", frozen=True, kw_only=True):
    """A manager changed the expert's verification status."""

    verification_status: str


class PayoutSent(Event, tag="payout.sent", frozen=True, kw_only=True):
    """The expert was paid."""

    payout: dict[str, Any]


class UnknownEvent(msgspec.Struct, frozen=True):
    """An event this version does not know (or could not read): its type and raw map."""

    type: str
    data: dict[str, Any]


AnyEvent = (
    State
    | OfferNew
    | OfferRevoked
    | RequestUpdate
    | RequestMessageEvent
    | SessionUpdate
    | Message
    | TypingEvent
    | BillingEvent
    | Reminder
    | SessionCancelled
    | RoomPresence
    | ClaimUpdate
    | ReviewNew
    | VerificationUpdate
    | PayoutSent
)

EVENT_TYPES: dict[str, type[Event]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        State,
        OfferNew,
        OfferRevoked,
        RequestUpdate,
        RequestMessageEvent,
        SessionUpdate,
        Message,
        TypingEvent,
        BillingEvent,
        Reminder,
        SessionCancelled,
        RoomPresence,
        ClaimUpdate,
        ReviewNew,
        VerificationUpdate,
        PayoutSent,
    )
}


def to_event(frame: dict[str, Any]) -> Event | UnknownEvent:
    """A decoded event frame as its struct; unknown or unreadable ones as :class:`UnknownEvent`."""
    ftype = str(frame.get("type"))
    cls = EVENT_TYPES.get(ftype)
    if cls is None:
        return UnknownEvent(ftype, frame)
    try:
        return msgspec.convert(frame, cls)
    except msgspec.ValidationError:
        # A server that changed a field's type: keep the frame rather than lose it.
        return UnknownEvent(ftype, frame)


# -- replies (the fields of an ``ok`` frame) ------------------------------------------------


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """Base of ``ok`` replies; ``re`` is the command's id."""

    re: int | str | None = None


class EmptyReply(Reply, frozen=True, kw_only=True):
    """An ``ok`` with nothing in it (ping, decline, cancel, leave, typing)."""


class HelloReply(Reply, frozen=True, kw_only=True):
    """The hello's ``ok``."""

    user: User
    server_time: str | None = None
    heartbeat: float = 25


class PresenceReply(Reply, frozen=True, kw_only=True):
    """The ``presence`` ok."""

    status: str | None = None


class RequestReply(Reply, frozen=True, kw_only=True):
    """``request.create``: the request (``duplicate`` when its ``cid`` was known)."""

    request: Request
    duplicate: bool = False


class RequestNote(Wire, frozen=True, kw_only=True):
    """A message about a request, as the ``request.message`` reply carries it."""

    request_id: str
    from_: Person | None = msgspec.field(default=None, name="from")
    text: str = ""
    at: str | None = None


class RequestMessageReply(Reply, frozen=True, kw_only=True):
    """``request.message``: the message as stored."""

    message: RequestNote


class SessionReply(Reply, frozen=True, kw_only=True):
    """``offer.accept``: the new session."""

    session: Session


class JoinReply(Reply, frozen=True, kw_only=True):
    """``session.join``: the session and every message after ``after_seq``."""

    session: Session
    messages: list[Message] = []
    last_seq: int = 0
    reload: bool = False
    present: list[str] = []
    billing: BillingState | None = None


class SendReply(Reply, frozen=True, kw_only=True):
    """``message.send``: where the message landed (``duplicate`` for a known cid)."""

    seq: int
    at: str | None = None
    duplicate: bool = False


class BillingReply(Reply, frozen=True, kw_only=True):
    """``billing.start`` / ``billing.pause``."""

    billing: BillingState


class EndReply(Reply, frozen=True, kw_only=True):
    """``session.end``."""

    summary: Summary | None = None


class SessionCancelReply(Reply, frozen=True, kw_only=True):
    """``session.cancel``."""

    fee_cents: int = 0
    charged_user_id: str | None = None
