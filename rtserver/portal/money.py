"""Statements, the transaction record, payout profiles and payouts.

Every figure here is computed from ledger rows by :mod:`rtserver.core.ledger`:
a month's statement, a running balance, a payout's amount. A payout run is
one transaction per expert: the balance read, the ledger rows and the payout
row with its ``UNIQUE (expert, period)`` all commit together, so a retried or
concurrent run pays nobody twice.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

from rtserver.clock import from_ms, to_ms, to_wire
from rtserver.core import ledger as money
from rtserver.core.payout_profile import PayoutProfile, PayoutProfileBody
from rtserver.errors import Forbidden, InvalidField
from rtserver.notify import Transfer
from rtserver.portal.common import Done, Parts, run_once
from rtserver.storage.db import decode_cursor, encode_cursor
from rtserver.storage.idempotency import IdempotencyKey
from rtserver.storage.ledger import ACCOUNT_OF_ROLE
from rtserver.storage.sql import Conn
from rtserver.storage.users import User

log = logging.getLogger("rtserver.money")


def _account(user: User) -> str:
    account = ACCOUNT_OF_ROLE.get(user.role)
    if account is None:
        raise Forbidden("managers have no account of their own")
    return account


class Money:
    """The money views of the portal and payouts."""

    def __init__(self, parts: Parts) -> None:
        self.p = parts

    # -- statements ----------------------------------------------------------------

    async def statements(self, user: User, year: int | None) -> dict[str, Any]:
        """My Earnings and the Session Summary: one line per UTC month, newest first."""
        account = _account(user)
        own = await self.p.ledger.own(account, user.id)
        if account == money.EXPERT:
            fees = await self.p.ledger.fees_of_expert(user.id)
            claims_ms = await self.p.claims.created_times_against(user.id)
        else:
            fees = []
            claims_ms = await self.p.claims.created_times_by(user.id)
        sessions = await self.p.sessions.many([r.session_id for r in own if r.session_id])
        seconds = {sid: s.billing.billed_ms // 1000 for sid, s in sessions.items()}
        months = money.statements(account, own, fees, seconds, claims_ms)
        if year is not None:
            months = [m for m in months if m.month.startswith(f"{year:04d}-")]
        return {
            "currency": "USD",
            "balance_cents": sum(r.amount_cents for r in own),
            "months": [m.to_wire() for m in months],
        }

    # -- the transaction record ------------------------------------------------------

    async def transactions(self, user: User, cursor: str | None, limit: int) -> dict[str, Any]:
        """The user's rows newest first, each with the balance after it."""
        account = _account(user)
        before = decode_cursor(cursor, (int,))[0] if cursor else None
        page, top_balance = await self.p.ledger.page(account, user.id, before, limit + 1)
        more = len(page) > limit
        page = page[:limit]
        titles = await self._titles([r.session_id for r, _ in page])
        out: list[dict[str, Any]] = []
        balance = top_balance
        for r, memo in page:
            out.append(_transaction(r, memo, balance, titles))
            balance -= r.amount_cents
        return {
            "transactions": out,
            "next_cursor": encode_cursor(page[-1][0].id) if more and page else None,
        }

    async def transactions_csv(self, user: User) -> str:
        """Every row of the user's, newest first, as CSV with a header line."""
        account = _account(user)
        rows = await self.p.ledger.own(account, user.id)
        titles = await self._titles([r.session_id for r in rows])
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "at", "session_id", "session_title", "kind", "amount_usd", "balance_usd"])
        with_balance = money.running(rows)
        for r, balance in reversed(with_balance):
            w.writerow(
                [
                    r.id,
                    to_wire(from_ms(r.at_ms)),
                    r.session_id or "",
                    titles.get(r.session_id or "", ""),
                    r.kind,
                    _usd(r.amount_cents),
                    _usd(balance),
                ]
            )
        return buf.getvalue()

    async def _titles(self, session_ids: list[str | None]) -> dict[str, str]:
        found = await self.p.sessions.many([s for s in session_ids if s])
        return {sid: s.title for sid, s in found.items()}

    # -- the payout profile ----------------------------------------------------------

    async def profile(self, user: User) -> dict[str, Any]:
        """An expert's payout profile, account numbers masked."""
        if user.role != "expert":
            raise Forbidden("only experts have a payout profile")
        return {"profile": (await self.p.payouts.profile(user.id)).to_wire()}

    async def put_profile(self, user: User, body: PayoutProfileBody) -> dict[str, Any]:
        """Validate and store the parts given; the others are kept."""
        if user.role != "expert":
            raise Forbidden("only experts have a payout profile")
        if body.billing is None and body.address is None and body.tax is None:
            raise InvalidField("give billing, address or tax", "billing")
        current = await self.p.payouts.profile(user.id)
        updated = current.merged(body)
        await self.p.payouts.put_profile(user.id, updated, self.p.clock.now())
        return {"profile": updated.to_wire()}

    # -- payouts -------------------------------------------------------------------

    async def run(self, manager: User | None, period: str, key: IdempotencyKey | None) -> Done:
        """Pay every expert with a complete profile and a positive balance for ``period``.

        ``manager`` is None when the command line runs it. The period must have
        ended: paying a month still running would pay its first days twice.
        """
        try:
            end_ms = money.month_end_ms(period)
        except ValueError:
            raise InvalidField("month is written YYYY-MM", "month") from None
        now = self.p.clock.now()
        if to_ms(now) < end_ms:
            raise InvalidField(f"{period} has not ended yet", "month")

        async def work(conn: Conn) -> tuple[int, dict[str, Any]]:
            paid: list[dict[str, Any]] = []
            held: list[dict[str, Any]] = []
            experts = await self.p.payouts.experts_with_rows(conn)
            users = await self.p.users.many(experts)
            profiles = await self.p.payouts.profiles(experts)
            for expert_id in experts:
                if await self.p.payouts.paid_in(conn, expert_id, period):
                    continue
                await self.p.users.lock_in(conn, expert_id)
                at_end = await self.p.ledger.owed_through(conn, expert_id, end_ms)
                now_balance = await self.p.ledger.balance_in(conn, money.EXPERT, expert_id)
                amount = money.payout_amount(at_end, now_balance)
                if amount <= 0:
                    continue
                user = users.get(expert_id)
                person = user.person() if user else {"id": expert_id}
                profile = profiles.get(expert_id, PayoutProfile())
                if not profile.complete or user is None or user.suspended:
                    missing = profile.missing() if not profile.complete else ["account suspended"]
                    held.append({"expert": person, "balance_cents": amount, "missing": missing})
                    continue
                op = await self.p.ledger.append(
                    conn, None, now, money.payout(expert_id, amount, period)
                )
                payout = await self.p.payouts.insert(conn, expert_id, period, amount, op, now)
                assert payout is not None
                wire = payout.to_wire({expert_id: person})
                paid.append(wire)
                await self.p.notices.transfer(conn, _transfer(payout.id, profile, wire), now)
                text = f"We sent you {_usd(amount)} USD for {period}."
                await self.p.notices.add(
                    conn,
                    user,
                    "payout",
                    payout.id,
                    None,
                    {
                        "payout_id": payout.id,
                        "amount_cents": amount,
                        "period": period,
                        "text": text,
                    },
                    f"Payout for {period}: {_usd(amount)} USD",
                    text,
                    now,
                )
            await self.p.audit.add(
                conn,
                manager.id if manager else None,
                "payouts.run",
                "period",
                period,
                {
                    "paid": len(paid),
                    "held": len(held),
                    "total_cents": sum(p["amount_cents"] for p in paid),
                },
                now,
            )
            return 200, {"period": period, "payouts": paid, "held": held}

        done = await run_once(self.p, key, now, work)
        if not done.replayed:
            self.p.notices.kick()
            for wire in done.body["payouts"]:
                log.info(
                    "payout period=%s expert=%s amount=%d",
                    period,
                    wire["expert"]["id"],
                    wire["amount_cents"],
                )
                await self.p.bus.publish(
                    [wire["expert"]["id"]], {"type": "payout.sent", "payout": wire}
                )
        return done

    async def payouts_of(self, user: User) -> dict[str, Any]:
        """An expert's payouts."""
        if user.role != "expert":
            raise Forbidden("only experts are paid out")
        found = await self.p.payouts.of_expert(user.id)
        return {"payouts": [p.to_wire({user.id: user.person()}) for p in found]}

    async def payouts_all(self, period: str | None) -> dict[str, Any]:
        """Every payout (of a period), for managers."""
        if period is not None:
            try:
                money.parse_month(period)
            except ValueError:
                raise InvalidField("month is written YYYY-MM", "month") from None
        found = await self.p.payouts.of_period(period)
        people = await self.p.people([p.expert_id for p in found])
        return {"payouts": [p.to_wire(people) for p in found]}


def _transfer(payout_id: str, profile: PayoutProfile, wire: dict[str, Any]) -> Transfer:
    billing = profile.billing
    assert billing is not None
    return Transfer(
        payout_id=payout_id,
        expert_id=wire["expert"]["id"],
        period=wire["period"],
        amount_cents=wire["amount_cents"],
        currency="USD",
        holder_name=billing.holder_name,
        account_type=billing.account_type,
        iban=billing.iban,
        account_number=billing.account_number,
        routing_number=billing.routing_number,
    )


def _usd(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _transaction(r: money.Row, memo: str, balance: int, titles: dict[str, str]) -> dict[str, Any]:
    return {
        "id": r.id,
        "at": to_wire(from_ms(r.at_ms)),
        "op": r.op,
        "session_id": r.session_id,
        "session_title": titles.get(r.session_id or ""),
        "kind": r.kind,
        "amount_cents": r.amount_cents,
        "balance_cents": balance,
        "memo": memo,
    }
