"""Sessions: a customer and an expert, from the accept to the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core.billing import Billing
from rtserver.storage.sql import Conn, Db, Row

SessionStatus = Literal["scheduled", "active", "ended", "cancelled"]


@dataclass(frozen=True, slots=True)
class Session:
    """A help session as stored."""

    id: str
    request_id: str
    customer_id: str
    expert_id: str
    kind: str
    title: str
    status: SessionStatus
    scheduled_at: datetime | None
    rate_cents_per_15min: int
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    last_seq: int = 0
    billing: Billing = field(default_factory=Billing)
    ended_by: str | None = None
    discount_pct: int | None = None
    charge_cents: int | None = None
    platform_fee_cents: int | None = None
    expert_earnings_cents: int | None = None
    customer_joined_at: datetime | None = None
    expert_joined_at: datetime | None = None
    cancel_reason: str | None = None
    fee_cents: int | None = None
    charged_user_id: str | None = None

    def participants(self) -> tuple[str, str]:
        """The customer and the expert."""
        return (self.customer_id, self.expert_id)

    def to_wire(self, people: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The session as its participants see it; ``people`` maps ids to persons."""
        return {
            "id": self.id,
            "request_id": self.request_id,
            "kind": self.kind,
            "title": self.title,
            "status": self.status,
            "customer": people.get(self.customer_id, {"id": self.customer_id}),
            "expert": people.get(self.expert_id, {"id": self.expert_id}),
            "scheduled_at": to_wire(self.scheduled_at) if self.scheduled_at else None,
            "rate_cents_per_15min": self.rate_cents_per_15min,
            "created_at": to_wire(self.created_at),
            "started_at": to_wire(self.started_at) if self.started_at else None,
            "ended_at": to_wire(self.ended_at) if self.ended_at else None,
            "last_seq": self.last_seq,
            "billing": {"running": self.billing.running},
            "summary": self.summary(),
            "joined": [
                uid
                for uid, at in (
                    (self.customer_id, self.customer_joined_at),
                    (self.expert_id, self.expert_joined_at),
                )
                if at is not None
            ],
            "cancellation": None
            if self.cancel_reason is None
            else {
                "reason": self.cancel_reason,
                "fee_cents": self.fee_cents or 0,
                "charged_user_id": self.charged_user_id,
            },
        }

    def summary(self) -> dict[str, Any] | None:
        """What ending the session charged, once it ended."""
        if self.charge_cents is None:
            return None
        return {
            "billable_seconds": self.billing.billed_ms // 1000,
            "charge_cents": self.charge_cents,
            "discount_pct": self.discount_pct or 0,
            "platform_fee_cents": self.platform_fee_cents,
            "expert_earnings_cents": self.expert_earnings_cents,
        }


def _session(row: Row) -> Session:
    def t(name: str) -> datetime | None:
        return from_ms(row[name]) if row[name] is not None else None

    return Session(
        id=row["id"],
        request_id=row["request_id"],
        customer_id=row["customer_id"],
        expert_id=row["expert_id"],
        kind=row["kind"],
        title=row["title"],
        status=row["status"],
        scheduled_at=t("scheduled_at"),
        rate_cents_per_15min=row["rate_cents_per_15min"],
        created_at=from_ms(row["created_at"]),
        started_at=t("started_at"),
        ended_at=t("ended_at"),
        last_seq=row["last_seq"],
        billing=Billing(
            bool(row["billing_running"]),
            row["billed_ms"],
            row["billing_checked"],
            row["billing_absent_since"],
            row["billing_held_ms"],
        ),
        ended_by=row["ended_by"],
        discount_pct=row["discount_pct"],
        charge_cents=row["charge_cents"],
        platform_fee_cents=row["platform_fee_cents"],
        expert_earnings_cents=row["expert_earnings_cents"],
        customer_joined_at=t("customer_joined_at"),
        expert_joined_at=t("expert_joined_at"),
        cancel_reason=row["cancel_reason"],
        fee_cents=row["fee_cents"],
        charged_user_id=row["charged_user_id"],
    )


