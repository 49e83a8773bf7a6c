"""Payout profiles and payouts, as stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core.payout_profile import PayoutProfile
from rtserver.storage.db import new_id
from rtserver.storage.sql import Conn, Db, Row


@dataclass(frozen=True, slots=True)
class Payout:
    """One transfer to one expert for one period."""

    id: str
    expert_id: str
    period: str
    amount_cents: int
    op: str
    created_at: datetime

    def to_wire(self, people: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The payout as its expert and managers see it."""
        return {
            "id": self.id,
            "expert": people.get(self.expert_id, {"id": self.expert_id}),
            "period": self.period,
            "amount_cents": self.amount_cents,
            "created_at": to_wire(self.created_at),
        }


def _payout(r: Row) -> Payout:
    return Payout(
        r["id"], r["expert_id"], r["period"], r["amount_cents"], r["op"], from_ms(r["created_at"])
    )


class PayoutStore:
    """The ``payout_profiles`` and ``payouts`` tables."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def profile(self, user_id: str) -> PayoutProfile:
        """An expert's payout profile (empty if never saved)."""
        row = await self.db.fetchone(
            "SELECT data FROM payout_profiles WHERE user_id = ?", (user_id,)
        )
        return PayoutProfile.from_json(row["data"]) if row else PayoutProfile()

    async def profiles(self, user_ids: list[str]) -> dict[str, PayoutProfile]:
        """Profiles by user id (missing ones empty)."""
        out = {uid: PayoutProfile() for uid in user_ids}
        if user_ids:
            marks = ",".join("?" * len(user_ids))
            for r in await self.db.fetchall(
                f"SELECT user_id, data FROM payout_profiles WHERE user_id IN ({marks})", user_ids
            ):
                out[r["user_id"]] = PayoutProfile.from_json(r["data"])
        return out

    async def put_profile(self, user_id: str, profile: PayoutProfile, now: datetime) -> None:
        """Replace an expert's payout profile."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO payout_profiles (user_id, data, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET data = excluded.data,"
                " updated_at = excluded.updated_at",
                (user_id, profile.to_json(), to_ms(now)),
            )

    async def experts_with_rows(self, conn: Conn) -> list[str]:
        """Every expert who has ledger rows, inside the caller's transaction."""
        rows = await conn.fetch(
            "SELECT DISTINCT user_id FROM ledger WHERE account = 'expert' AND user_id IS NOT NULL"
            " ORDER BY user_id"
        )
        return [r[0] for r in rows]

    async def insert(
        self,
        conn: Conn,
        expert_id: str,
        period: str,
        amount_cents: int,
        op: str,
        now: datetime,
    ) -> Payout | None:
        """Record a payout; None if this expert was paid for this period already."""
        payout = Payout(new_id("p"), expert_id, period, amount_cents, op, now)
        added = await conn.execute(
            "INSERT INTO payouts (id, expert_id, period, amount_cents, op, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (payout.id, expert_id, period, amount_cents, op, to_ms(now)),
        )
        return payout if added == 1 else None

    async def paid_in(self, conn: Conn, expert_id: str, period: str) -> bool:
        """Whether this expert has a payout for this period (inside a transaction)."""
        row = await conn.fetchrow(
            "SELECT 1 FROM payouts WHERE expert_id = ? AND period = ?", (expert_id, period)
        )
        return row is not None

    async def of_expert(self, expert_id: str) -> list[Payout]:
        """An expert's payouts, newest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM payouts WHERE expert_id = ? ORDER BY created_at DESC, id DESC",
            (expert_id,),
        )
        return [_payout(r) for r in rows]

    async def of_period(self, period: str | None) -> list[Payout]:
        """Every payout (of a period), newest first."""
        if period is None:
            rows = await self.db.fetchall(
                "SELECT * FROM payouts ORDER BY created_at DESC, id DESC LIMIT 1000"
            )
        else:
            rows = await self.db.fetchall(
                "SELECT * FROM payouts WHERE period = ? ORDER BY created_at DESC, id DESC",
                (period,),
            )
        return [_payout(r) for r in rows]
