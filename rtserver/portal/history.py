"""Session history: every session a user took part in, its details and transcript."""

from __future__ import annotations

from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.errors import InvalidField, NotFound
from rtserver.portal.common import Parts
from rtserver.storage.attachments import AttachmentStore
from rtserver.storage.db import decode_cursor, encode_cursor
from rtserver.storage.ledger import ledger_wire
from rtserver.storage.sessions import Session
from rtserver.storage.transcript import Transcript, message_wire
from rtserver.storage.users import User

STATUSES = ("scheduled", "active", "ended", "cancelled")


class History:
    """Session History, Upcoming Sessions and View Details."""

    def __init__(self, parts: Parts, attachments: AttachmentStore, transcript: Transcript) -> None:
        self.p = parts
        self.attachments = attachments
        self.transcript = transcript

    async def visible(self, user: User, session_id: str) -> Session:
        """A session its participants and managers may see; NotFound for anyone else."""
        session = await self.p.sessions.get(session_id)
        if session is None or (user.id not in session.participants() and user.role != "manager"):
            raise NotFound("no such session")
        return session

    async def page(
        self,
        user: User,
        statuses: list[str],
        disputed: bool,
        of_user: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """A page of sessions newest first, each with its claim and review."""
        for status in statuses:
            if status not in STATUSES:
                raise InvalidField(f"status is one of {', '.join(STATUSES)}", "status")
        before = None
        if cursor:
            ms, sid = decode_cursor(cursor, (int, str))
            before = (ms, sid)
        whose: str | None = user.id
        if user.role == "manager":
            whose = of_user
        found = await self.p.sessions.page(whose, statuses, disputed, before, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        ids = [s.id for s in found]
        claims = await self.p.claims.of_sessions(ids)
        reviews = await self.p.claims.reviews_of_sessions(ids)
        people = await self.p.people(
            [x for s in found for x in s.participants()]
            + [c.decided_by or "" for c in claims.values()]
        )
        out = []
        for s in found:
            wire = s.to_wire(people)
            c = claims.get(s.id)
            r = reviews.get(s.id)
            wire["claim"] = c.to_wire(people, s) if c else None
            wire["review"] = r.to_wire(people) if r else None
            out.append(wire)
        last = found[-1] if found else None
        return {
            "sessions": out,
            "next_cursor": encode_cursor(to_ms(last.created_at), last.id)
            if more and last
            else None,
        }

    async def details(self, user: User, session_id: str) -> dict[str, Any]:
        """Everything about one session: people, times, money, files, code, claim, review."""
        session = await self.visible(user, session_id)
        claim = await self.p.claims.of_session(session.id)
        review = await self.p.claims.review_of(session.id)
        people = await self.p.people(
            [*session.participants(), claim.decided_by or "" if claim else ""]
        )
        wire = session.to_wire(people)
        files = await self.attachments.of_session(session.id)
        wire["attachments"] = [a.to_wire() for a in files if a.kind == "file"]
        wire["recordings"] = [a.to_wire() for a in files if a.kind == "recording"]
        wire["code_snippets"] = [
            {
                "seq": r["seq"],
                "from": people.get(r["from_id"], {"id": r["from_id"]}),
                "language": r["code_language"] or "",
                "source": r["code_source"],
                "at": to_wire(from_ms(r["at"])),
            }
            for r in await self.transcript.code_of(session.id)
        ]
        wire["claim"] = claim.to_wire(people, session) if claim else None
        wire["review"] = review.to_wire(people) if review else None
        wire["ledger"] = [ledger_wire(r) for r in await self.p.ledger.of_session(session.id)]
        refunded = sum(
            r["amount_cents"]
            for r in wire["ledger"]
            if r["account"] == "customer" and r["kind"] == "refund"
        )
        if wire["summary"] is not None:
            wire["summary"]["refunded_cents"] = refunded
        return {"session": wire}

    async def messages(
        self, user: User, session_id: str, after_seq: int, limit: int
    ) -> dict[str, Any]:
        """One page of the transcript in ``seq`` order (readable after the end)."""
        session = await self.visible(user, session_id)
        rows = await self.transcript.after(session.id, after_seq, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        people = await self.p.people(session.participants())
        ids = [r["attachment_id"] for r in rows if r["attachment_id"]]
        files = {i: a.to_wire() for i, a in (await self.attachments.many(ids)).items()}
        return {
            "messages": [{"type": "message", **message_wire(r, people, files)} for r in rows],
            "last_seq": session.last_seq,
            "next_after_seq": rows[-1]["seq"] if more and rows else None,
        }
