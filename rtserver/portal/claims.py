"""Refund claims, disputes, decisions and reviews.

Each step is one transaction: the rule check on fresh rows, the claim's
conditional update, the ledger rows of a decision, the notifications and the
outbox, and the idempotency key. After the commit both sides get a
``claim.update`` event. Two managers deciding at once, on one node or many,
serialize on the database's write lock; the second finds the claim decided and
answers ``invalid_state``, so the money moves once.
"""

from __future__ import annotations

import logging
from typing import Any

from rtserver.clock import to_ms
from rtserver.core import claims as rules
from rtserver.core import ledger as money
from rtserver.errors import NotFound
from rtserver.portal.common import Done, Parts, run_once
from rtserver.storage.claims import Claim, Review
from rtserver.storage.db import decode_cursor, encode_cursor
from rtserver.storage.idempotency import IdempotencyKey
from rtserver.storage.ledger import ledger_wire
from rtserver.storage.sessions import Session
from rtserver.storage.sql import Conn
from rtserver.storage.users import User

log = logging.getLogger("rtserver.claims")

_STEP_TEXT = {
    "claimed": '{customer} claimed a refund of "{title}".',
    "disputed": '{expert} disputed the refund claim on "{title}".',
    "decided": 'A community manager decided the refund claim on "{title}": {outcome}.',
}
_OUTCOME_TEXT = {
    "refund": "refunded to the customer, deducted from the expert's earnings",
    "deny": "the dispute is accepted; nothing is refunded",
    "no_fault": "refunded to the customer by the platform; the expert keeps his earnings",
}


