"""The terminal client's view, pure: events in, lines to print and a status line out.

No terminal, no sockets: :mod:`rtclient.tui` feeds it the client's events and
prints what it returns, and the tests do the same without either.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from rtclient.client import ConnectionState
from rtclient.models import (
    BillingEvent,
    Event,
    Message,
    Offer,
    OfferNew,
    OfferRevoked,
    Person,
    Reminder,
    RequestMessageEvent,
    RequestUpdate,
    RoomPresence,
    Session,
    SessionCancelled,
    SessionUpdate,
    State,
    Summary,
    TypingEvent,
    UnknownEvent,
    User,
)

HELP = """\
commands:
  /available, /away          take instant offers or not (experts)
  /offers                    the open offers, numbered
  /accept N, /decline N      answer offer N
  /ask SKILL TITLE...        ask for help now (customers)
  /cancel                    cancel your open request
  /sessions                  your active sessions; /join ID switches to one
  /code LANG SOURCE... | /code PATH   send a code snippet (a file: its language by extension)
  /attach PATH               upload a file and post it in the chat
  /start, /pause             billable time (the expert)
  /end [DISCOUNT%]           end the session (the expert may discount it, 0-100)
  /quit                      leave
anything else is sent to the current session as a message"""

EXTENSIONS = {
    ".py": "python",
    ".js": "javascript",
    ".ts": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".rb": "ruby",
    ".sh": "bash",
    ".sql": "sql",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".html": "html",
    ".css": "css",
}


def money(cents: int) -> str:
    """``$12.34``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100}.{abs(cents) % 100:02d}"


def charge_cents(rate_cents_per_15min: int, seconds: int, discount_pct: int = 0) -> int:
    """The contract's charge: ``rate * seconds / 900``, less the discount, rounded half up."""
    numerator = rate_cents_per_15min * seconds * (100 - discount_pct)
    denominator = 900 * 100
    return (2 * numerator + denominator) // (2 * denominator)


def clock(seconds: int) -> str:
    """``1:02:03``."""
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def who(person: Person | None) -> str:
    """A person's name for a line."""
    if person is None:
        return "?"
    return person.name or person.id


@dataclass(frozen=True, slots=True)
class Input:
    """A parsed input line: a command (``accept``, ``say``, ...) and its arguments."""

    command: str
    args: tuple[str, ...] = ()
    text: str = ""


def parse_input(line: str) -> Input | None:
    """What the user typed: a ``/command`` with arguments, or text to send (``say``)."""
    line = line.strip()
    if not line:
        return None
    if not line.startswith("/") or line.startswith("//"):
        return Input("say", text=line[1:] if line.startswith("//") else line)
    head, _, rest = line[1:].partition(" ")
    try:
        args = tuple(shlex.split(rest))
    except ValueError:
        args = tuple(rest.split())
    return Input(head.lower(), args, rest.strip())


