"""The money rules: what rows each operation writes, and what the statements say.

Pure functions over integer cents, no I/O. Storage appends what these return
and hands stored rows back to :func:`statements` and :func:`running`, so that
every view of money (a session's receipt, a month's statement, the transaction
record, a payout) is computed from the same ledger rows by the same code.

Accounts and signs: ``customer`` rows are what the customer paid (negative) or
got back (positive); ``expert`` rows are what the platform owes the expert;
``platform`` rows are the platform's own revenue; ``payout`` rows are money
that left for an expert's bank. The rows of one operation sum to zero, so the
whole ledger does too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from rtserver.core.money import Charge
from rtserver.core.schedule import Fee

CUSTOMER = "customer"
EXPERT = "expert"
PLATFORM = "platform"
PAYOUT = "payout"

Outcome = Literal["refund", "deny", "no_fault"]
OUTCOMES: tuple[Outcome, ...] = ("refund", "deny", "no_fault")

# Kinds of the expert's rows, by the statement column they count in.
EARNING_KINDS = frozenset({"earning"})
REFUND_KINDS = frozenset({"refund_reversal"})
ADJUSTMENT_KINDS = frozenset({"cancellation_fee", "cancellation_compensation"})
PAYOUT_KINDS = frozenset({"payout"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One movement of money, as an operation asks for it."""

    account: str  # customer, expert, platform or payout
    user_id: str | None
    kind: str
    amount_cents: int
    memo: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One stored ledger row, as the statements read it."""

    id: int
    op: str
    session_id: str | None
    user_id: str | None
    account: str
    kind: str
    amount_cents: int
    at_ms: int


def balanced(entries: Iterable[Entry]) -> bool:
    """True if these rows sum to zero (every operation's must)."""
    return sum(e.amount_cents for e in entries) == 0


def session_charge(customer_id: str, expert_id: str, c: Charge) -> list[Entry]:
    """The end of a session: the customer pays, the platform keeps its fee, the expert earns."""
    return [
        Entry(CUSTOMER, customer_id, "charge", -c.charge_cents),
        Entry(PLATFORM, None, "platform_fee", c.platform_fee_cents),
        Entry(EXPERT, expert_id, "earning", c.expert_earnings_cents),
    ]


def cancellation(customer_id: str, expert_id: str, fee: Fee, reason: str) -> list[Entry]:
    """A no-show or late cancel: the charged side pays the fee, the other side gets
    it less the platform's part. No rows when nobody is charged."""
    if fee.charged_user_id is None or fee.compensated_user_id is None:
        return []

    def account(user_id: str) -> str:
        return EXPERT if user_id == expert_id else CUSTOMER

    return [
        Entry(
            account(fee.charged_user_id),
            fee.charged_user_id,
            "cancellation_fee",
            -fee.fee_cents,
            reason,
        ),
        Entry(
            account(fee.compensated_user_id),
            fee.compensated_user_id,
            "cancellation_compensation",
            fee.compensation_cents,
            reason,
        ),
        Entry(PLATFORM, None, "platform_fee", fee.platform_cents, reason),
    ]


def refund_decision(
    outcome: Outcome,
    customer_id: str,
    expert_id: str,
    charge_cents: int,
    platform_fee_cents: int,
    expert_earnings_cents: int,
) -> list[Entry]:
    """The rows of a manager's decision on a refund claim.

    - ``refund`` (no dispute, or the dispute rejected): the customer gets the
      charge back, taken from the expert's earning and the platform's fee.
    - ``no_fault`` (an outage, say): the customer gets the charge back and the
      platform bears all of it; the expert keeps his earning.
    - ``deny`` (the dispute accepted): nothing moves.
    """
    if charge_cents != platform_fee_cents + expert_earnings_cents:
        raise ValueError("a charge is its fee plus the earning")
    if outcome == "refund":
        return [
            Entry(CUSTOMER, customer_id, "refund", charge_cents),
            Entry(EXPERT, expert_id, "refund_reversal", -expert_earnings_cents),
            Entry(PLATFORM, None, "fee_reversal", -platform_fee_cents),
        ]
    if outcome == "no_fault":
        return [
            Entry(CUSTOMER, customer_id, "refund", charge_cents),
            Entry(PLATFORM, None, "no_fault_refund", -charge_cents),
        ]
    if outcome == "deny":
        return []
    raise ValueError(f"unknown outcome {outcome!r}")


def payout_amount(owed_through_period: int, balance_now: int) -> int:
    """What one payout pays: what is owed through its period, never more than now.

    ``owed_through_period`` is the expert's rows before the period's end less
    *every* payout made so far, whenever (a later period paid first already
    paid this period's money: counting only payouts before the end would pay
    it again, out of the month still running). The cap by the balance now
    matters when a refund after the period lowered what is owed. A negative
    balance pays nothing and is carried forward, netted from the next payout
    because it is part of the next balance.
    """
    return max(0, min(owed_through_period, balance_now))


def payout(expert_id: str, amount_cents: int, period: str) -> list[Entry]:
    """A transfer to the expert's bank: his balance down, the payout account up."""
    if amount_cents <= 0:
        raise ValueError("a payout is positive")
    return [
        Entry(EXPERT, expert_id, "payout", -amount_cents, period),
        Entry(PAYOUT, expert_id, "payout_transfer", amount_cents, period),
    ]


# -- periods ---------------------------------------------------------------------


_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


def month_of(at_ms: int) -> str:
    """``YYYY-MM`` of a time in UTC."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m")


def parse_month(month: str) -> tuple[int, int]:
    """``(year, month)`` from ``YYYY-MM``; ValueError otherwise."""
    # ASCII digits only: int() also reads fullwidth digits and "+1", which would make
    # one month two periods (and pay it twice).
    if _MONTH.fullmatch(month) is None:
        raise ValueError("a month is written YYYY-MM")
    year, mon = int(month[:4]), int(month[5:])
    if not 1 <= mon <= 12 or year < 1970:
        raise ValueError("a month is written YYYY-MM")
    return year, mon


def month_end_ms(month: str) -> int:
    """The first millisecond after ``month`` (UTC): rows before it belong to it or earlier."""
    year, mon = parse_month(month)
    nxt = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return int(nxt.timestamp()) * 1000


# -- statements --------------------------------------------------------------------


@dataclass(slots=True)
class Month:
    """One month of one user's statement (My Earnings and Session Summary)."""

    month: str
    sessions: int = 0
    billable_seconds: int = 0
    gross_cents: int = 0
    platform_fees_cents: int = 0
    refunds_cents: int = 0
    adjustments_cents: int = 0
    net_cents: int = 0
    payouts_cents: int = 0
    refund_claims: int = 0
    refunded_sessions: int = 0
    _sessions: set[str] = field(default_factory=set, repr=False)

    def to_wire(self) -> dict[str, int | str]:
        """The month as the API answers it."""
        return {
            "month": self.month,
            "sessions": self.sessions,
            "billable_seconds": self.billable_seconds,
            "gross_cents": self.gross_cents,
            "platform_fees_cents": self.platform_fees_cents,
            "refunds_cents": self.refunds_cents,
            "adjustments_cents": self.adjustments_cents,
            "net_cents": self.net_cents,
            "payouts_cents": self.payouts_cents,
            "refund_claims": self.refund_claims,
            "refunded_sessions": self.refunded_sessions,
        }


def statements(
    account: str,
    own: Sequence[Row],
    fees: Sequence[Row] = (),
    billable_seconds: dict[str, int] | None = None,
    claims_ms: Sequence[int] = (),
) -> list[Month]:
    """A user's months, newest first, from his own rows.

    ``own`` are the user's rows (``account`` is ``expert`` or ``customer``);
    ``fees`` are the platform's rows on the expert's charges (``platform_fee``
    and ``fee_reversal`` of his sessions), so that gross is earning plus fee;
    ``billable_seconds`` maps session ids to their billable time; ``claims_ms``
    are the times refund claims on his sessions were made.

    The identity every month keeps: ``net = gross + fees + refunds +
    adjustments`` is the sum of the month's own rows but payouts, and
    ``payouts`` is the sum of its payout rows.
    """
    months: dict[str, Month] = {}
    seconds = billable_seconds or {}

    def m(at_ms: int) -> Month:
        key = month_of(at_ms)
        got = months.get(key)
        if got is None:
            got = months[key] = Month(key)
        return got

    charge_kind = "earning" if account == EXPERT else "charge"
    for r in own:
        month = m(r.at_ms)
        if r.kind in PAYOUT_KINDS:
            month.payouts_cents += r.amount_cents
            continue
        month.net_cents += r.amount_cents
        if r.kind == charge_kind:
            month.gross_cents += r.amount_cents
            if r.session_id is not None and r.session_id not in month._sessions:
                month._sessions.add(r.session_id)
                month.sessions += 1
                month.billable_seconds += seconds.get(r.session_id, 0)
        elif r.kind in ("refund_reversal", "refund"):
            month.refunds_cents += r.amount_cents
            month.refunded_sessions += 1
        else:
            month.adjustments_cents += r.amount_cents
    for r in fees:
        # The platform's part of his charges: gross counts it in, fees take it out.
        month = m(r.at_ms)
        if r.kind == "platform_fee":
            month.gross_cents += r.amount_cents
            month.platform_fees_cents -= r.amount_cents
        elif r.kind == "fee_reversal":
            month.refunds_cents += r.amount_cents
            month.platform_fees_cents -= r.amount_cents
    for at_ms in claims_ms:
        m(at_ms).refund_claims += 1
    return sorted(months.values(), key=lambda x: x.month, reverse=True)


def running(rows_oldest_first: Iterable[Row], opening_cents: int = 0) -> list[tuple[Row, int]]:
    """Each row with the balance after it (the Transaction Record)."""
    out: list[tuple[Row, int]] = []
    balance = opening_cents
    for r in rows_oldest_first:
        balance += r.amount_cents
        out.append((r, balance))
    return out
