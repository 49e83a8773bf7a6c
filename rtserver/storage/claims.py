"""Refund claims and reviews of sessions, as stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core.claims import ClaimStatus
from rtserver.storage.db import new_id
from rtserver.storage.sessions import Session
from rtserver.storage.sql import Conn, Db, Row


@dataclass(frozen=True, slots=True)
class Claim:
    """A customer's refund claim on one session."""

    id: str
    session_id: str
    customer_id: str
    expert_id: str
    status: ClaimStatus
    reason: str
    created_at: datetime
    dispute_summary: str | None = None
    outcome: str | None = None
    note: str | None = None
    disputed_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None

    def to_wire(self, people: dict[str, dict[str, Any]], session: Session | None) -> dict[str, Any]:
        """The claim as its parties and managers see it, with its session's title and charge."""
        return {
            "id": self.id,
            "session_id": self.session_id,
            "session_title": session.title if session else "",
            "status": self.status,
            "reason": self.reason,
            "dispute_summary": self.dispute_summary,
            "outcome": self.outcome,
            "note": self.note,
            "amount_cents": (session.charge_cents or 0) if session else 0,
            "customer": people.get(self.customer_id, {"id": self.customer_id}),
            "expert": people.get(self.expert_id, {"id": self.expert_id}),
            "created_at": to_wire(self.created_at),
            "disputed_at": to_wire(self.disputed_at) if self.disputed_at else None,
            "decided_at": to_wire(self.decided_at) if self.decided_at else None,
            "decided_by": people.get(self.decided_by, {"id": self.decided_by})
            if self.decided_by
            else None,
        }


def _claim(r: Row) -> Claim:
    def t(name: str) -> datetime | None:
        return from_ms(r[name]) if r[name] is not None else None

    return Claim(
        r["id"],
        r["session_id"],
        r["customer_id"],
        r["expert_id"],
        r["status"],
        r["reason"],
        from_ms(r["created_at"]),
        r["dispute_summary"],
        r["outcome"],
        r["note"],
        t("disputed_at"),
        t("decided_at"),
        r["decided_by"],
    )