@dataclass
class View:
    """What the terminal shows: offers by number, the current session, its billing."""

    me: User | None = None
    connection: ConnectionState = ConnectionState.CONNECTING
    offers: dict[int, Offer] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    next_number: int = 1
    sessions: dict[str, Session] = field(default_factory=dict)
    current: str | None = None
    request_id: str | None = None
    billing_running: bool = False
    billing_seconds: int = 0
    billing_at: float = 0.0  # the monotonic time the server's figure arrived
    presence: str | None = None

    # -- offers ---------------------------------------------------------------------------

    def add_offer(self, offer: Offer) -> int:
        """Number an offer (the same number if it was seen before)."""
        n = self.numbers.get(offer.request_id)
        if n is None:
            n = self.numbers[offer.request_id] = self.next_number
            self.next_number += 1
        self.offers[n] = offer
        return n

    def offer(self, number: str) -> Offer | None:
        """The open offer of this number, if any."""
        try:
            return self.offers.get(int(number.lstrip("#")))
        except ValueError:
            return None

    def drop_offer(self, request_id: str) -> int | None:
        """Forget an offer; its number."""
        n = self.numbers.get(request_id)
        if n is not None:
            self.offers.pop(n, None)
        return n

    def offer_line(self, n: int, offer: Offer) -> str:
        """One offer, as listed."""
        rate = (
            f", {money(offer.rate_cents_per_15min)}/15 min"
            if offer.rate_cents_per_15min is not None
            else ""
        )
        skills = ", ".join(offer.skills)
        return (
            f"[offer {n}] {offer.title!r} from {who(offer.customer)} ({skills}; "
            f"{offer.language}{rate}): /accept {n} or /decline {n}"
        )

    # -- sessions and billing ---------------------------------------------------------------

    def set_session(self, session: Session, now: float) -> None:
        """Remember a session; an active one becomes the current one."""
        self.sessions[session.id] = session
        if session.status in ("active", "scheduled") and self.current is None:
            self.current = session.id
        if session.status in ("ended", "cancelled") and self.current == session.id:
            self.current = next(
                (s.id for s in self.sessions.values() if s.status == "active"), None
            )
        if session.id == self.current and session.billing is not None:
            self.set_billing(session.billing.running, session.billing.billable_seconds, now)

    def set_billing(self, running: bool, seconds: int | None, now: float) -> None:
        """The server's latest figure for the current session."""
        self.billing_running = running
        if seconds is not None:
            self.billing_seconds = seconds
        self.billing_at = now

    def billed_seconds(self, now: float) -> int:
        """The server's figure, counted on locally while it runs."""
        extra = int(now - self.billing_at) if self.billing_running else 0
        return self.billing_seconds + max(0, extra)

    def status(self, now: float) -> str:
        """The bottom line: who, connection, session and billing."""
        parts = []
        if self.me is not None:
            parts.append(f"{self.me.name} ({self.me.role})")
        parts.append(self.connection.value)
        if self.presence:
            parts.append(self.presence)
        if self.offers:
            parts.append(f"{len(self.offers)} offer(s)")
        session = self.sessions.get(self.current) if self.current else None
        if session is not None:
            seconds = self.billed_seconds(now)
            state = "billing" if self.billing_running else "paused"
            line = f"session {session.title!r}: {state} {clock(seconds)}"
            if session.rate_cents_per_15min is not None:
                line += f" = {money(charge_cents(session.rate_cents_per_15min, seconds))}"
            parts.append(line)
        return " | ".join(parts)

    # -- events -----------------------------------------------------------------------------

    def on_event(self, event: Event | UnknownEvent, now: float) -> list[str]:
        """Apply an event; the lines to print for it."""
        match event:
            case State():
                self.offers.clear()
                for offer in event.offers:
                    self.add_offer(offer)
                for session in event.sessions:
                    self.set_session(session, now)
                if event.presence:
                    self.presence = event.presence
                lines = [self.offer_line(n, o) for n, o in sorted(self.offers.items())]
                active = [s for s in event.sessions if s.status == "active"]
                if active:
                    lines.append(f"{len(active)} active session(s); /sessions lists them")
                return lines
            case OfferNew(offer=offer):
                return [self.offer_line(self.add_offer(offer), offer)]
            case OfferRevoked(request_id=rid, reason=reason):
                n = self.drop_offer(rid)
                return [f"[offer {n}] withdrawn ({reason})"] if n is not None else []
            case RequestUpdate():
                if event.status == "accepted":
                    return [f"{who(event.expert)} accepted your request"]
                if event.status == "open":
                    return [f"your request is open: {event.notified} expert(s) notified"]
                self.request_id = None
                return [f"your request is {event.status}"]
            case RequestMessageEvent():
                return [f"{who(event.from_)} (about the request): {event.text}"]
            case SessionUpdate(session=session):
                self.set_session(session, now)
                if session.status == "ended":
                    return [f"session {session.title!r} ended: {self.summary(session.summary)}"]
                return [f"session {session.title!r} is {session.status}"]
            case SessionCancelled():
                return [f"session {event.session_id} cancelled ({event.reason})"]
            case Message():
                return self.message_lines(event)
            case TypingEvent():
                return []
            case BillingEvent():
                if event.session_id == self.current:
                    self.set_billing(event.running, event.billable_seconds, now)
                state = "running" if event.running else "paused"
                why = f" ({event.reason})" if event.reason else ""
                return [f"billing {state}{why}: {clock(event.billable_seconds)} so far"]
            case RoomPresence():
                return [f"{who(event.user)} {'joined' if event.present else 'left'}"]
            case Reminder():
                return [f"reminder: a session starts at {event.starts_at}"]
            case UnknownEvent():
                return []
        return []

    def message_lines(self, m: Message) -> list[str]:
        """A chat message as printed."""
        name = who(m.from_)
        if m.kind == "code" and m.code is not None:
            body = [f"    {line}" for line in m.code.source.splitlines()]
            return [f"{name} [code {m.code.language or 'text'}]:", *body]
        if m.kind == "attachment" and m.attachment is not None:
            a = m.attachment
            return [f"{name} sent a file: {a.name} ({a.size} bytes, id {a.id})"]
        return [f"{name}: {m.text}"]

    @staticmethod
    def summary(summary: Summary | None) -> str:
        """What ending charged."""
        if summary is None:
            return "no charge"
        return (
            f"{clock(summary.billable_seconds)} billed, charged {money(summary.charge_cents)}"
            f" ({summary.discount_pct}% discount), expert earns "
            f"{money(summary.expert_earnings_cents)}"
        )
