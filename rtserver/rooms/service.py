"""The room commands: join, leave, message, typing, billing, end.

A room is a session's participants and their sockets on every node. Messages
are stored (group commit) before the sender's ``ok`` and then relayed through
the bus to every other socket of both participants. Billable time is the
pure clock of :mod:`rtserver.core.billing`, stored in the session row, and
kept honest by a durable liveness timer that any node may run.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core import money
from rtserver.core.billing import Billing
from rtserver.core.ledger import session_charge
from rtserver.errors import (
    Forbidden,
    InvalidField,
    InvalidState,
    NotFound,
    TooLarge,
    Unavailable,
)
from rtserver.hub.connections import Connection
from rtserver.hub.service import Hub
from rtserver.rooms.active import ActiveSessions
from rtserver.rooms.scheduled import Scheduled
from rtserver.schemas import (
    BillingPause,
    BillingStart,
    MessageSend,
    SessionCancel,
    SessionEnd,
    SessionJoin,
    SessionLeave,
    Typing,
)
from rtserver.storage.attachments import AttachmentStore
from rtserver.storage.ledger import Ledger
from rtserver.storage.sessions import Session
from rtserver.storage.transcript import NewMessage, NotActive, Transcript, message_wire
from rtserver.storage.users import User

log = logging.getLogger("rtserver.rooms")

BILLING_TIMER = "billing"
MAX_TEXT = 8_000
MAX_CODE = 60_000


class Rooms:
    """Session rooms of one node."""

    def __init__(self, hub: Hub, attachments: AttachmentStore, scheduled: Scheduled) -> None:
        self.hub = hub
        self.settings = hub.settings
        self.clock = hub.clock
        self.bus = hub.bus
        self.sessions = hub.sessions
        self.attachments = attachments
        self.scheduled = scheduled
        self.transcript = Transcript(hub.db, batch=self.settings.commit_batch, lanes=hub.db.writers)
        self.active = ActiveSessions()
        self.ledger = Ledger(hub.db)
        self.grace_ms = int(self.settings.disconnect_grace * 1000)
        self.check_s = self.settings.billing_check
        # Time with no liveness check at all that is never billed.
        self.stale_ms = int(self.settings.billing_check * 3000)
        hub.timers.register(BILLING_TIMER, self.on_billing_timer)

    # -- helpers -----------------------------------------------------------------

    async def _session(self, user: User, session_id: str) -> Session:
        session = await self.sessions.get(session_id)
        if session is None or user.id not in session.participants():
            raise NotFound("no such session")
        return session

    @staticmethod
    def _active(session: Session) -> None:
        if session.status != "active":
            raise InvalidState(f"session is {session.status}")

    def billing_wire(self, session_id: str, b: Billing) -> dict[str, Any]:
        """``{running, billable_seconds}`` now."""
        now_ms = to_ms(self.clock.now())
        return {"running": b.running, "billable_seconds": b.seconds(now_ms, self.stale_ms)}

    async def _attachments_of(self, rows: list[Any]) -> dict[str, dict[str, Any]]:
        ids = [r["attachment_id"] for r in rows if r["attachment_id"]]
        return {i: a.to_wire() for i, a in (await self.attachments.many(ids)).items()}

    # -- joining -------------------------------------------------------------------

    async def join(self, conn: Connection, cmd: SessionJoin) -> dict[str, Any]:
        """Enter the room; every stored message after ``after_seq``."""
        session = await self._session(conn.user, cmd.session_id)
        if session.status in ("ended", "cancelled"):
            raise InvalidState(f"session is {session.status}")
        if session.status == "scheduled":
            session = await self.scheduled.join(conn.user, session)
        conn.joined.add(session.id)
        rows = await self.transcript.after(session.id, cmd.after_seq)
        people = await self.hub.people(session.participants())
        attachments = await self._attachments_of(rows)
        try:
            present = await self.bus.online(session.participants())
        except Unavailable:
            # Resuming matters more than who else is here: this node's view.
            present = self.hub.registry.connected(session.participants())
        await self.bus.publish(
            session.participants(),
            {
                "type": "room.presence",
                "session_id": session.id,
                "user": conn.user.person(),
                "present": True,
            },
            skip=conn,
        )
        last_seq = max([session.last_seq, *(r["seq"] for r in rows)])
        return {
            "session": session.to_wire(people),
            "messages": [{"type": "message", **message_wire(r, people, attachments)} for r in rows],
            "last_seq": last_seq,
            # The client knows messages this server does not: its cache is from
            # another history (a restored database); it must reload, not resume.
            "reload": cmd.after_seq > last_seq,
            "present": sorted(present),
            "billing": self.billing_wire(session.id, session.billing),
        }

    async def leave(self, conn: Connection, cmd: SessionLeave) -> dict[str, Any]:
        """Leave the room; the session goes on."""
        session = await self._session(conn.user, cmd.session_id)
        if session.id in conn.joined:
            conn.joined.discard(session.id)
            await self._left(conn, session.id, session.participants())
        return {}

    async def _left(self, conn: Connection, session_id: str, participants: tuple[str, str]) -> None:
        await self.bus.publish(
            participants,
            {
                "type": "room.presence",
                "session_id": session_id,
                "user": conn.user.person(),
                "present": False,
            },
            skip=conn,
        )

    async def disconnected(self, conn: Connection) -> None:
        """A socket closed: it leaves every room it had joined."""
        for session_id in list(conn.joined):
            session = await self.sessions.get(session_id)
            if session is not None:
                await self._left(conn, session_id, session.participants())
        conn.joined.clear()

    # -- messages --------------------------------------------------------------------

    async def send(self, conn: Connection, cmd: MessageSend) -> dict[str, Any]:
        """Store a message, then relay it; ``ok`` only once it is durable.

        Who may write comes from :class:`ActiveSessions` once the session was
        seen active; that it is still active is checked when the message commits.
        """
        session_id = cmd.session_id
        participants = self.active.get(session_id)
        if participants is None:
            session = await self._session(conn.user, session_id)
            if session.status != "active":
                return await self._resent_after_end(conn.user, cmd, session.status)
            participants = session.participants()
            self.active.add(session_id, participants)
        elif conn.user.id not in participants:
            raise NotFound("no such session")
        text = cmd.text
        code_language = code_source = attachment_id = None
        if text is not None and len(text) > MAX_TEXT:
            # Any kind may carry text (a caption): one bound for all.
            raise TooLarge(f"text is over {MAX_TEXT} characters")
        if cmd.kind == "text":
            if not text:
                raise InvalidField("a text message needs text", "text")
        elif cmd.kind == "code":
            if cmd.code is None:
                raise InvalidField("a code message needs code", "code")
            if len(cmd.code.source) > MAX_CODE:
                raise TooLarge(f"code is over {MAX_CODE} characters")
            code_language, code_source = cmd.code.language, cmd.code.source
        else:
            if cmd.attachment_id is None:
                raise InvalidField("an attachment message needs attachment_id", "attachment_id")
            attachment = await self.attachments.get(cmd.attachment_id)
            if attachment is None or (
                attachment.uploader_id != conn.user.id and attachment.session_id != session_id
            ):
                raise NotFound("no such attachment")
            attachment_id = attachment.id
            if attachment.session_id is None:
                async with self.hub.db.transaction() as c:
                    await self.attachments.link(c, [attachment.id], session_id=session_id)
        now_ms = to_ms(self.clock.now())
        stored = await self.transcript.append(
            NewMessage(
                session_id,
                cmd.cid,
                conn.user.id,
                cmd.kind,
                text,
                code_language,
                code_source,
                attachment_id,
                now_ms,
            )
        )
        if isinstance(stored, NotActive):
            # Ended (here or on another node) since it was seen active.
            self.active.discard(session_id)
            return await self._resent_after_end(conn.user, cmd, stored.status)
        at = to_wire(from_ms(stored.at_ms))
        if stored.duplicate:
            # A resend: the first send may have been cut off between its commit and
            # its relay. Relay what is stored again; receivers dedupe by seq.
            rows = await self.transcript.after(session_id, stored.seq - 1, limit=1)
            if rows and rows[0]["cid"] == cmd.cid:
                people = await self.hub.people(participants)
                attachments = await self._attachments_of(rows)
                event = {"type": "message", **message_wire(rows[0], people, attachments)}
                await self.bus.publish(participants, event, skip=conn)
        else:
            attachment_wire = None
            if attachment_id is not None:
                found = await self.attachments.get(attachment_id)
                attachment_wire = found.to_wire() if found else None
            event = {
                "type": "message",
                "session_id": session_id,
                "seq": stored.seq,
                "cid": cmd.cid,
                "from": conn.user.person(),
                "kind": cmd.kind,
                "text": text,
                "code": {"language": code_language or "", "source": code_source}
                if cmd.kind == "code"
                else None,
                "attachment": attachment_wire,
                "at": at,
            }
            await self.bus.publish(participants, event, skip=conn)
        return {"seq": stored.seq, "at": at, "duplicate": stored.duplicate}

    async def _resent_after_end(self, user: User, cmd: MessageSend, status: str) -> dict[str, Any]:
        """A send to a session no longer active: ``invalid_state``, unless it is the
        resend of a message stored before the end (its ``ok`` was lost with the
        connection). Sending a cid again returns the first seq, ended or not, so a
        client's outbox can tell a stored message from a refused one."""
        earlier = await self.transcript.earlier(cmd.session_id, user.id, cmd.cid)
        if earlier is None:
            raise InvalidState(f"session is {status}")
        at = to_wire(from_ms(earlier.at_ms))
        return {"seq": earlier.seq, "at": at, "duplicate": True}

    async def typing(self, conn: Connection, cmd: Typing) -> dict[str, Any]:
        """Tell the others in the room that this user is typing (not stored)."""
        session = await self._session(conn.user, cmd.session_id)
        self._active(session)
        await self.bus.publish(
            session.participants(),
            {"type": "typing", "session_id": session.id, "from": conn.user.person()},
            skip=conn,
        )
        return {}

    # -- billing -----------------------------------------------------------------------

    async def billing(self, user: User, cmd: BillingStart | BillingPause) -> dict[str, Any]:
        """The expert starts or pauses billable time."""
        session = await self._session(user, cmd.session_id)
        if user.id != session.expert_id:
            raise Forbidden("only the session's expert starts and pauses billing")
        self._active(session)
        now_ms = to_ms(self.clock.now())
        async with self.hub.db.transaction() as conn:
            fresh = await self.sessions.get_in(conn, session.id)
            if fresh is None or fresh.status != "active":
                raise InvalidState("session is no longer active")
            if isinstance(cmd, BillingStart):
                b = fresh.billing.start(now_ms)
                if not fresh.billing.running:
                    due = now_ms + int(self.check_s * 1000)
                    await self.hub.timer_store.schedule(conn, BILLING_TIMER, session.id, due)
            else:
                b = fresh.billing.pause(now_ms, self.stale_ms)
                await self.hub.timer_store.cancel(conn, BILLING_TIMER, session.id)
            await self.sessions.save_billing(conn, session.id, b)
        self.hub.timers.wake()
        wire = self.billing_wire(session.id, b)
        log.info(
            "billing session=%s running=%s seconds=%d",
            session.id,
            b.running,
            wire["billable_seconds"],
        )
        await self.bus.publish(
            session.participants(), {"type": "billing", "session_id": session.id, **wire}
        )
        return {"billing": wire}

    async def on_billing_timer(self, session_id: str) -> None:
        """The liveness check of a running session (see core.billing)."""
        session = await self.sessions.get(session_id)
        if session is None or session.status != "active" or not session.billing.running:
            return
        online = await self.bus.online(session.participants())
        both = len(online) == 2
        now = self.clock.now()
        now_ms = to_ms(now)
        async with self.hub.db.transaction() as conn:
            fresh = await self.sessions.get_in(conn, session_id)
            if fresh is None or fresh.status != "active" or not fresh.billing.running:
                return
            b = fresh.billing.check(now_ms, both, self.grace_ms, self.stale_ms)
            await self.sessions.save_billing(conn, session_id, b)
            if b.running:
                due = now + timedelta(seconds=self.check_s)
                await self.hub.timer_store.schedule(conn, BILLING_TIMER, session_id, to_ms(due))
        if not b.running:
            log.info("billing paused session=%s: a participant was gone past the grace", session_id)
            await self.bus.publish(
                session.participants(),
                {
                    "type": "billing",
                    "session_id": session_id,
                    "reason": "disconnected",
                    **self.billing_wire(session_id, b),
                },
            )

    async def cancel(self, user: User, cmd: SessionCancel) -> dict[str, Any]:
        """Cancel a scheduled session before it starts."""
        session = await self._session(user, cmd.session_id)
        return await self.scheduled.cancel(user, session)

    # -- the end -------------------------------------------------------------------------

    async def end(self, user: User, cmd: SessionEnd) -> dict[str, Any]:
        """End the session: stop billing, charge, write the ledger, free the expert."""
        session = await self._session(user, cmd.session_id)
        if cmd.discount_pct is not None and user.id != session.expert_id:
            raise Forbidden("only the expert gives a discount")
        self._active(session)
        now = self.clock.now()
        now_ms = to_ms(now)
        discount = cmd.discount_pct or 0
        async with self.hub.db.transaction() as conn:
            fresh = await self.sessions.get_in(conn, session.id)
            if fresh is None or fresh.status != "active":
                raise InvalidState("session is no longer active")
            b = fresh.billing.pause(now_ms, self.stale_ms)
            await self.sessions.save_billing(conn, session.id, b)
            c = money.charge(
                fresh.rate_cents_per_15min,
                b.billed_ms // 1000,
                discount,
                self.settings.platform_fee,
            )
            await self.sessions.end(
                conn,
                session.id,
                user.id,
                now,
                discount,
                c.charge_cents,
                c.platform_fee_cents,
                c.expert_earnings_cents,
            )
            await self.ledger.append(
                conn,
                session.id,
                now,
                session_charge(session.customer_id, session.expert_id, c),
            )
            await self.hub.timer_store.cancel(conn, BILLING_TIMER, session.id)
        self.active.discard(session.id)
        summary = {
            "billable_seconds": c.billable_seconds,
            "charge_cents": c.charge_cents,
            "discount_pct": c.discount_pct,
            "platform_fee_cents": c.platform_fee_cents,
            "expert_earnings_cents": c.expert_earnings_cents,
        }
        log.info(
            "session ended session=%s by=%s seconds=%d charge=%d",
            session.id,
            user.id,
            c.billable_seconds,
            c.charge_cents,
        )
        ended = await self.sessions.get(session.id)
        assert ended is not None
        await self.hub.expert_free(session.expert_id)
        wire = await self.hub.session_wire(ended)
        await self.bus.publish(session.participants(), {"type": "session.update", "session": wire})
        await self.bus.publish(
            session.participants(),
            {
                "type": "billing",
                "session_id": session.id,
                "running": False,
                "billable_seconds": c.billable_seconds,
            },
        )
        return {"summary": summary}
