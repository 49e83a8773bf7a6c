"""Telling users: a stored notification, an e-mail, a text, then an event.

One mechanism for every notice (a reminder, a direct request, a refund claim's
steps, a review, a verification, a payout). :meth:`Notices.add` writes the
dashboard notification and the outbox messages inside the caller's
transaction, keyed so that a retried operation notifies once; after the
commit the caller publishes the event and calls :meth:`Notices.kick`. Each
outbox message has a durable timer of its own (kind ``outbox``, ref its id),
written with it: whichever node claims that timer sends that one message
through the :class:`~rtserver.notify.Sender` of its channel, under a lease
renewed while it sends. One slow or failing address therefore holds up no
other message; a failing one is tried again with backoff and, after its last
try, becomes a dead letter (:mod:`rtserver.hub.timers`). Payout transfers
ride the same outbox (channel ``payout``) to the :class:`~rtserver.notify.Payer`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime
from typing import Any

from rtserver.clock import Clock, to_ms
from rtserver.hub.timers import TimerLoop, describe
from rtserver.notify import LogPayer, LogSender, Outgoing, Payer, Sender, Transfer
from rtserver.storage.notifications import NotificationStore
from rtserver.storage.sql import Conn
from rtserver.storage.timers import TimerStore
from rtserver.storage.users import User

log = logging.getLogger("rtserver.notices")

OUTBOX_TIMER = "outbox"
# Outbox rows of this channel are payouts for the Payer, not messages.
PAYOUT_CHANNEL = "payout"


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
        conn: Conn,
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
        await self.queue(conn, user.id, "email", user.email, subject, text, outbox_key, now)
        if sms and user.phone:
            await self.queue(conn, user.id, "sms", user.phone, subject, text, outbox_key, now)
        return True

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
    ) -> None:
        """Put one message in the outbox with its own timer, due now, in the caller's
        transaction (once per user, channel and key)."""
        outbox_id = await self.store.queue(conn, user_id, channel, address, subject, body, key, now)
        if outbox_id is not None:
            await self.timer_store.schedule(conn, OUTBOX_TIMER, str(outbox_id), to_ms(now))

    async def transfer(self, conn: Conn, transfer: Transfer, now: datetime) -> None:
        """Queue a payout's transfer for the :class:`~rtserver.notify.Payer`, in the
        transaction that records the payout (so it is sent if and only if it was made)."""
        await self.queue(
            conn,
            transfer.expert_id,
            PAYOUT_CHANNEL,
            transfer.expert_id,
            f"payout {transfer.payout_id}",
            json.dumps(dataclasses.asdict(transfer)),
            f"payout|{transfer.payout_id}",
            now,
        )

    def kick(self) -> None:
        """After the commit: let the timer loop send what was queued."""
        self.timers.wake()

    async def on_outbox(self, ref: str) -> None:
        """Send one outbox message (its timer's ref is its id), unless it was sent.

        Raising leaves it unsent: its timer tries it again later, or retires it.
        """
        if not (ref.isascii() and ref.isdigit()):
            # The one outbox timer ("all") of databases from before per-message
            # timers: the migration gave each unsent message a timer of its own.
            log.debug("old outbox timer ref=%s: nothing to do", ref)
            return
        row = await self.store.message(int(ref))
        if row is None or row["sent_at"] is not None:
            return
        try:
            if row["channel"] == PAYOUT_CHANNEL:
                await self.payer.pay(Transfer(**json.loads(row["body"])))
            else:
                message = Outgoing(
                    row["channel"], row["address"], row["subject"], row["body"], f"outbox:{ref}"
                )
                await self.senders.get(row["channel"], self.senders["email"]).send(message)
        except Exception as exc:
            await self.store.mark_failed(row["id"], describe(exc))
            raise
        await self.store.mark_sent(row["id"], self.clock.now())
