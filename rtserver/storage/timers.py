"""Durable timers and their dead letters, shared by every node through the database.

A timer is ``(kind, ref)`` with a due time; scheduling the same pair again
moves it (and starts its count of failed tries afresh). A node claims a due
timer by taking a lease in one conditional UPDATE, so that exactly one node
runs it; the lease carries a token of that one claim, and the node renews it
while the handler runs. Every later write of the claimant (renew, complete,
fail, retire) is conditional on the timer still holding that token and its
due time: a node whose lease was lost, or whose timer was moved meanwhile,
changes nothing. A node that dies while running one leaves a lease that
expires, and another node runs it again; handlers are therefore idempotent.

A timer whose handler failed is moved to a later due time with its failure
counted; one that failed too often is retired: deleted, and written to
``dead_letters`` with its last error, in one transaction, until a manager
retries it.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass

from rtserver.storage.sql import Conn, Db, Row

# The longest error text kept for a failed timer or a dead letter.
MAX_ERROR = 500


_SCHEDULE = (
    "INSERT INTO timers (kind, ref, due_at) VALUES (?, ?, ?)"
    " ON CONFLICT (kind, ref) DO UPDATE SET"
    " due_at = CASE WHEN timers.woken <> 0 THEN ? ELSE excluded.due_at END,"
    " woken = 0, lease_owner = NULL, lease_until = 0, attempts = 0, last_error = NULL"
)
# Already due: the wake is kept (``woken``) for the run that may be under way,
# which reads it when it moves the timer (TimerStore.schedule).
_HASTEN = (
    "INSERT INTO timers (kind, ref, due_at) VALUES (?, ?, ?)"
    " ON CONFLICT (kind, ref) DO UPDATE SET"
    " due_at = least(timers.due_at, excluded.due_at),"
    " woken = CASE WHEN timers.due_at <= excluded.due_at THEN 1 ELSE timers.woken END"
)
_CANCEL = "DELETE FROM timers WHERE kind = ? AND ref = ?"


def _schedule_params(
    kind: str, ref: str, due_ms: int, woken_ms: int | None
) -> tuple[str, str, int, int]:
    wake = due_ms if woken_ms is None else min(due_ms, woken_ms)
    return (kind, ref, due_ms, wake)


@dataclass(frozen=True, slots=True)
class Timer:
    """One due timer, with its failed tries so far."""

    kind: str
    ref: str
    due_at: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on one timer: its token is this claim's alone."""

    timer: Timer
    token: str


