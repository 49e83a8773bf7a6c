"""Scheduled sessions after booking: reminders, the start window, no-shows, cancelling.

Every step runs from a durable timer (claimed by exactly one node) or a
command, and each is idempotent: a reminder is a notification keyed by
(user, session, offset), stored once; a no-show or a cancel is a conditional
update of a session still ``scheduled``. So each happens once, however many
nodes run and however often they restart.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from rtserver.clock import to_wire
from rtserver.core import ledger as money
from rtserver.core import schedule
from rtserver.errors import InvalidState
from rtserver.hub.service import NO_SHOW_TIMER, REMINDER_TIMER, Hub
from rtserver.notices import Notices
from rtserver.storage.ledger import Ledger
from rtserver.storage.sessions import Session
from rtserver.storage.users import User

log = logging.getLogger("rtserver.scheduled")


class Scheduled:
    """Reminders, joins, no-shows and cancellations of scheduled sessions."""

    def __init__(self, hub: Hub, notices: Notices, ledger: Ledger) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.clock = hub.clock
        self.sessions = hub.sessions
        self.notices = notices
        self.notifications = notices.store
        self.ledger = ledger
        hub.timers.register(REMINDER_TIMER, self.on_reminder)
        hub.timers.register(NO_SHOW_TIMER, self.on_no_show)

    # -- reminders -------------------------------------------------------------------

    async def on_reminder(self, ref: str) -> None:
        """One reminder of one session, to both sides: event, notification, e-mail."""
        session_id, _, ms_before = ref.partition("|")
        session = await self.sessions.get(session_id)
        now = self.clock.now()
        if session is None or session.status != "scheduled" or session.scheduled_at is None:
            return
        if now >= session.scheduled_at:
            return  # the node was down past the start: a late reminder helps nobody
        seconds_before = int(ms_before) / 1000
        r = schedule.Reminder(seconds_before, session.scheduled_at)
        body = {
            "session_id": session.id,
            "starts_at": to_wire(session.scheduled_at),
            "minutes_before": r.minutes_before,
            "seconds_before": seconds_before,
        }
        people = await self.hub.users.many(list(session.participants()))
        fresh: list[str] = []
        subject = f"Reminder: {session.title} starts at {body['starts_at']}"
        text = (
            f'Your help session "{session.title}" starts at '
            f"{body['starts_at']} (UTC), in {r.minutes_before} minutes."
        )
        async with self.hub.db.transaction() as conn:
            for uid in session.participants():
                user = people.get(uid)
                if user is not None and await self.notices.add(
                    conn,
                    user,
                    "reminder",
                    f"{session.id}|{ms_before}",
                    session.id,
                    {**body, "title": session.title},
                    subject,
                    text,
                    now,
                    sms=True,
                ):
                    fresh.append(uid)
        self.notices.kick()
        if fresh:
            log.info(
                "reminder session=%s before=%ss users=%d", session.id, seconds_before, len(fresh)
            )
            await self.hub.bus.publish(fresh, {"type": "reminder", **body})

    # -- joining -----------------------------------------------------------------------

    async def join(self, user: User, session: Session) -> Session:
        """A participant joins a scheduled session: not before the start window opens."""
        assert session.scheduled_at is not None
        now = self.clock.now()
        if not schedule.may_join(now, session.scheduled_at, self.settings.early_start):
            opens = session.scheduled_at - timedelta(seconds=self.settings.early_start)
            raise InvalidState(f"this session opens at {to_wire(opens)}")
        async with self.hub.db.transaction() as conn:
            if user.id == session.expert_id:
                other = await self.sessions.active_of_expert_in(conn, user.id)
                if other is not None and other != session.id:
                    raise InvalidState("end your active session before starting this one")
            fresh = await self.sessions.mark_joined(conn, session, user.id, now)
        assert fresh is not None
        if fresh.status == "active":
            log.info("scheduled session started session=%s", fresh.id)
            await self.hub.bus.publish(
                fresh.participants(),
                {"type": "session.update", "session": await self.hub.session_wire(fresh)},
            )
        return fresh

    # -- no-show and cancelling ---------------------------------------------------------

    async def on_no_show(self, session_id: str) -> None:
        """After the start plus --no-show: cancel if both sides have not joined."""
        session = await self.sessions.get(session_id)
        if session is None or session.status != "scheduled":
            return
        fee = schedule.no_show_fee(
            session.customer_id,
            session.expert_id,
            session.customer_joined_at is not None,
            session.expert_joined_at is not None,
            self.settings.cancellation_fee,
            self.settings.platform_fee,
        )
        await self._cancel(session, "no_show", None, fee)

    async def cancel(self, user: User, session: Session) -> dict[str, Any]:
        """Either side cancels before the start; within --late-cancel it costs the fee."""
        if session.status != "scheduled" or session.scheduled_at is None:
            raise InvalidState(f"session is {session.status}")
        now = self.clock.now()
        if now >= session.scheduled_at:
            # From the start on, the no-show check decides who (if anyone) pays:
            # a side that came and waited must not pay as the canceller.
            raise InvalidState("the session has started; it is cancelled if a side does not join")
        other = session.expert_id if user.id == session.customer_id else session.customer_id
        fee = schedule.cancel_fee(
            user.id,
            other,
            now,
            session.scheduled_at,
            self.settings.late_cancel,
            self.settings.cancellation_fee,
            self.settings.platform_fee,
        )
        if not await self._cancel(session, "cancelled", user.id, fee):
            raise InvalidState("session is no longer scheduled")
        return {"fee_cents": fee.fee_cents, "charged_user_id": fee.charged_user_id}

    async def _cancel(
        self, session: Session, reason: str, by: str | None, fee: schedule.Fee
    ) -> bool:
        now = self.clock.now()
        async with self.hub.db.transaction() as conn:
            if not await self.sessions.cancel(
                conn, session.id, reason, by, now, fee.fee_cents, fee.charged_user_id
            ):
                return False
            if fee.charged_user_id is not None:
                entries = money.cancellation(session.customer_id, session.expert_id, fee, reason)
                await self.ledger.append(conn, session.id, now, entries)
            for offset in self.settings.reminders:
                ref = f"{session.id}|{int(offset * 1000)}"
                await self.hub.timer_store.cancel(conn, REMINDER_TIMER, ref)
            await self.hub.timer_store.cancel(conn, NO_SHOW_TIMER, session.id)
        log.info(
            "scheduled session cancelled session=%s reason=%s by=%s fee=%d charged=%s",
            session.id,
            reason,
            by,
            fee.fee_cents,
            fee.charged_user_id,
        )
        await self.hub.bus.publish(
            session.participants(),
            {
                "type": "session.cancelled",
                "session_id": session.id,
                "reason": reason,
                "fee_cents": fee.fee_cents,
                "charged_user_id": fee.charged_user_id,
            },
        )
        fresh = await self.sessions.get(session.id)
        if fresh is not None:
            await self.hub.bus.publish(
                session.participants(),
                {"type": "session.update", "session": await self.hub.session_wire(fresh)},
            )
        return True