@dataclass(frozen=True, slots=True)
class Review:
    """A customer's rating of one ended session."""

    session_id: str
    customer_id: str
    expert_id: str
    stars: int
    comment: str
    created_at: datetime

    def to_wire(self, people: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The review as anyone sees it on the expert's profile."""
        customer = people.get(self.customer_id, {"id": self.customer_id})
        return {
            "session_id": self.session_id,
            "stars": self.stars,
            "comment": self.comment,
            "customer": {"id": customer["id"], "name": customer.get("name", "")},
            "expert_id": self.expert_id,
            "created_at": to_wire(self.created_at),
        }


def _review(r: Row) -> Review:
    return Review(
        r["session_id"],
        r["customer_id"],
        r["expert_id"],
        r["stars"],
        r["comment"],
        from_ms(r["created_at"]),
    )


class ClaimStore:
    """The ``refund_claims`` and ``reviews`` tables."""

    def __init__(self, db: Db) -> None:
        self.db = db

    # -- claims --------------------------------------------------------------------

    async def get(self, claim_id: str) -> Claim | None:
        """A claim by id."""
        row = await self.db.fetchone("SELECT * FROM refund_claims WHERE id = ?", (claim_id,))
        return _claim(row) if row else None

    async def get_in(self, conn: Conn, claim_id: str) -> Claim | None:
        """A claim read inside the caller's write transaction, locked until the commit."""
        row = await conn.fetchrow(
            "SELECT * FROM refund_claims WHERE id = ? FOR UPDATE", (claim_id,)
        )
        return _claim(row) if row else None

    async def of_session(self, session_id: str) -> Claim | None:
        """The claim on a session, if any."""
        row = await self.db.fetchone(
            "SELECT * FROM refund_claims WHERE session_id = ?", (session_id,)
        )
        return _claim(row) if row else None

    async def of_session_in(self, conn: Conn, session_id: str) -> Claim | None:
        """:meth:`of_session` inside the caller's transaction."""
        row = await conn.fetchrow("SELECT * FROM refund_claims WHERE session_id = ?", (session_id,))
        return _claim(row) if row else None

    async def of_sessions(self, session_ids: list[str]) -> dict[str, Claim]:
        """Claims by session id."""
        if not session_ids:
            return {}
        marks = ",".join("?" * len(session_ids))
        rows = await self.db.fetchall(
            f"SELECT * FROM refund_claims WHERE session_id IN ({marks})", session_ids
        )
        return {r["session_id"]: _claim(r) for r in rows}

    async def insert(
        self,
        conn: Conn,
        session_id: str,
        customer_id: str,
        expert_id: str,
        reason: str,
        now: datetime,
    ) -> Claim:
        """A new open claim, inside the caller's transaction."""
        claim = Claim(new_id("c"), session_id, customer_id, expert_id, "open", reason, now)
        await conn.execute(
            "INSERT INTO refund_claims (id, session_id, customer_id, expert_id, status, reason,"
            " created_at) VALUES (?, ?, ?, ?, 'open', ?, ?)",
            (claim.id, session_id, customer_id, expert_id, reason, to_ms(now)),
        )
        return claim

    async def dispute(self, conn: Conn, claim_id: str, summary: str, now: datetime) -> bool:
        """Mark an open claim disputed; False if it was not open."""
        changed = await conn.execute(
            "UPDATE refund_claims SET status = 'disputed', dispute_summary = ?, disputed_at = ?"
            " WHERE id = ? AND status = 'open'",
            (summary, to_ms(now), claim_id),
        )
        return changed == 1

    async def decide(
        self,
        conn: Conn,
        claim_id: str,
        status: ClaimStatus,
        outcome: str,
        note: str,
        by: str,
        now: datetime,
    ) -> bool:
        """Record a decision on a pending claim; False if it was decided already."""
        changed = await conn.execute(
            "UPDATE refund_claims SET status = ?, outcome = ?, note = ?, decided_by = ?,"
            " decided_at = ? WHERE id = ? AND status IN ('open', 'disputed')",
            (status, outcome, note, by, to_ms(now), claim_id),
        )
        return changed == 1

    async def page(
        self,
        *,
        user_id: str | None,
        statuses: list[str],
        oldest_first: bool,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Claim]:
        """Claims of a user (or all, for managers), by creation time."""
        where: list[str] = []
        params: list[Any] = []
        if user_id is not None:
            where.append("(customer_id = ? OR expert_id = ?)")
            params += [user_id, user_id]
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if after is not None:
            where.append(
                "(created_at, id) > (?, ?)" if oldest_first else "(created_at, id) < (?, ?)"
            )
            params += list(after)
        order = "ASC" if oldest_first else "DESC"
        sql = "SELECT * FROM refund_claims"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at {order}, id {order} LIMIT ?"
        rows = await self.db.fetchall(sql, [*params, limit])
        return [_claim(r) for r in rows]

    async def created_times_against(self, expert_id: str) -> list[int]:
        """When each claim on an expert's sessions was made (ms)."""
        rows = await self.db.fetchall(
            "SELECT created_at FROM refund_claims WHERE expert_id = ?", (expert_id,)
        )
        return [r["created_at"] for r in rows]

    async def created_times_by(self, customer_id: str) -> list[int]:
        """When each of a customer's claims was made (ms)."""
        rows = await self.db.fetchall(
            "SELECT created_at FROM refund_claims WHERE customer_id = ?", (customer_id,)
        )
        return [r["created_at"] for r in rows]

    # -- reviews -----------------------------------------------------------------------

    async def review_of(self, session_id: str) -> Review | None:
        """The review of a session, if any."""
        row = await self.db.fetchone("SELECT * FROM reviews WHERE session_id = ?", (session_id,))
        return _review(row) if row else None

    async def reviews_of_sessions(self, session_ids: list[str]) -> dict[str, Review]:
        """Reviews by session id."""
        if not session_ids:
            return {}
        marks = ",".join("?" * len(session_ids))
        rows = await self.db.fetchall(
            f"SELECT * FROM reviews WHERE session_id IN ({marks})", session_ids
        )
        return {r["session_id"]: _review(r) for r in rows}

    async def add_review(
        self,
        conn: Conn,
        session_id: str,
        customer_id: str,
        expert_id: str,
        stars: int,
        comment: str,
        now: datetime,
    ) -> Review | None:
        """Store a review and fold it into the expert's rating; None if one exists."""
        added = await conn.execute(
            "INSERT INTO reviews (session_id, customer_id, expert_id, stars, comment,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (session_id, customer_id, expert_id, stars, comment, to_ms(now)),
        )
        if added != 1:
            return None
        await conn.execute(
            "UPDATE expert_profiles SET rating_sum = rating_sum + ?,"
            " rating_count = rating_count + 1 WHERE user_id = ?",
            (stars, expert_id),
        )
        return Review(session_id, customer_id, expert_id, stars, comment, now)

    async def reviews_page(
        self, expert_id: str, before: tuple[int, str] | None, limit: int
    ) -> list[Review]:
        """An expert's reviews, newest first."""
        params: list[Any] = [expert_id]
        extra = ""
        if before is not None:
            extra = " AND (created_at, session_id) < (?, ?)"
            params += list(before)
        rows = await self.db.fetchall(
            f"SELECT * FROM reviews WHERE expert_id = ?{extra}"
            " ORDER BY created_at DESC, session_id DESC LIMIT ?",
            [*params, limit],
        )
        return [_review(r) for r in rows]