class TimerStore:
    """The ``timers`` and ``dead_letters`` tables."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def schedule(
        self,
        conn: Conn,
        kind: str,
        ref: str,
        due_ms: int,
        *,
        woken_ms: int | None = None,
    ) -> None:
        """Set (or move) a timer, inside the caller's transaction.

        ``woken_ms``: if a wake came while the timer was due or running (see
        :meth:`hasten`), it is due by then instead; a run that looked before the
        wake and found nothing to do puts itself off only past what it saw.
        """
        await conn.execute(_SCHEDULE, _schedule_params(kind, ref, due_ms, woken_ms))

    async def hasten(self, conn: Conn, kind: str, ref: str, due_ms: int) -> None:
        """Make a timer due by ``due_ms`` at the latest (set it if absent), inside the
        caller's transaction, a unit of work
        (:meth:`Db.write`): a wake-up.

        A timer due sooner than that (already due, perhaps running under a lease)
        is left exactly as it is. :meth:`schedule` would move it to the wake's own
        time and drop its lease: under a stream of wakes (experts turning free in a
        burst) every claim, made on the due time read a moment before, then failed,
        and the timer never ran (issue 8, defect 9).
        """
        await conn.execute(_HASTEN, (kind, ref, due_ms))

    async def cancel(self, conn: Conn, kind: str, ref: str) -> None:
        """Remove a timer, inside the caller's transaction."""
        await conn.execute(_CANCEL, (kind, ref))

    async def due(self, kinds: Collection[str], now_ms: int, limit: int = 100) -> list[Timer]:
        """Timers of these kinds due now and not leased by a live node, earliest first."""
        if not kinds:
            return []
        marks = ", ".join("?" * len(kinds))
        rows = await self.db.fetchall(
            "SELECT kind, ref, due_at, attempts FROM timers"
            f" WHERE due_at <= ? AND lease_until < ? AND kind IN ({marks})"
            " ORDER BY due_at LIMIT ?",
            (now_ms, now_ms, *kinds, limit),
        )
        return [Timer(r["kind"], r["ref"], r["due_at"], r["attempts"]) for r in rows]

    async def next_due(self, kinds: Collection[str]) -> int | None:
        """The earliest time a timer of these kinds may be claimed: due, and its lease over."""
        if not kinds:
            return None
        marks = ", ".join("?" * len(kinds))
        row = await self.db.fetchone(
            f"SELECT min(greatest(due_at, lease_until)) FROM timers WHERE kind IN ({marks})",
            tuple(kinds),
        )
        return int(row[0]) if row and row[0] is not None else None

    async def claim(self, timer: Timer, owner: str, now_ms: int, lease_ms: int) -> Lease | None:
        """Take the lease on a due timer; a lease for exactly one claimant, None for the others.

        The row is taken ``FOR UPDATE SKIP LOCKED``: on PostgreSQL a node that meets
        another node's claim in progress passes at once instead of waiting for it
        (it would then find the lease taken). SQLite's write lock orders claims.
        """
        token = f"{owner}/{secrets.token_hex(6)}"
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE timers SET lease_owner = ?, lease_until = ? WHERE (kind, ref) IN"
                " (SELECT kind, ref FROM timers WHERE kind = ? AND ref = ? AND due_at = ?"
                " AND lease_until < ? FOR UPDATE SKIP LOCKED)",
                (token, now_ms + lease_ms, timer.kind, timer.ref, timer.due_at, now_ms),
            )
            return Lease(timer, token) if changed == 1 else None

    async def renew(self, lease: Lease, until_ms: int) -> bool:
        """Extend a lease still held; False if it was lost or its timer moved or removed."""
        t = lease.timer
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE timers SET lease_until = greatest(lease_until, ?)"
                " WHERE kind = ? AND ref = ? AND due_at = ? AND lease_owner = ?",
                (until_ms, t.kind, t.ref, t.due_at, lease.token),
            )
            return changed == 1

    async def complete(self, lease: Lease) -> bool:
        """Delete a timer that ran, unless it was moved (or claimed again) while it ran."""
        t = lease.timer
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "DELETE FROM timers WHERE kind = ? AND ref = ? AND due_at = ? AND lease_owner = ?",
                (t.kind, t.ref, t.due_at, lease.token),
            )
            return changed == 1

    async def fail(self, lease: Lease, error: str, due_ms: int) -> bool:
        """Count a failed try and move the timer to ``due_ms``, if this lease still holds it."""
        t = lease.timer
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE timers SET due_at = ?, lease_owner = NULL, lease_until = 0,"
                " attempts = attempts + 1, last_error = ?"
                " WHERE kind = ? AND ref = ? AND due_at = ? AND lease_owner = ?",
                (due_ms, error[:MAX_ERROR], t.kind, t.ref, t.due_at, lease.token),
            )
            return changed == 1

    async def retire(self, lease: Lease, error: str, now_ms: int) -> int | None:
        """Move a timer that failed its last try to the dead letters; the dead letter's id.

        None if this lease no longer holds the timer (nothing changed).
        """
        t = lease.timer
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "DELETE FROM timers WHERE kind = ? AND ref = ? AND due_at = ? AND lease_owner = ?",
                (t.kind, t.ref, t.due_at, lease.token),
            )
            if changed != 1:
                return None
            dead_id: int | None = await conn.fetchval(
                "INSERT INTO dead_letters (kind, ref, attempts, last_error, failed_at)"
                " VALUES (?, ?, ?, ?, ?) RETURNING id",
                (t.kind, t.ref, t.attempts + 1, error[:MAX_ERROR], now_ms),
            )
            return dead_id

    # -- dead letters ---------------------------------------------------------------------

    async def dead_letters(self, status: str | None, before: int | None, limit: int) -> list[Row]:
        """Dead letters (of a status), newest first, with ids below ``before``."""
        where: list[str] = []
        params: list[str | int] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return await self.db.fetchall(
            f"SELECT * FROM dead_letters{clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )

    async def dead_letter(self, dead_id: int) -> Row | None:
        """One dead letter, or None."""
        return await self.db.fetchone("SELECT * FROM dead_letters WHERE id = ?", (dead_id,))

    async def revive(self, conn: Conn, dead_id: int, by: str, now_ms: int) -> Row | None:
        """Schedule a dead letter's timer again, due now, inside the caller's transaction.

        Marks the dead letter ``retried``; None if it is not ``dead`` (retried
        already). A timer of the same kind and ref scheduled since is left as
        it is: it runs the same work.
        """
        row = await conn.fetchrow(
            "UPDATE dead_letters SET status = 'retried', retried_at = ?, retried_by = ?"
            " WHERE id = ? AND status = 'dead' RETURNING *",
            (now_ms, by, dead_id),
        )
        if row is None:
            return None
        await conn.execute(
            "INSERT INTO timers (kind, ref, due_at) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, ref) DO NOTHING",
            (row["kind"], row["ref"], now_ms),
        )
        return row
