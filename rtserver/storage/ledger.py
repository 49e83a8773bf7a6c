"""The ledger: append-only money movements in integer cents.

Which rows an operation writes is decided in :mod:`rtserver.core.ledger`;
this module stores them (one ``op`` id per operation, inside the caller's
transaction) and reads them back for the statements, the transaction record
and payouts. Nothing is ever updated or deleted (triggers refuse it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core.ledger import CUSTOMER, EXPERT, PLATFORM, Entry, Row
from rtserver.storage.db import new_id
from rtserver.storage.sql import Conn, Db
from rtserver.storage.sql import Row as SqlRow

__all__ = ["CUSTOMER", "EXPERT", "PLATFORM", "Entry", "Ledger", "Row", "ledger_wire"]

_COLUMNS = "id, op, session_id, user_id, account, kind, amount_cents, at"


def _row(r: SqlRow) -> Row:
    return Row(
        r["id"],
        r["op"] or "",
        r["session_id"],
        r["user_id"],
        r["account"],
        r["kind"],
        r["amount_cents"],
        r["at"],
    )


def ledger_wire(r: SqlRow) -> dict[str, Any]:
    """A stored row as the API shows it (a session's rows, a decision's rows)."""
    return {
        "id": r["id"],
        "op": r["op"],
        "session_id": r["session_id"],
        "account": r["account"],
        "user_id": r["user_id"],
        "kind": r["kind"],
        "amount_cents": r["amount_cents"],
        "at": to_wire(from_ms(r["at"])),
        "memo": r["memo"],
    }


class Ledger:
    """The ``ledger`` table."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def append(
        self,
        conn: Conn,
        session_id: str | None,
        at: datetime,
        entries: list[Entry],
        op: str | None = None,
    ) -> str:
        """Append one operation's entries inside the caller's transaction; its op id."""
        if sum(e.amount_cents for e in entries) != 0:
            raise ValueError("an operation's rows must sum to zero")
        op = op or new_id("op")
        await conn.executemany(
            "INSERT INTO ledger (op, session_id, user_id, account, kind, amount_cents, at, memo)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (op, session_id, e.user_id, e.account, e.kind, e.amount_cents, to_ms(at), e.memo)
                for e in entries
            ],
        )
        return op

    async def of_session(self, session_id: str) -> list[SqlRow]:
        """A session's entries, in order."""
        return await self.db.fetchall(
            "SELECT * FROM ledger WHERE session_id = ? ORDER BY id", (session_id,)
        )

    async def of_op(self, conn: Conn, op: str) -> list[SqlRow]:
        """One operation's rows, inside the caller's transaction."""
        return await conn.fetch("SELECT * FROM ledger WHERE op = ? ORDER BY id", (op,))

    async def own(self, account: str, user_id: str) -> list[Row]:
        """Every row of a user's account, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM ledger WHERE account = ? AND user_id = ? ORDER BY id",
            (account, user_id),
        )
        return [_row(r) for r in rows]

    async def fees_of_expert(self, expert_id: str) -> list[Row]:
        """The platform's rows on an expert's charges and refunds (same operations)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM ledger WHERE account = 'platform'"
            " AND kind IN ('platform_fee', 'fee_reversal') AND op IN"
            " (SELECT op FROM ledger WHERE account = 'expert' AND user_id = ?"
            "  AND kind IN ('earning', 'refund_reversal'))"
            " ORDER BY id",
            (expert_id,),
        )
        return [_row(r) for r in rows]

    async def page(
        self, account: str, user_id: str, before_id: int | None, limit: int
    ) -> tuple[list[tuple[Row, str]], int]:
        """A page of a user's rows newest first (with memo), and the balance after its first."""
        params: list[object] = [account, user_id]
        where = "account = ? AND user_id = ?"
        if before_id is not None:
            where += " AND id < ?"
            params.append(before_id)
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS}, memo FROM ledger WHERE {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        if not rows:
            return [], 0
        top = await self.db.fetchone(
            "SELECT coalesce(sum(amount_cents), 0) AS b FROM ledger"
            " WHERE account = ? AND user_id = ? AND id <= ?",
            (account, user_id, rows[0]["id"]),
        )
        return [(_row(r), r["memo"]) for r in rows], int(top["b"]) if top else 0

    async def balance_in(self, conn: Conn, account: str, user_id: str) -> int:
        """A user's balance now, inside the caller's transaction."""
        row = await conn.fetchrow(
            "SELECT coalesce(sum(amount_cents), 0) FROM ledger WHERE account = ? AND user_id = ?",
            (account, user_id),
        )
        return int(row[0]) if row else 0

    async def owed_through(self, conn: Conn, expert_id: str, end_ms: int) -> int:
        """What an expert is owed for everything before ``end_ms``: his rows before it,
        less every payout made so far, whenever it was made.

        Counting later payouts matters when periods are paid out of order: a
        later period's payout already paid this period's money.
        """
        row = await conn.fetchrow(
            "SELECT coalesce(sum(amount_cents), 0) FROM ledger WHERE account = 'expert'"
            " AND user_id = ? AND (at < ? OR kind = 'payout')",
            (expert_id, end_ms),
        )
        return int(row[0]) if row else 0

    async def balance(self, account: str, user_id: str) -> int:
        """A user's balance now."""
        row = await self.db.fetchone(
            "SELECT coalesce(sum(amount_cents), 0) AS b FROM ledger"
            " WHERE account = ? AND user_id = ?",
            (account, user_id),
        )
        return int(row["b"]) if row else 0

    async def total(self) -> int:
        """The sum of every row (zero, always)."""
        row = await self.db.fetchone("SELECT coalesce(sum(amount_cents), 0) AS t FROM ledger")
        return int(row["t"]) if row else 0


# The account a user's rows are in, by role.
ACCOUNT_OF_ROLE = {"expert": EXPERT, "customer": CUSTOMER}
