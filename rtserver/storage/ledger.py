"""The ledger: append-only money movements in integer cents.

Each ended session writes three rows: the customer's ``charge`` (negative),
the platform's ``platform_fee`` and the expert's ``earning``. Refunds and
payouts (the portal issues) append rows of their own; nothing is ever updated
or deleted (triggers refuse it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from rtserver.clock import to_ms
from rtserver.storage.db import Database, Row

PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Entry:
    """One movement of money."""

    account: str  # "customer", "expert" or "platform"
    user_id: str | None
    kind: str
    amount_cents: int
    memo: str = ""


class Ledger:
    """The ``ledger`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self, conn: aiosqlite.Connection, session_id: str | None, at: datetime, entries: list[Entry]
    ) -> None:
        """Append entries inside the caller's transaction."""
        await conn.executemany(
            "INSERT INTO ledger (session_id, user_id, account, kind, amount_cents, at, memo)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (session_id, e.user_id, e.account, e.kind, e.amount_cents, to_ms(at), e.memo)
                for e in entries
            ],
        )

    async def of_session(self, session_id: str) -> list[Row]:
        """A session's entries, in order."""
        return await self.db.fetchall(
            "SELECT * FROM ledger WHERE session_id = ? ORDER BY id", (session_id,)
        )
