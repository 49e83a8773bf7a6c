"""Dashboard notifications and the outbox of e-mails and text messages.

Both are keyed so that the same notice is stored once, however many times
(and on however many nodes) the timer that makes it runs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.storage.sql import Conn, Db, Row


def notification_wire(row: Row) -> dict[str, Any]:
    """A notification as its user sees it."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "session_id": row["session_id"],
        **json.loads(row["body"]),
        "created_at": to_wire(from_ms(row["created_at"])),
        "read": row["read_at"] is not None,
    }


class NotificationStore:
    """The ``notifications`` and ``outbox`` tables."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(
        self,
        conn: Conn,
        user_id: str,
        kind: str,
        key: str,
        session_id: str | None,
        body: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Store a notification; False if this (user, kind, key) exists already."""
        added = await conn.execute(
            "INSERT INTO notifications (user_id, kind, key, session_id, body, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (user_id, kind, key, session_id, json.dumps(body), to_ms(now)),
        )
        return added == 1

    async def of_user(self, user_id: str, unread_only: bool = False) -> list[Row]:
        """A user's notifications, newest first."""
        extra = " AND read_at IS NULL" if unread_only else ""
        return await self.db.fetchall(
            f"SELECT * FROM notifications WHERE user_id = ?{extra} ORDER BY id DESC LIMIT 500",
            (user_id,),
        )

    async def mark_read(self, user_id: str, notification_id: int, now: datetime) -> bool:
        """Mark one of the user's notifications read; False if it is not his."""
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE notifications SET read_at = coalesce(read_at, ?)"
                " WHERE id = ? AND user_id = ?",
                (to_ms(now), notification_id, user_id),
            )
            return changed == 1

    async def queue(
        self,
        conn: Conn,
        user_id: str,
        channel: str,
        address: str,
        subject: str,
        body: str,
        key: str,
        now: datetime,
    ) -> int | None:
        """Put a message in the outbox (once per user, channel and key); its id, or None
        if it was queued already."""
        # RETURNING gives no row when the message was queued already (ignored).
        outbox_id: int | None = await conn.fetchval(
            "INSERT INTO outbox (user_id, channel, address, subject, body, key,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (user_id, channel, address, subject, body, key, to_ms(now)),
        )
        return outbox_id

    async def message(self, outbox_id: int) -> Row | None:
        """One outbox message, or None."""
        return await self.db.fetchone("SELECT * FROM outbox WHERE id = ?", (outbox_id,))

    async def messages(self, outbox_ids: list[int]) -> dict[int, Row]:
        """Outbox messages by id."""
        if not outbox_ids:
            return {}
        marks = ", ".join("?" * len(outbox_ids))
        rows = await self.db.fetchall(f"SELECT * FROM outbox WHERE id IN ({marks})", outbox_ids)
        return {r["id"]: r for r in rows}

    async def mark_sent(self, outbox_id: int, now: datetime) -> None:
        """Record a message as sent (the first time it was)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET sent_at = coalesce(sent_at, ?), attempts = attempts + 1"
                " WHERE id = ?",
                (to_ms(now), outbox_id),
            )

    async def mark_failed(self, outbox_id: int, error: str) -> None:
        """Count a failed attempt and keep its error (its timer tries it again later)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:500], outbox_id),
            )
