"""Dead letters, for managers: timers that failed their last try, and retrying one.

A dead letter is a durable timer (a reminder, a wave, a no-show check, one
outbox message) whose handler failed ``--timer-attempts`` times; the timer
loop retired it with its last error (:mod:`rtserver.hub.timers`). Managers
list them, newest first, an outbox message shown with its channel, address
and subject, and retry one: its timer is scheduled again, due now, with its
count of tries started afresh. The retry is written to the audit log in the
transaction that does it.
"""

from __future__ import annotations

import logging
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.errors import Forbidden, InvalidState, NotFound
from rtserver.hub.timers import TimerLoop
from rtserver.notices import OUTBOX_TIMER
from rtserver.portal.common import Parts
from rtserver.storage.db import MAX_INT, decode_cursor, encode_cursor
from rtserver.storage.notifications import NotificationStore
from rtserver.storage.sql import Row
from rtserver.storage.timers import TimerStore
from rtserver.storage.users import User

log = logging.getLogger("rtserver.dead_letters")

STATUSES = ("dead", "retried")


def _manager(user: User) -> None:
    if user.role != "manager":
        raise Forbidden("only community managers do this")


def _outbox_id(row: Row) -> int | None:
    ref = row["ref"]
    if row["kind"] != OUTBOX_TIMER or not (ref.isascii() and ref.isdigit()):
        return None
    return int(ref)


def dead_letter_wire(
    row: Row, people: dict[str, dict[str, Any]], messages: dict[int, Row]
) -> dict[str, Any]:
    """A dead letter as the console lists it."""
    outbox_id = _outbox_id(row)
    msg = messages.get(outbox_id) if outbox_id is not None else None
    by = row["retried_by"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "ref": row["ref"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "failed_at": to_wire(from_ms(row["failed_at"])),
        "status": row["status"],
        "retried_at": to_wire(from_ms(row["retried_at"])) if row["retried_at"] else None,
        "retried_by": people.get(by, {"id": by}) if by else None,
        "message": {
            "channel": msg["channel"],
            "address": msg["address"],
            "subject": msg["subject"],
            "user_id": msg["user_id"],
            "sent": msg["sent_at"] is not None,
        }
        if msg is not None
        else None,
    }


class DeadLetters:
    """Listing and retrying dead letters."""

    def __init__(
        self, parts: Parts, timers: TimerStore, loop: TimerLoop, outbox: NotificationStore
    ) -> None:
        self.p = parts
        self.timers = timers
        self.loop = loop
        self.outbox = outbox

    async def _wire(self, rows: list[Row]) -> list[dict[str, Any]]:
        people = await self.p.people([r["retried_by"] or "" for r in rows])
        ids = [i for i in (_outbox_id(r) for r in rows) if i is not None]
        messages = await self.outbox.messages(ids)
        return [dead_letter_wire(r, people, messages) for r in rows]

    async def page(
        self, manager: User, status: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """Dead letters (of a status), newest first."""
        _manager(manager)
        before = decode_cursor(cursor, (int,))[0] if cursor else None
        rows = await self.timers.dead_letters(status, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "dead_letters": await self._wire(rows),
            "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None,
        }

    async def retry(self, manager: User, raw_id: str) -> dict[str, Any]:
        """Schedule a dead letter's timer again, due now; it is marked ``retried``."""
        _manager(manager)
        if not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) > MAX_INT:
            raise NotFound("no such dead letter")
        dead_id = int(raw_id)
        now = self.p.clock.now()
        async with self.p.db.transaction() as conn:
            row = await self.timers.revive(conn, dead_id, manager.id, to_ms(now))
            if row is not None:
                await self.p.audit.add(
                    conn,
                    manager.id,
                    "dead_letter.retry",
                    "dead_letter",
                    str(dead_id),
                    {"kind": row["kind"], "ref": row["ref"]},
                    now,
                )
        if row is None:
            if await self.timers.dead_letter(dead_id) is None:
                raise NotFound("no such dead letter")
            raise InvalidState("this dead letter was retried already")
        self.loop.wake()
        log.info(
            "dead letter retried id=%d kind=%s ref=%s by=%s",
            dead_id,
            row["kind"],
            row["ref"],
            manager.id,
        )
        fresh = await self.timers.dead_letter(dead_id)
        assert fresh is not None
        return {"dead_letter": (await self._wire([fresh]))[0]}
