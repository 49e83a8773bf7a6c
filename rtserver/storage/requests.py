"""Requests, their offers and the messages exchanged before an accept."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core.requests import Kind, OfferStatus, OfferView, RequestStatus, RequestView
from rtserver.storage.sql import Conn, Db, Row

# Experts who hold an open offer of an open instant request.
HOLDING = (
    "SELECT DISTINCT o.expert_id FROM offers o JOIN requests r ON r.id = o.request_id"
    " WHERE r.status = 'open' AND r.kind = 'instant' AND o.status = 'open'"
)
# An expert's open offers of open requests, oldest first (offers_open: open ones only).
OPEN_OFFERS_OF = (
    "SELECT r.*, o.request_id AS o_request_id, o.expert_id AS o_expert_id,"
    " o.wave AS o_wave, o.status AS o_status, o.expires_at AS o_expires_at,"
    " o.rate_cents_per_15min AS o_rate"
    " FROM offers o JOIN requests r ON r.id = o.request_id"
    " WHERE o.expert_id = ? AND o.status = 'open' AND r.status = 'open'"
    " AND o.expires_at > ? ORDER BY o.created_at"
)
# The winner of a request is busy now: his open offers of instant requests go.
WITHDRAW_INSTANT = (
    "UPDATE offers SET status = 'revoked', reason = 'busy', closed_at = ?"
    " WHERE expert_id = ? AND status = 'open' AND request_id IN"
    " (SELECT id FROM requests WHERE kind = 'instant' AND status = 'open')"
    " RETURNING request_id"
)

# An open request to anyone whose current wave holds no open offer: its next wave
# may go out now (alias r for requests).
_UNANSWERED = (
    "r.status = 'open' AND r.direct_expert_id IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM offers o WHERE o.request_id = r.id AND o.wave = r.wave"
    " AND o.status = 'open')"
)


@dataclass(frozen=True, slots=True)
class Request:
    """A customer's request for help, as stored."""

    id: str
    customer_id: str
    kind: Kind
    title: str
    description: str
    skills: list[str]
    language: str
    direct_expert_id: str | None
    proposed_times: tuple[datetime, ...]
    attachment_ids: list[str]
    status: RequestStatus
    wave: int
    notified: int
    created_at: datetime
    expires_at: datetime
    session_id: str | None = None
    accepted_expert_id: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> RequestView:
        """What the pure rules need."""
        return RequestView(
            self.id,
            self.customer_id,
            self.kind,
            self.status,
            self.expires_at,
            self.proposed_times,
            self.direct_expert_id,
        )

    def to_wire(self) -> dict[str, Any]:
        """The request as its customer sees it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "direct": self.direct_expert_id is not None,
            "expert_id": self.direct_expert_id,
            "title": self.title,
            "description": self.description,
            "skills": self.skills,
            "language": self.language,
            "proposed_times": [to_wire(t) for t in self.proposed_times],
            "attachments": self.attachments,
            "status": self.status,
            "notified": self.notified,
            "created_at": to_wire(self.created_at),
            "expires_at": to_wire(self.expires_at),
            "session_id": self.session_id,
        }

    def offer_wire(
        self, customer: dict[str, Any], expires_at: datetime, rate_cents_per_15min: int | None
    ) -> dict[str, Any]:
        """The offer of this request as an expert sees it, at the rate it is made at."""
        return {
            "request_id": self.id,
            "kind": self.kind,
            "direct": self.direct_expert_id is not None,
            "title": self.title,
            "description": self.description,
            "skills": self.skills,
            "language": self.language,
            "customer": {"id": customer["id"], "name": customer["name"], "role": "customer"},
            "proposed_times": [to_wire(t) for t in self.proposed_times],
            "attachments": self.attachments,
            "expires_at": to_wire(expires_at),
            "rate_cents_per_15min": rate_cents_per_15min,
        }


@dataclass(frozen=True, slots=True)
class Offer:
    """One expert's offer of one request."""

    request_id: str
    expert_id: str
    wave: int
    status: OfferStatus
    expires_at: datetime
    # The expert's rate when the offer was made (None: an offer from before v5).
    rate_cents_per_15min: int | None = None

    def view(self) -> OfferView:
        """What the pure rules need."""
        return OfferView(self.request_id, self.expert_id, self.status, self.expires_at)


