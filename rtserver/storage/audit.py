"""The managers' audit log: append-only, one row per manager action."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.storage.sql import Conn, Db, Row


def audit_wire(row: Row, people: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One audit entry as managers read it."""
    manager_id = row["manager_id"]
    return {
        "id": row["id"],
        "at": to_wire(from_ms(row["at"])),
        "manager": people.get(manager_id, {"id": manager_id}) if manager_id else None,
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "details": json.loads(row["details"]),
    }


class AuditLog:
    """The ``audit_log`` table."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(
        self,
        conn: Conn,
        manager_id: str | None,
        action: str,
        target_type: str,
        target_id: str,
        details: dict[str, Any],
        now: datetime,
    ) -> None:
        """Record a manager action inside the transaction that does it."""
        await conn.execute(
            "INSERT INTO audit_log (manager_id, action, target_type, target_id, details, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (manager_id, action, target_type, target_id, json.dumps(details), to_ms(now)),
        )

    async def page(self, before_id: int | None, limit: int) -> list[Row]:
        """Entries newest first."""
        if before_id is None:
            return await self.db.fetchall(
                "SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)
            )
        return await self.db.fetchall(
            "SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
        )
