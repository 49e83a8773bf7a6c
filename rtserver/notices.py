"""Telling users: a stored notification, an e-mail, a text, then an event.

One mechanism for every notice (a reminder, a direct request, a refund claim's
steps, a review, a verification, a payout). :meth:`Notices.add` writes the
dashboard notification and the outbox messages inside the caller's
transaction, keyed so that a retried operation notifies once; after the
commit the caller publishes the event and calls :meth:`Notices.kick`, and
whichever node claims the outbox timer sends the messages through the
:class:`~rtserver.notify.Sender` of their channel. Payout transfers ride the
same outbox (channel ``payout``) to the :class:`~rtserver.notify.Payer`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from rtserver.clock import Clock, to_ms
from rtserver.hub.timers import TimerLoop
from rtserver.notify import LogPayer, LogSender, Outgoing, Payer, Sender, Transfer
from rtserver.storage.notifications import NotificationStore
from rtserver.storage.timers import TimerStore
from rtserver.storage.users import User

log = logging.getLogger("rtserver.notices")

OUTBOX_TIMER = "outbox"
# Outbox rows of this channel are payouts for the Payer, not messages.
PAYOUT_CHANNEL = "payout"
# A failed send is tried again this much later.
OUTBOX_RETRY = 30.0


class Notices:
    """Notifications and the outbox of e-mails and texts."""

    def __init__(
        self,
        store: NotificationStore,
        timer_store: TimerStore,
        timers: TimerLoop,
        clock: Clock,
        email: Sender | None = None,
        text: Sender | None = None,
        payer: Payer | None = None,
    ) -> None:
        self.store = store
        self.timer_store = timer_store
        self.timers = timers
        self.clock = clock
        self.senders: dict[str, Sender] = {
            "email": email or LogSender(),
            "sms": text or LogSender(),
        }
        self.payer = payer or LogPayer()
        timers.register(OUTBOX_TIMER, self.on_outbox)

    async def add(
        self,
        conn: aiosqlite.Connection,
        user: User,
        kind: str,
        key: str,
        session_id: str | None,
        body: dict[str, Any],
        subject: str,
        text: str,
        now: datetime,
        *,
        sms: bool = False,
    ) -> bool:
        """Store a notification and queue its e-mail (and text), once per (user, kind, key).

        ``sms``: also send it as a text when the user has a phone number.
        False if this notice was given already.
        """
        if not await self.store.add(conn, user.id, kind, key, session_id, body, now):
            return False
        outbox_key = f"{kind}|{key}"
        await self.store.queue(conn, user.id, "email", user.email, subject, text, outbox_key, now)
        if sms and user.phone:
            await self.store.queue(conn, user.id, "sms", user.phone, subject, text, outbox_key, now)
        await self.timer_store.schedule(conn, OUTBOX_TIMER, "all", to_ms(now))
        return True

    async def transfer(self, conn: aiosqlite.Connection, transfer: Transfer, now: datetime) -> None:
        """Queue a payout's transfer for the :class:`~rtserver.notify.Payer`, in the
        transaction that records the payout (so it is sent if and only if it was made)."""
        await self.store.queue(
            conn,
            transfer.expert_id,
            PAYOUT_CHANNEL,
            transfer.expert_id,
            f"payout {transfer.payout_id}",
            json.dumps(dataclasses.asdict(transfer)),
            f"payout|{transfer.payout_id}",
            now,
        )
        await self.timer_store.schedule(conn, OUTBOX_TIMER, "all", to_ms(now))

    def kick(self) -> None:
        """After the commit: let the timer loop send what was queued."""
        self.timers.wake()

    async def on_outbox(self, _ref: str) -> None:
        """Send what waits in the outbox; failures stay for the next run."""
        now = self.clock.now()
        failed = 0
        for row in await self.store.unsent():
            try:
                if row["channel"] == PAYOUT_CHANNEL:
                    await self.payer.pay(Transfer(**json.loads(row["body"])))
                else:
                    message = Outgoing(row["channel"], row["address"], row["subject"], row["body"])
                    await self.senders.get(row["channel"], self.senders["email"]).send(message)
            except Exception:
                log.exception("outbox send failed id=%s channel=%s", row["id"], row["channel"])
                await self.store.mark_failed(row["id"])
                failed += 1
                continue
            await self.store.mark_sent(row["id"], now)
        if failed:
            async with self.store.db.transaction() as conn:
                due = now + timedelta(seconds=OUTBOX_RETRY)
                await self.timer_store.schedule(conn, OUTBOX_TIMER, "all", to_ms(due))
