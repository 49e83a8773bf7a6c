"""What the portal services share: their parts, and running an operation once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rtserver.clock import Clock
from rtserver.config import Settings
from rtserver.hub.bus import Bus
from rtserver.notices import Notices
from rtserver.storage.audit import AuditLog
from rtserver.storage.claims import ClaimStore
from rtserver.storage.idempotency import IdempotencyKey, IdempotencyStore
from rtserver.storage.ledger import Ledger
from rtserver.storage.payouts import PayoutStore
from rtserver.storage.sessions import SessionStore
from rtserver.storage.sql import Conn, Db
from rtserver.storage.users import UserStore


@dataclass(frozen=True, slots=True)
class Parts:
    """The stores and services the portal works with, built once by the app factory."""

    settings: Settings
    clock: Clock
    db: Db
    bus: Bus
    users: UserStore
    sessions: SessionStore
    claims: ClaimStore
    ledger: Ledger
    payouts: PayoutStore
    audit: AuditLog
    notices: Notices
    idempotency: IdempotencyStore

    async def people(self, user_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """``{id: {id, name, role}}`` for these users."""
        found = await self.users.many([u for u in set(user_ids) if u])
        return {uid: u.person() for uid, u in found.items()}


@dataclass(frozen=True, slots=True)
class Done:
    """What an operation answered, and whether it was a replay of a kept answer."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


Work = Callable[[Conn], Awaitable[tuple[int, dict[str, Any]]]]


async def run_once(parts: Parts, key: IdempotencyKey | None, now: datetime, work: Work) -> Done:
    """Run ``work`` in one write transaction, at most once per idempotency key.

    The key and the answer are stored in the same transaction as what the
    work writes, so the money moves exactly when the key is kept. A replay
    returns the kept answer and runs nothing; an error rolls everything back
    and keeps no key (a retry runs again).
    """
    async with parts.db.transaction() as conn:
        if key is not None and not await parts.idempotency.claim(conn, key, now):
            kept = await parts.idempotency.kept(conn, key)
            assert kept is not None  # the claim met it, committed
            return Done(kept.status, kept.body, replayed=True)
        status, body = await work(conn)
        if key is not None:
            await parts.idempotency.keep(conn, key, status, body)
    return Done(status, body)