def _request(row: Row) -> Request:
    return Request(
        id=row["id"],
        customer_id=row["customer_id"],
        kind=row["kind"],
        title=row["title"],
        description=row["description"],
        skills=json.loads(row["skills"]),
        language=row["language"],
        direct_expert_id=row["direct_expert_id"],
        proposed_times=tuple(from_ms(t) for t in json.loads(row["proposed_times"])),
        attachment_ids=json.loads(row["attachment_ids"]),
        status=row["status"],
        wave=row["wave"],
        notified=row["notified"],
        created_at=from_ms(row["created_at"]),
        expires_at=from_ms(row["expires_at"]),
        session_id=row["session_id"],
        accepted_expert_id=row["accepted_expert_id"],
    )


_INSERT = (
    "INSERT INTO requests (id, customer_id, kind, title, description, skills, language,"
    " direct_expert_id, proposed_times, attachment_ids, status, created_at, expires_at,"
    " cid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)"
)


def _insert_params(r: Request, cid: str | None) -> tuple[Any, ...]:
    return (
        r.id,
        r.customer_id,
        r.kind,
        r.title,
        r.description,
        json.dumps(r.skills),
        r.language,
        r.direct_expert_id,
        json.dumps([to_ms(t) for t in r.proposed_times]),
        json.dumps(r.attachment_ids),
        to_ms(r.created_at),
        to_ms(r.expires_at),
        cid,
    )


def _offer(row: Row) -> Offer:
    return Offer(
        row["request_id"],
        row["expert_id"],
        row["wave"],
        row["status"],
        from_ms(row["expires_at"]),
        row["rate_cents_per_15min"],
    )