class SessionStore:
    """The ``sessions`` table."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def insert(self, conn: Conn, s: Session) -> None:
        """Store a new session, inside the caller's transaction (a unit of work:
        :meth:`Db.write`)."""
        await conn.execute(
            "INSERT INTO sessions (id, request_id, customer_id, expert_id, kind, title, status,"
            " scheduled_at, rate_cents_per_15min, created_at, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.id,
                s.request_id,
                s.customer_id,
                s.expert_id,
                s.kind,
                s.title,
                s.status,
                to_ms(s.scheduled_at) if s.scheduled_at else None,
                s.rate_cents_per_15min,
                to_ms(s.created_at),
                to_ms(s.started_at) if s.started_at else None,
            ),
        )

    async def get(self, session_id: str) -> Session | None:
        """A session by id, or None."""
        row = await self.db.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return _session(row) if row else None

    async def many(self, session_ids: list[str]) -> dict[str, Session]:
        """Sessions by id, in one read (missing ones left out)."""
        ids = sorted(set(session_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(f"SELECT * FROM sessions WHERE id IN ({marks})", ids)
        return {r["id"]: _session(r) for r in rows}

    async def get_in(self, conn: Conn, session_id: str) -> Session | None:
        """A session read inside the caller's write transaction (sees its writes),
        locked until the commit: what is decided from it holds (on PostgreSQL a
        row lock; SQLite's write lock holds the whole file already)."""
        row = await conn.fetchrow("SELECT * FROM sessions WHERE id = ? FOR UPDATE", (session_id,))
        return _session(row) if row else None

    async def save_billing(self, conn: Conn, session_id: str, b: Billing) -> None:
        """Store a session's billing clock, inside the caller's transaction."""
        await conn.execute(
            "UPDATE sessions SET billing_running = ?, billed_ms = ?, billing_checked = ?,"
            " billing_absent_since = ?, billing_held_ms = ? WHERE id = ?",
            (int(b.running), b.billed_ms, b.checked_ms, b.absent_since_ms, b.held_ms, session_id),
        )

    async def end(
        self,
        conn: Conn,
        session_id: str,
        by: str,
        now: datetime,
        discount_pct: int,
        charge_cents: int,
        platform_fee_cents: int,
        expert_earnings_cents: int,
    ) -> bool:
        """Mark an active session ended with its charge; False if it was not active."""
        changed = await conn.execute(
            "UPDATE sessions SET status = 'ended', ended_at = ?, ended_by = ?, discount_pct = ?,"
            " charge_cents = ?, platform_fee_cents = ?, expert_earnings_cents = ?"
            " WHERE id = ? AND status = 'active'",
            (
                to_ms(now),
                by,
                discount_pct,
                charge_cents,
                platform_fee_cents,
                expert_earnings_cents,
                session_id,
            ),
        )
        return changed == 1

    async def by_request(self, request_id: str) -> Session | None:
        """The session an accepted request became, or None."""
        row = await self.db.fetchone("SELECT * FROM sessions WHERE request_id = ?", (request_id,))
        return _session(row) if row else None

    async def current_in(self, conn: Conn, user_id: str) -> list[Session]:
        """A user's active and upcoming sessions, soonest first (inside a unit of
        work: ``Db.read``)."""
        rows = await conn.fetch(
            "SELECT * FROM sessions WHERE (customer_id = ? OR expert_id = ?)"
            " AND status IN ('scheduled', 'active')"
            " ORDER BY coalesce(scheduled_at, created_at)",
            (user_id, user_id),
        )
        return [_session(r) for r in rows]

    async def booked(self, expert_id: str) -> list[datetime]:
        """Start times of an expert's sessions that still hold his time."""
        rows = await self.db.fetchall(
            "SELECT coalesce(scheduled_at, started_at, created_at) AS at FROM sessions"
            " WHERE expert_id = ? AND status IN ('scheduled', 'active')",
            (expert_id,),
        )
        return [from_ms(r["at"]) for r in rows]

    async def booked_many(self, expert_ids: list[str]) -> dict[str, list[datetime]]:
        """:meth:`booked` for many experts at once."""
        if not expert_ids:
            return {}
        marks = ",".join("?" * len(expert_ids))
        rows = await self.db.fetchall(
            "SELECT expert_id, coalesce(scheduled_at, started_at, created_at) AS at"
            f" FROM sessions WHERE status IN ('scheduled', 'active') AND expert_id IN ({marks})",
            expert_ids,
        )
        out: dict[str, list[datetime]] = {}
        for r in rows:
            out.setdefault(r["expert_id"], []).append(from_ms(r["at"]))
        return out

    async def booked_in(self, conn: Conn, expert_id: str) -> list[datetime]:
        """:meth:`booked`, inside the caller's transaction (sees its writes)."""
        rows = await conn.fetch(
            "SELECT coalesce(scheduled_at, started_at, created_at) AS at FROM sessions"
            " WHERE expert_id = ? AND status IN ('scheduled', 'active')",
            (expert_id,),
        )
        return [from_ms(r[0]) for r in rows]

    async def mark_joined(
        self, conn: Conn, session: Session, user_id: str, now: datetime
    ) -> Session | None:
        """Record that a participant joined a scheduled session; active once both have
        (and the expert is in no other active session: his next join starts it then)."""
        column = "customer_joined_at" if user_id == session.customer_id else "expert_joined_at"
        await conn.execute(
            f"UPDATE sessions SET {column} = coalesce({column}, ?) WHERE id = ?",
            (to_ms(now), session.id),
        )
        await conn.execute(
            "UPDATE sessions SET status = 'active', started_at = ? WHERE id = ?"
            " AND status = 'scheduled' AND customer_joined_at IS NOT NULL"
            " AND expert_joined_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sessions s"
            " WHERE s.expert_id = sessions.expert_id AND s.status = 'active')",
            (to_ms(now), session.id),
        )
        return await self.get_in(conn, session.id)

    async def cancel(
        self,
        conn: Conn,
        session_id: str,
        reason: str,
        by: str | None,
        now: datetime,
        fee_cents: int,
        charged_user_id: str | None,
    ) -> bool:
        """Cancel a scheduled session; False if it was no longer scheduled."""
        changed = await conn.execute(
            "UPDATE sessions SET status = 'cancelled', ended_at = ?, cancel_reason = ?,"
            " cancelled_by = ?, fee_cents = ?, charged_user_id = ?"
            " WHERE id = ? AND status = 'scheduled'",
            (to_ms(now), reason, by, fee_cents, charged_user_id, session_id),
        )
        return changed == 1

    async def active_of_expert_in(self, conn: Conn, expert_id: str) -> str | None:
        """The expert's active session, read under the caller's write transaction.

        Under the write lock this answer cannot change before the commit: the
        check that keeps an expert in one active session at a time.
        """
        row = await conn.fetchrow(
            "SELECT id FROM sessions WHERE expert_id = ? AND status = 'active' LIMIT 1",
            (expert_id,),
        )
        return str(row[0]) if row else None

    async def busy(self, expert_ids: list[str]) -> set[str]:
        """Which of these experts are in an active session now."""
        if not expert_ids:
            return set()
        return await self.db.read(lambda conn: self.busy_in(conn, expert_ids))

    async def busy_in(self, conn: Conn, expert_ids: list[str]) -> set[str]:
        """:meth:`busy`, inside a unit of work (sees the caller's writes inside a
        transaction: under the write lock, the answer holds until the commit)."""
        if not expert_ids:
            return set()
        marks = ",".join("?" * len(expert_ids))
        rows = await conn.fetch(
            f"SELECT DISTINCT expert_id FROM sessions WHERE status = 'active'"
            f" AND expert_id IN ({marks})",
            expert_ids,
        )
        return {r[0] for r in rows}

    async def page(
        self,
        user_id: str | None,
        statuses: list[str],
        disputed: bool,
        before: tuple[int, str] | None,
        limit: int,
    ) -> list[Session]:
        """Sessions of a user (or all), newest first; ``disputed``: those he disputed.

        "Newest" is by creation (the accept), so the order never changes as
        sessions start and end, and a cursor stays valid.
        """
        where: list[str] = []
        params: list[Any] = []
        if user_id is not None:
            where.append("(customer_id = ? OR expert_id = ?)")
            params += [user_id, user_id]
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if disputed:
            where.append(
                "EXISTS (SELECT 1 FROM refund_claims c WHERE c.session_id = sessions.id"
                " AND c.disputed_at IS NOT NULL)"
            )
        if before is not None:
            where.append("(created_at, id) < (?, ?)")
            params += list(before)
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = await self.db.fetchall(sql, [*params, limit])
        return [_session(r) for r in rows]
