"""Accounts: public expert profiles, phone numbers, and what managers do to accounts.

Every manager action (verification, suspension, restoring) is written to the
audit log in the transaction that does it, so the log cannot miss one.
"""

from __future__ import annotations

import logging
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core.phone import normalize_phone
from rtserver.errors import Forbidden, InvalidState, NotFound
from rtserver.hub.service import Hub
from rtserver.portal.common import Parts
from rtserver.storage.audit import audit_wire
from rtserver.storage.db import decode_cursor, encode_cursor
from rtserver.storage.users import User

log = logging.getLogger("rtserver.accounts")

VERIFICATION = ("pending", "verified", "rejected")


def _manager(user: User) -> None:
    if user.role != "manager":
        raise Forbidden("only community managers do this")


def user_row(user: User, verification: str | None) -> dict[str, Any]:
    """An account as the manager console lists it."""
    return {
        **user.public(),
        "status": user.status,
        "verification_status": verification,
        "created_at": to_wire(from_ms(user.created_at_ms)),
    }


class Accounts:
    """Profiles, phones, verification, suspension and the audit log."""

    def __init__(self, parts: Parts, hub: Hub) -> None:
        self.p = parts
        self.hub = hub

    # -- public profiles -------------------------------------------------------------

    async def expert(self, expert_id: str, viewer: User | None = None) -> dict[str, Any]:
        """An expert's public profile (managers see suspended ones too)."""
        user = await self.p.users.by_id(expert_id)
        profile = await self.p.users.profile(expert_id) if user else None
        if user is None or profile is None or user.role != "expert":
            raise NotFound("no such expert")
        if user.suspended and (viewer is None or viewer.role != "manager"):
            raise NotFound("no such expert")
        return {"expert": profile.public_wire(user)}

    async def experts(self, skill: str | None, language: str | None) -> dict[str, Any]:
        """Public experts, verified and best rated first."""
        found = await self.p.users.experts(skill, language)
        return {"experts": [p.public_wire(u) for u, p in found]}

    async def reviews(self, expert_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
        """An expert's reviews, newest first."""
        await self.expert(expert_id)
        before = None
        if cursor:
            ms, sid = decode_cursor(cursor, (int, str))
            before = (ms, sid)
        found = await self.p.claims.reviews_page(expert_id, before, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        people = await self.p.people([r.customer_id for r in found])
        last = found[-1] if found else None
        return {
            "reviews": [r.to_wire(people) for r in found],
            "next_cursor": encode_cursor(to_ms(last.created_at), last.session_id)
            if more and last
            else None,
        }

    # -- the user's own ----------------------------------------------------------------

    async def set_phone(self, user: User, raw: str | None) -> dict[str, Any]:
        """Add, change or remove the user's phone number (E.164)."""
        phone = normalize_phone(raw) if raw is not None and raw.strip() else None
        await self.p.users.set_phone(user.id, phone)
        return {"user": {**user.public(), "status": user.status, "phone": phone}}

    # -- managers ------------------------------------------------------------------------

    async def set_verification(
        self, manager: User, expert_id: str, status: str, note: str
    ) -> dict[str, Any]:
        """Verify, reject or reset an expert; the expert is told."""
        _manager(manager)
        expert = await self.p.users.by_id(expert_id)
        if expert is None or expert.role != "expert":
            raise NotFound("no such expert")
        now = self.p.clock.now()
        text = f"Your verification status is now {status}."
        async with self.p.db.transaction() as conn:
            await self.p.users.set_verification(conn, expert_id, status)
            await self.p.audit.add(
                conn,
                manager.id,
                "expert.verification",
                "user",
                expert_id,
                {"status": status, "note": note},
                now,
            )
            await self.p.notices.add(
                conn,
                expert,
                "verification",
                f"{status}|{now.isoformat()}",
                None,
                {"verification_status": status, "text": text},
                f"Verification: {status}",
                text + (f"\n\n{note}" if note else ""),
                now,
            )
        # Matching reads the verification (the tier, and rejected experts get no offers).
        await self.p.bus.experts_changed([expert_id])
        self.p.notices.kick()
        log.info("verification expert=%s status=%s by=%s", expert_id, status, manager.id)
        await self.p.bus.publish(
            [expert_id], {"type": "verification.update", "verification_status": status}
        )
        return await self.expert(expert_id, manager)

    async def set_status(
        self, manager: User, user_id: str, status: str, reason: str
    ) -> dict[str, Any]:
        """Suspend or restore an account."""
        _manager(manager)
        if user_id == manager.id:
            raise InvalidState("a manager cannot suspend or restore himself")
        target = await self.p.users.by_id(user_id)
        if target is None:
            raise NotFound("no such user")
        now = self.p.clock.now()
        async with self.p.db.transaction() as conn:
            changed = await self.p.users.set_status(conn, user_id, status)
            if changed:
                action = "user.suspend" if status == "suspended" else "user.restore"
                await self.p.audit.add(
                    conn, manager.id, action, "user", user_id, {"reason": reason}, now
                )
        if changed:
            # Suspended experts get no offers; restored ones get them again.
            await self.p.bus.experts_changed([user_id])
        fresh = await self.p.users.by_id(user_id)
        assert fresh is not None
        if changed and status == "suspended":
            await self.hub.account_suspended(fresh)
        log.info("account status user=%s status=%s by=%s", user_id, status, manager.id)
        profile = await self.p.users.profile(user_id)
        return {"user": user_row(fresh, profile.verification_status if profile else None)}

    async def users(
        self,
        manager: User,
        role: str | None,
        status: str | None,
        q: str | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """Accounts for the console, newest first."""
        _manager(manager)
        after = None
        if cursor:
            ms, uid = decode_cursor(cursor, (int, str))
            after = (ms, uid)
        found = await self.p.users.page(role, status, q, after, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        last = found[-1][0] if found else None
        return {
            "users": [user_row(u, vs) for u, vs in found],
            "next_cursor": encode_cursor(last.created_at_ms, last.id) if more and last else None,
        }

    async def audit(self, manager: User, cursor: str | None, limit: int) -> dict[str, Any]:
        """The audit log, newest first."""
        _manager(manager)
        before = decode_cursor(cursor, (int,))[0] if cursor else None
        rows = await self.p.audit.page(before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        people = await self.p.people([r["manager_id"] or "" for r in rows])
        return {
            "entries": [audit_wire(r, people) for r in rows],
            "next_cursor": encode_cursor(rows[-1]["id"]) if more and rows else None,
        }