class RequestStore:
    """Requests, offers and request messages."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def insert(self, conn: Conn, r: Request, cid: str | None = None) -> None:
        """Store a new request (inside the caller's transaction).

        ``cid`` is the customer's key for it: a second insert with the same one
        raises :class:`~rtserver.storage.sql.IntegrityError` (see :meth:`by_cid`).
        """
        await conn.execute(_INSERT, _insert_params(r, cid))

    async def get(self, request_id: str) -> Request | None:
        """A request by id, or None."""
        row = await self.db.fetchone("SELECT * FROM requests WHERE id = ?", (request_id,))
        return _request(row) if row else None

    async def unaccepted_since(self, customer_id: str, since_ms: int) -> int:
        """How many of the customer's requests created since ``since_ms`` are not accepted
        (open, cancelled, expired, declined): those that took experts' time for nothing."""
        row = await self.db.fetchone(
            "SELECT count(*) FROM requests WHERE customer_id = ? AND created_at >= ?"
            " AND status != 'accepted'",
            (customer_id, since_ms),
        )
        return int(row[0]) if row else 0

    async def by_cid(self, customer_id: str, cid: str) -> Request | None:
        """The customer's request created with this ``cid``, or None."""
        row = await self.db.fetchone(
            "SELECT * FROM requests WHERE customer_id = ? AND cid = ?", (customer_id, cid)
        )
        return _request(row) if row else None

    async def offer(self, request_id: str, expert_id: str) -> Offer | None:
        """The offer of a request to an expert, or None."""
        row = await self.db.fetchone(
            "SELECT * FROM offers WHERE request_id = ? AND expert_id = ?", (request_id, expert_id)
        )
        return _offer(row) if row else None

    async def open_of_customer(self, customer_id: str) -> list[Request]:
        """A customer's open requests, oldest first."""
        return await self.db.read(lambda conn: self.open_of_customer_in(conn, customer_id))

    async def open_of_customer_in(self, conn: Conn, customer_id: str) -> list[Request]:
        """:meth:`open_of_customer`, inside a unit of work (``Db.read``)."""
        rows = await conn.fetch(
            "SELECT * FROM requests WHERE customer_id = ? AND status = 'open' ORDER BY created_at",
            (customer_id,),
        )
        return [_request(r) for r in rows]

    async def open_offers_in(
        self, conn: Conn, expert_id: str, now: datetime
    ) -> list[tuple[Request, Offer]]:
        """An expert's offers still open (by status and by time), oldest first (inside
        a unit of work: ``Db.read``)."""
        rows = await conn.fetch(OPEN_OFFERS_OF, (expert_id, to_ms(now)))
        return [
            (
                _request(r),
                Offer(
                    r["o_request_id"],
                    r["o_expert_id"],
                    r["o_wave"],
                    r["o_status"],
                    from_ms(r["o_expires_at"]),
                    r["o_rate"],
                ),
            )
            for r in rows
        ]

    # The methods below that take a ``Conn`` run inside the caller's unit of work
    # (Db.write / read), their statements among its own.

    async def add_wave(
        self,
        conn: Conn,
        request_id: str,
        wave: int,
        expert_ids: list[str],
        now: datetime,
        expires_at: datetime,
    ) -> tuple[int, dict[str, int | None]]:
        """Record a wave of offers, each at its expert's rate now.

        Returns the request's new ``notified`` count and the rate of each offer.
        """
        now_ms = to_ms(now)
        await conn.executemany(
            "INSERT INTO offers (request_id, expert_id, wave, created_at, expires_at,"
            " rate_cents_per_15min) VALUES (?, ?, ?, ?, ?,"
            " (SELECT rate_cents_per_15min FROM expert_profiles WHERE user_id = ?))"
            " ON CONFLICT DO NOTHING",
            [(request_id, e, wave, now_ms, to_ms(expires_at), e) for e in expert_ids],
        )
        marks = ",".join("?" * len(expert_ids))
        rates: dict[str, int | None] = {
            r[0]: r[1]
            for r in await conn.fetch(
                f"SELECT expert_id, rate_cents_per_15min FROM offers WHERE request_id = ?"
                f" AND expert_id IN ({marks})",
                (request_id, *expert_ids),
            )
        }
        # In id order: on PostgreSQL each update locks its row until the commit, and
        # two waves sharing experts must not take them in opposite orders.
        await conn.executemany(
            "UPDATE users SET last_offered_at = ? WHERE id = ?",
            [(now_ms, e) for e in sorted(expert_ids)],
        )
        row = await conn.fetchrow(
            "UPDATE requests SET wave = ?, notified = notified + ? WHERE id = ? RETURNING notified",
            (wave, len(expert_ids), request_id),
        )
        return (int(row[0]) if row else 0), rates

    async def lock_open_offers(self, conn: Conn, request_id: str, expert_id: str | None) -> None:
        """Lock, until the commit, the open offers of this request and (given) of
        this expert, in (request, expert) order: whoever locks offers of several
        requests takes them in this one order (on PostgreSQL; SQLite's write lock
        holds the file)."""
        if expert_id is None:
            await conn.lock(
                "SELECT 1 FROM offers WHERE request_id = ? AND status = 'open'"
                " ORDER BY request_id, expert_id FOR UPDATE",
                (request_id,),
            )
            return
        await conn.lock(
            "SELECT 1 FROM offers WHERE status = 'open' AND (request_id = ? OR expert_id = ?)"
            " ORDER BY request_id, expert_id FOR UPDATE",
            (request_id, expert_id),
        )

    async def wave_of(self, conn: Conn, request_id: str) -> tuple[str, int] | None:
        """The request's status and current wave, or None; locked until the commit of
        the caller's write transaction (two nodes writing its next wave at once:
        the second sees the first's)."""
        row = await conn.fetchrow(
            "SELECT status, wave FROM requests WHERE id = ? FOR UPDATE", (request_id,)
        )
        return (row[0], row[1]) if row else None

    async def get_in(self, conn: Conn, request_id: str) -> Request | None:
        """A request by id."""
        row = await conn.fetchrow("SELECT * FROM requests WHERE id = ?", (request_id,))
        return _request(row) if row else None

    async def offer_in(self, conn: Conn, request_id: str, expert_id: str) -> Offer | None:
        """The offer of a request to an expert."""
        row = await conn.fetchrow(
            "SELECT * FROM offers WHERE request_id = ? AND expert_id = ?", (request_id, expert_id)
        )
        return _offer(row) if row else None

    async def offer_rate(self, conn: Conn, request_id: str, expert_id: str) -> int:
        """The rate the session of this offer is charged at: the one fixed in the offer,
        or for an offer made before rates were fixed in offers (v5), the expert's now."""
        rate = await conn.fetchval(
            "SELECT coalesce((SELECT rate_cents_per_15min FROM offers WHERE request_id = ?"
            " AND expert_id = ?), (SELECT rate_cents_per_15min FROM expert_profiles"
            " WHERE user_id = ?), 0)",
            (request_id, expert_id, expert_id),
        )
        return int(rate)

    async def close(
        self,
        conn: Conn,
        request_id: str,
        status: RequestStatus,
        now: datetime,
        *,
        session_id: str | None = None,
        expert_id: str | None = None,
    ) -> int | None:
        """Move an open request to a final status; its ``notified``, or None if not open."""
        row = await conn.fetchrow(
            "UPDATE requests SET status = ?, closed_at = ?, session_id = ?, accepted_expert_id = ?"
            " WHERE id = ? AND status = 'open' RETURNING notified",
            (status, to_ms(now), session_id, expert_id, request_id),
        )
        return int(row[0]) if row else None

    async def close_offers(
        self,
        conn: Conn,
        request_id: str,
        status: OfferStatus,
        reason: str | None,
        now: datetime,
        *,
        wave: int | None = None,
        expert_id: str | None = None,
        ended: bool = False,
    ) -> list[str]:
        """Close the request's open offers (of one wave, or one expert; only those whose
        time is up at ``now`` if ``ended``); who held them."""
        sql = (
            "UPDATE offers SET status = ?, reason = ?, closed_at = ?"
            " WHERE request_id = ? AND status = 'open'"
        )
        params: list[Any] = [status, reason, to_ms(now), request_id]
        if wave is not None:
            sql += " AND wave = ?"
            params.append(wave)
        if ended:
            sql += " AND expires_at <= ?"
            params.append(to_ms(now))
        if expert_id is not None:
            sql += " AND expert_id = ?"
            params.append(expert_id)
        return [r[0] for r in await conn.fetch(sql + " RETURNING expert_id", params)]

    async def wave_end(self, conn: Conn, request_id: str, wave: int) -> datetime | None:
        """When the first still open offer of this wave ends, or None if none is open."""
        row = await conn.fetchrow(
            "SELECT min(expires_at) FROM offers WHERE request_id = ? AND wave = ?"
            " AND status = 'open'",
            (request_id, wave),
        )
        return from_ms(row[0]) if row and row[0] is not None else None

    async def offered_experts(self, conn: Conn, request_id: str) -> set[str]:
        """Every expert this request was ever offered to."""
        rows = await conn.fetch("SELECT expert_id FROM offers WHERE request_id = ?", (request_id,))
        return {r[0] for r in rows}

    async def holding_instant_offers(self, conn: Conn) -> set[str]:
        """Experts who hold an open offer of an open instant request (few: the open
        instant requests' current waves)."""
        return {r[0] for r in await conn.fetch(HOLDING)}

    async def waiting(self, limit: int = 50) -> list[str]:
        """Open instant requests whose current wave holds no open offer, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT r.id FROM requests r WHERE r.kind = 'instant' AND {_UNANSWERED}"
            " ORDER BY r.created_at LIMIT ?",
            (limit,),
        )
        return [r["id"] for r in rows]

    async def unanswered(self, conn: Conn, request_ids: list[str]) -> list[str]:
        """Those of these requests still open to anyone whose current wave holds no
        open offer, in order."""
        marks = ",".join("?" * len(request_ids))
        rows = await conn.fetch(
            f"SELECT r.id FROM requests r WHERE r.id IN ({marks}) AND {_UNANSWERED}", request_ids
        )
        found = {r[0] for r in rows}
        return [r for r in request_ids if r in found]

    async def withdraw_instant_offers(self, conn: Conn, expert_id: str, now: datetime) -> list[str]:
        """Revoke an expert's open offers of instant requests (he just became busy).

        Returns the requests they belonged to.
        """
        rows = await conn.fetch(WITHDRAW_INSTANT, (to_ms(now), expert_id))
        return [r[0] for r in rows]

    async def withdraw_all_offers(self, conn: Conn, expert_id: str, now: datetime) -> list[str]:
        """Revoke every open offer of an expert (his account was suspended).

        Returns the requests they belonged to.
        """
        rows = await conn.fetch(
            "UPDATE offers SET status = 'revoked', reason = 'withdrawn', closed_at = ?"
            " WHERE expert_id = ? AND status = 'open' RETURNING request_id",
            (to_ms(now), expert_id),
        )
        return [r[0] for r in rows]

    async def add_message(self, request_id: str, from_id: str, text: str, at: datetime) -> int:
        """Store a message about a request; its id."""
        async with self.db.transaction() as conn:
            message_id = await conn.fetchval(
                "INSERT INTO request_messages (request_id, from_id, text, at) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (request_id, from_id, text, to_ms(at)),
            )
            return int(message_id or 0)

    async def messages(self, request_id: str) -> list[Row]:
        """The messages of a request, in order."""
        return await self.db.fetchall(
            "SELECT * FROM request_messages WHERE request_id = ? ORDER BY id", (request_id,)
        )