class Claims:
    """Refund claims and reviews."""

    def __init__(self, parts: Parts) -> None:
        self.p = parts

    # -- reading -------------------------------------------------------------------

    async def wire(self, claim: Claim, session: Session | None = None) -> dict[str, Any]:
        """A claim with its people and its session's title and charge."""
        session = session or await self.p.sessions.get(claim.session_id)
        people = await self.p.people([claim.customer_id, claim.expert_id, claim.decided_by or ""])
        return claim.to_wire(people, session)

    async def visible(self, user: User, claim_id: str) -> Claim:
        """A claim its parties and managers may see; NotFound for anyone else."""
        claim = await self.p.claims.get(claim_id)
        if claim is None or (
            user.role != "manager" and user.id not in (claim.customer_id, claim.expert_id)
        ):
            raise NotFound("no such claim")
        return claim

    async def page(
        self, user: User, statuses: list[str], cursor: str | None, limit: int
    ) -> dict[str, Any]:
        """Managers: the queue, oldest first. Others: their own claims, newest first."""
        manager = user.role == "manager"
        if manager and not statuses:
            statuses = list(rules.PENDING)
        after = None
        if cursor:
            ms, cid = decode_cursor(cursor, (int, str))
            after = (ms, cid)
        found = await self.p.claims.page(
            user_id=None if manager else user.id,
            statuses=statuses,
            oldest_first=manager,
            after=after,
            limit=limit + 1,
        )
        more = len(found) > limit
        found = found[:limit]
        sessions = await self.p.sessions.many([c.session_id for c in found])
        people = await self.p.people(
            [x for c in found for x in (c.customer_id, c.expert_id, c.decided_by or "")]
        )
        out = [c.to_wire(people, sessions.get(c.session_id)) for c in found]
        last = found[-1] if found else None
        return {
            "claims": out,
            "next_cursor": encode_cursor(to_ms(last.created_at), last.id)
            if more and last
            else None,
        }

    async def _session(self, user: User, session_id: str) -> Session:
        """A session its participants and managers may act on (the rules then say who may
        do what: a manager is forbidden the customer's steps, not told it is missing)."""
        session = await self.p.sessions.get(session_id)
        if session is None or (user.id not in session.participants() and user.role != "manager"):
            raise NotFound("no such session")
        return session

    # -- the steps -------------------------------------------------------------------

    async def claim(
        self, user: User, session_id: str, reason: str, key: IdempotencyKey | None
    ) -> Done:
        """The customer claims a refund of an ended, charged session."""
        session = await self._session(user, session_id)
        now = self.p.clock.now()
        people = await self.p.users.many(list(session.participants()))

        async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
            fresh = await self.p.sessions.get_in(conn, session_id)
            assert fresh is not None
            rules.check_claim(
                user_id=user.id,
                customer_id=fresh.customer_id,
                status=fresh.status,
                charge_cents=fresh.charge_cents,
                ended_at=fresh.ended_at,
                now=now,
                window=self.p.settings.refund_window,
                already_claimed=await self.p.claims.of_session_in(conn, session_id) is not None,
            )
            claim = await self.p.claims.insert(
                conn, session_id, fresh.customer_id, fresh.expert_id, reason.strip(), now
            )
            wire = claim.to_wire(_persons(people), fresh)
            await self._tell(conn, wire, "claimed", people)
            return 201, {"claim": wire}

        done = await run_once(self.p, key, now, work)
        await self._after(done, "claimed")
        return done

    async def dispute(
        self, user: User, claim_id: str, summary: str, key: IdempotencyKey | None
    ) -> Done:
        """The session's expert disputes an open claim with his summary."""
        claim = await self.visible(user, claim_id)
        now = self.p.clock.now()
        session = await self.p.sessions.get(claim.session_id)
        assert session is not None
        people = await self.p.users.many([claim.customer_id, claim.expert_id])

        async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
            fresh = await self.p.claims.get_in(conn, claim_id)
            assert fresh is not None
            rules.check_dispute(user_id=user.id, expert_id=fresh.expert_id, status=fresh.status)
            await self.p.claims.dispute(conn, claim_id, summary.strip(), now)
            updated = await self.p.claims.get_in(conn, claim_id)
            assert updated is not None
            wire = updated.to_wire(_persons(people), session)
            await self._tell(conn, wire, "disputed", people)
            return 200, {"claim": wire}

        done = await run_once(self.p, key, now, work)
        await self._after(done, "disputed")
        return done

    async def decide(
        self,
        user: User,
        claim_id: str,
        outcome: money.Outcome,
        note: str,
        key: IdempotencyKey | None,
    ) -> Done:
        """A community manager's final decision, with its ledger rows."""
        rules.check_decision(role=user.role, status="open")
        claim = await self.visible(user, claim_id)
        now = self.p.clock.now()
        people = await self.p.users.many([claim.customer_id, claim.expert_id, user.id])

        async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
            fresh = await self.p.claims.get_in(conn, claim_id)
            assert fresh is not None
            rules.check_decision(role=user.role, status=fresh.status)
            session = await self.p.sessions.get_in(conn, fresh.session_id)
            assert session is not None and session.charge_cents is not None
            await self.p.users.lock_in(conn, session.expert_id)
            entries = money.refund_decision(
                outcome,
                session.customer_id,
                session.expert_id,
                session.charge_cents,
                session.platform_fee_cents or 0,
                session.expert_earnings_cents or 0,
            )
            rows: list[dict[str, Any]] = []
            if entries:
                op = await self.p.ledger.append(conn, session.id, now, entries)
                rows = [ledger_wire(r) for r in await self.p.ledger.of_op(conn, op)]
            await self.p.claims.decide(
                conn, claim_id, rules.FINAL_STATUS[outcome], outcome, note.strip(), user.id, now
            )
            await self.p.audit.add(
                conn,
                user.id,
                "claim.decide",
                "claim",
                claim_id,
                {"outcome": outcome, "note": note.strip(), "session_id": session.id},
                now,
            )
            updated = await self.p.claims.get_in(conn, claim_id)
            assert updated is not None
            wire = updated.to_wire(_persons(people), session)
            await self._tell(conn, wire, "decided", people)
            return 200, {"claim": wire, "ledger": rows}

        done = await run_once(self.p, key, now, work)
        if not done.replayed:
            log.info("claim decided claim=%s outcome=%s by=%s", claim_id, outcome, user.id)
        await self._after(done, "decided")
        return done

    async def _tell(
        self, conn: Conn, wire: dict[str, Any], step: str, people: dict[str, User]
    ) -> None:
        """The stored notification and e-mail of one step, to both sides."""
        text = _STEP_TEXT[step].format(
            customer=wire["customer"].get("name", "The customer"),
            expert=wire["expert"].get("name", "The expert"),
            title=wire["session_title"],
            outcome=_OUTCOME_TEXT.get(wire["outcome"] or "", ""),
        )
        for uid in (wire["customer"]["id"], wire["expert"]["id"]):
            user = people.get(uid)
            if user is None:
                continue
            await self.p.notices.add(
                conn,
                user,
                "claim",
                f"{wire['id']}|{step}",
                wire["session_id"],
                {"claim_id": wire["id"], "step": step, "status": wire["status"], "text": text},
                f"Refund claim {step}: {wire['session_title']}",
                text,
                self.p.clock.now(),
            )

    async def _after(self, done: Done, step: str) -> None:
        """After the commit: the event to both sides (a replay publishes nothing new)."""
        if done.replayed:
            return
        self.p.notices.kick()
        wire = done.body["claim"]
        await self.p.bus.publish(
            [wire["customer"]["id"], wire["expert"]["id"]],
            {"type": "claim.update", "step": step, "claim": wire},
        )

    # -- reviews ---------------------------------------------------------------------------

    async def review(
        self, user: User, session_id: str, stars: int, comment: str, key: IdempotencyKey | None
    ) -> Done:
        """The customer rates an ended session once."""
        session = await self._session(user, session_id)
        now = self.p.clock.now()
        people = await self.p.users.many(list(session.participants()))

        async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
            fresh = await self.p.sessions.get_in(conn, session_id)
            assert fresh is not None
            review: Review | None = None
            if user.id == fresh.customer_id and fresh.status == "ended":
                review = await self.p.claims.add_review(
                    conn, session_id, user.id, fresh.expert_id, stars, comment.strip(), now
                )
            rules.check_review(
                user_id=user.id,
                customer_id=fresh.customer_id,
                status=fresh.status,
                already_reviewed=review is None,
            )
            assert review is not None
            wire = review.to_wire(_persons(people))
            expert = people.get(fresh.expert_id)
            if expert is not None:
                text = f'{user.name} rated "{fresh.title}" {stars} of 5.'
                await self.p.notices.add(
                    conn,
                    expert,
                    "review",
                    session_id,
                    session_id,
                    {"stars": stars, "text": text},
                    f"New review: {stars} of 5",
                    text + (f"\n\n{comment.strip()}" if comment.strip() else ""),
                    now,
                )
            return 201, {"review": wire}

        done = await run_once(self.p, key, now, work)
        if not done.replayed:
            self.p.notices.kick()
            # His rating changed, and so did his rank in matching.
            await self.p.bus.experts_changed([session.expert_id])
            await self.p.bus.publish(
                [session.expert_id], {"type": "review.new", "review": done.body["review"]}
            )
        return done


def _persons(users: dict[str, User]) -> dict[str, dict[str, Any]]:
    return {uid: u.person() for uid, u in users.items()}
