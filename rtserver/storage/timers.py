"""Durable timers, shared by every node through the database.

A timer is ``(kind, ref)`` with a due time; scheduling the same pair again
moves it. A node claims a due timer by taking a lease in one conditional
UPDATE, so that exactly one node runs it; a node that dies while running one
leaves a lease that expires, and another node runs it again. Handlers are
therefore written to be idempotent, and a timer is deleted only after its
handler finished (and only if it was not moved meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from rtserver.storage.db import Database


@dataclass(frozen=True, slots=True)
class Timer:
    """One due timer."""

    kind: str
    ref: str
    due_at: int


class TimerStore:
    """The ``timers`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def schedule(self, conn: aiosqlite.Connection, kind: str, ref: str, due_ms: int) -> None:
        """Set (or move) a timer, inside the caller's transaction."""
        await conn.execute(
            "INSERT INTO timers (kind, ref, due_at) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, ref) DO UPDATE SET due_at = excluded.due_at,"
            " lease_owner = NULL, lease_until = 0",
            (kind, ref, due_ms),
        )

    async def cancel(self, conn: aiosqlite.Connection, kind: str, ref: str) -> None:
        """Remove a timer, inside the caller's transaction."""
        await conn.execute("DELETE FROM timers WHERE kind = ? AND ref = ?", (kind, ref))

    async def due(self, now_ms: int, limit: int = 100) -> list[Timer]:
        """Timers due now and not leased by a live node."""
        rows = await self.db.fetchall(
            "SELECT kind, ref, due_at FROM timers WHERE due_at <= ? AND lease_until < ?"
            " ORDER BY due_at LIMIT ?",
            (now_ms, now_ms, limit),
        )
        return [Timer(r["kind"], r["ref"], r["due_at"]) for r in rows]

    async def next_due(self) -> int | None:
        """The earliest due time of any timer, leased or not."""
        row = await self.db.fetchone("SELECT min(due_at) FROM timers")
        return int(row[0]) if row and row[0] is not None else None

    async def claim(self, timer: Timer, owner: str, now_ms: int, lease_ms: int) -> bool:
        """Take the lease on a due timer; True for exactly one claimant."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE timers SET lease_owner = ?, lease_until = ?"
                " WHERE kind = ? AND ref = ? AND due_at = ? AND lease_until < ?",
                (owner, now_ms + lease_ms, timer.kind, timer.ref, timer.due_at, now_ms),
            )
            return cur.rowcount == 1

    async def complete(self, timer: Timer, owner: str) -> None:
        """Delete a timer that ran, unless it was moved while it ran."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM timers WHERE kind = ? AND ref = ? AND due_at = ? AND lease_owner = ?",
                (timer.kind, timer.ref, timer.due_at, owner),
            )
