"""Idempotency keys: an operation's answer kept with the money it moved.

A key is claimed first thing in the transaction of the operation it guards
(an insert), and its answer recorded in the same transaction. A replay's
claim meets the key: on SQLite after the first commit (its write lock orders
them), on PostgreSQL by waiting for the first transaction's insert to commit
or roll back; then it reads the committed answer. If the first rolled back, the
replay's claim succeeds and it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtserver.clock import to_ms
from rtserver.errors import InvalidField
from rtserver.storage.sql import Conn


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """The ``Idempotency-Key`` of one call: who, which key, and what was asked."""

    user_id: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, user_id: str, key: str, method: str, path: str, body: bytes) -> IdempotencyKey:
        """A key bound to the call's method, path and body."""
        digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body)
        return cls(user_id, key, digest.hexdigest())


@dataclass(frozen=True, slots=True)
class Kept:
    """The answer kept for a key."""

    status: int
    body: dict[str, Any]


class IdempotencyStore:
    """The ``idempotency_keys`` table."""

    async def kept(self, conn: Conn, key: IdempotencyKey) -> Kept | None:
        """The answer kept for this key (inside the caller's transaction), or None.

        The same key with another call is refused: reusing a key for a new
        operation is a client bug that must not pass silently.
        """
        row = await conn.fetchrow(
            "SELECT fingerprint, status, response FROM idempotency_keys"
            " WHERE user_id = ? AND key = ?",
            (key.user_id, key.key),
        )
        if row is None:
            return None
        if row[0] != key.fingerprint:
            raise InvalidField(
                "this Idempotency-Key was used for another request", "Idempotency-Key"
            )
        return Kept(int(row[1]), json.loads(row[2]))

    async def claim(self, conn: Conn, key: IdempotencyKey, now: datetime) -> bool:
        """Take the key for this transaction's operation; False if it is taken (by a
        committed operation: :meth:`kept` then reads its answer)."""
        taken = await conn.execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, response, created_at)"
            " VALUES (?, ?, ?, 0, '', ?) ON CONFLICT DO NOTHING",
            (key.user_id, key.key, key.fingerprint, to_ms(now)),
        )
        return taken == 1

    async def keep(
        self, conn: Conn, key: IdempotencyKey, status: int, body: dict[str, Any]
    ) -> None:
        """Record the answer of the claimed key, inside the same transaction."""
        await conn.execute(
            "UPDATE idempotency_keys SET status = ?, response = ? WHERE user_id = ? AND key = ?",
            (status, json.dumps(body), key.user_id, key.key),
        )
