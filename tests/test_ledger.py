"""The pure money rules of core/ledger.py: the rows of each operation, periods, statements.

Every test pushes plain values in and reads plain values out: no database, no
server. Rows are built by hand (or from what the core functions return) the
way storage/ledger.py stores them: one ``op`` id per operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtserver.core.ledger import (
    CUSTOMER,
    EXPERT,
    OUTCOMES,
    PAYOUT,
    PLATFORM,
    Entry,
    Month,
    Outcome,
    Row,
    balanced,
    cancellation,
    month_end_ms,
    month_of,
    parse_month,
    payout,
    payout_amount,
    refund_decision,
    running,
    session_charge,
    statements,
)
from rtserver.core.money import Charge, charge
from rtserver.core.schedule import NO_FEE, Fee, cancel_fee, no_show_fee

# No example database on disk, and no per-example deadline (no timing in tests).
PURE = settings(database=None, deadline=None)

CUST = "u_customer"
CUST2 = "u_customer2"
EXP = "u_expert"


def ms(year: int, month: int, day: int = 1, hour: int = 0, minute: int = 0) -> int:
    """A UTC time in milliseconds."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 1000


class Book:
    """A hand-made ledger: what storage does, in memory (ids in order, one op per call)."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.ops = 0

    def add(self, session_id: str | None, at_ms: int, entries: Sequence[Entry]) -> str:
        assert balanced(entries)
        self.ops += 1
        op = f"op{self.ops}"
        for e in entries:
            self.rows.append(
                Row(
                    len(self.rows) + 1,
                    op,
                    session_id,
                    e.user_id,
                    e.account,
                    e.kind,
                    e.amount_cents,
                    at_ms,
                )
            )
        return op

    def own(self, account: str, user_id: str) -> list[Row]:
        return [r for r in self.rows if r.account == account and r.user_id == user_id]

    def fees_of_expert(self, expert_id: str) -> list[Row]:
        """Mirror of ``Ledger.fees_of_expert``: the platform's rows of his charge/refund ops."""
        ops = {
            r.op
            for r in self.rows
            if r.account == EXPERT
            and r.user_id == expert_id
            and r.kind in ("earning", "refund_reversal")
        }
        return [
            r
            for r in self.rows
            if r.account == PLATFORM and r.kind in ("platform_fee", "fee_reversal") and r.op in ops
        ]

    def balance(self, account: str, user_id: str) -> int:
        """Mirror of ``Ledger.balance_in``: the balance now."""
        return sum(r.amount_cents for r in self.own(account, user_id))

    def owed_through(self, expert_id: str, month: str) -> int:
        """Mirror of ``Ledger.owed_through``: his rows before the month's end, less every
        payout made so far, whenever it was made."""
        end_ms = month_end_ms(month)
        return sum(
            r.amount_cents
            for r in self.own(EXPERT, expert_id)
            if r.at_ms < end_ms or r.kind == "payout"
        )

    def pay(self, expert_id: str, month: str, at_ms: int) -> int:
        """What ``Money.run`` pays him for ``month`` at ``at_ms`` (profile complete)."""
        assert month_end_ms(month) <= at_ms, "only an ended month is paid"
        amount = payout_amount(self.owed_through(expert_id, month), self.balance(EXPERT, expert_id))
        if amount > 0:
            self.add(None, at_ms, payout(expert_id, amount, month))
        return amount


def by_kind(entries: Iterable[Entry]) -> dict[tuple[str, str | None, str], int]:
    return {(e.account, e.user_id, e.kind): e.amount_cents for e in entries}


# -- session_charge ---------------------------------------------------------------------


def test_session_charge_rows_exactly() -> None:
    c = Charge(1800, 10, 1000, 200, 800)
    entries = session_charge(CUST, EXP, c)
    assert entries == [
        Entry(CUSTOMER, CUST, "charge", -1000),
        Entry(PLATFORM, None, "platform_fee", 200),
        Entry(EXPERT, EXP, "earning", 800),
    ]
    assert balanced(entries)


@PURE
@given(
    rate=st.integers(0, 100_000),
    seconds=st.integers(0, 4 * 3600),
    discount=st.integers(0, 100),
    fee_pct=st.integers(0, 100),
)
def test_session_charge_sums_to_zero(rate: int, seconds: int, discount: int, fee_pct: int) -> None:
    c = charge(rate, seconds, discount, fee_pct)
    entries = session_charge(CUST, EXP, c)
    assert sum(e.amount_cents for e in entries) == 0
    assert balanced(entries)
    got = by_kind(entries)
    assert got[(CUSTOMER, CUST, "charge")] == -c.charge_cents
    assert got[(PLATFORM, None, "platform_fee")] == c.platform_fee_cents
    assert got[(EXPERT, EXP, "earning")] == c.expert_earnings_cents


def test_balanced() -> None:
    assert balanced([])
    assert balanced([Entry(CUSTOMER, CUST, "x", 5), Entry(PLATFORM, None, "y", -5)])
    assert not balanced([Entry(CUSTOMER, CUST, "x", 5), Entry(PLATFORM, None, "y", -4)])


# -- cancellation -----------------------------------------------------------------------


def test_a_customer_no_show_rows_exactly() -> None:
    fee = no_show_fee(
        CUST, EXP, customer_joined=False, expert_joined=True, fee_cents=500, platform_fee_pct=20
    )
    assert cancellation(CUST, EXP, fee, "no_show") == [
        Entry(CUSTOMER, CUST, "cancellation_fee", -500, "no_show"),
        Entry(EXPERT, EXP, "cancellation_compensation", 400, "no_show"),
        Entry(PLATFORM, None, "platform_fee", 100, "no_show"),
    ]


def test_an_expert_late_cancel_rows_exactly() -> None:
    start = datetime(2030, 1, 2, 12, tzinfo=UTC)
    fee = cancel_fee(EXP, CUST, datetime(2030, 1, 2, 11, tzinfo=UTC), start, 86_400, 333, 15)
    assert fee == Fee(EXP, 333, CUST, 283, 50)  # 15% of 333 is 49.95: 50
    assert cancellation(CUST, EXP, fee, "cancelled") == [
        Entry(EXPERT, EXP, "cancellation_fee", -333, "cancelled"),
        Entry(CUSTOMER, CUST, "cancellation_compensation", 283, "cancelled"),
        Entry(PLATFORM, None, "platform_fee", 50, "cancelled"),
    ]


def test_no_fee_writes_no_rows() -> None:
    assert cancellation(CUST, EXP, NO_FEE, "no_show") == []
    both_absent = no_show_fee(CUST, EXP, False, False, 500, 20)
    assert cancellation(CUST, EXP, both_absent, "no_show") == []
    early = cancel_fee(
        CUST, EXP, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 3, tzinfo=UTC), 3600, 500, 20
    )
    assert cancellation(CUST, EXP, early, "cancelled") == []


@PURE
@given(
    customer_joined=st.booleans(),
    expert_joined=st.booleans(),
    fee_cents=st.integers(0, 100_000),
    fee_pct=st.integers(0, 100),
)
def test_every_no_show_sums_to_zero_and_the_absent_side_pays(
    customer_joined: bool, expert_joined: bool, fee_cents: int, fee_pct: int
) -> None:
    fee = no_show_fee(CUST, EXP, customer_joined, expert_joined, fee_cents, fee_pct)
    entries = cancellation(CUST, EXP, fee, "no_show")
    assert balanced(entries)
    if customer_joined == expert_joined:
        assert entries == []
        return
    absent = (EXPERT, EXP) if customer_joined else (CUSTOMER, CUST)
    present = (CUSTOMER, CUST) if customer_joined else (EXPERT, EXP)
    got = by_kind(entries)
    assert got[(*absent, "cancellation_fee")] == -fee_cents
    assert got[(*present, "cancellation_compensation")] == fee.compensation_cents
    assert got[(PLATFORM, None, "platform_fee")] == fee.platform_cents
    assert 0 <= fee.platform_cents <= fee_cents


# -- refund_decision --------------------------------------------------------------------


def test_refund_rows_exactly() -> None:
    assert refund_decision("refund", CUST, EXP, 1000, 200, 800) == [
        Entry(CUSTOMER, CUST, "refund", 1000),
        Entry(EXPERT, EXP, "refund_reversal", -800),
        Entry(PLATFORM, None, "fee_reversal", -200),
    ]


def test_no_fault_rows_exactly_and_the_expert_keeps_his_earning() -> None:
    entries = refund_decision("no_fault", CUST, EXP, 1000, 200, 800)
    assert entries == [
        Entry(CUSTOMER, CUST, "refund", 1000),
        Entry(PLATFORM, None, "no_fault_refund", -1000),
    ]
    assert all(e.account != EXPERT for e in entries)


def test_deny_moves_nothing() -> None:
    assert refund_decision("deny", CUST, EXP, 1000, 200, 800) == []


@PURE
@given(
    rate=st.integers(0, 100_000),
    seconds=st.integers(0, 4 * 3600),
    discount=st.integers(0, 100),
    fee_pct=st.integers(0, 100),
    outcome=st.sampled_from(OUTCOMES),
)
def test_every_decision_sums_to_zero_and_undoes_the_charge_for_the_customer(
    rate: int, seconds: int, discount: int, fee_pct: int, outcome: Outcome
) -> None:
    c = charge(rate, seconds, discount, fee_pct)
    entries = refund_decision(
        outcome,
        CUST,
        EXP,
        c.charge_cents,
        c.platform_fee_cents,
        c.expert_earnings_cents,
    )
    assert balanced(entries)
    both = session_charge(CUST, EXP, c) + entries
    customer = sum(e.amount_cents for e in both if e.account == CUSTOMER)
    expert = sum(e.amount_cents for e in both if e.account == EXPERT)
    platform = sum(e.amount_cents for e in both if e.account == PLATFORM)
    if outcome == "refund":
        assert (customer, expert, platform) == (0, 0, 0)
    elif outcome == "no_fault":
        kept = c.expert_earnings_cents
        assert (customer, expert, platform) == (0, kept, -kept)
    else:
        assert (customer, expert, platform) == (
            -c.charge_cents,
            c.expert_earnings_cents,
            c.platform_fee_cents,
        )


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize(("c", "f", "e"), [(1000, 200, 700), (1000, 300, 800), (0, 1, 0)])
def test_refund_decision_refuses_an_inconsistent_charge(
    outcome: Outcome, c: int, f: int, e: int
) -> None:
    with pytest.raises(ValueError, match="fee plus the earning"):
        refund_decision(outcome, CUST, EXP, c, f, e)


def test_refund_decision_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        refund_decision("maybe", CUST, EXP, 1000, 200, 800)  # type: ignore[arg-type]


# -- payouts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at_end", "now", "expected"),
    [
        (5000, 5000, 5000),  # nothing moved since: the period's balance
        (5000, 9000, 5000),  # earned more since: only the period is paid
        (5000, 3000, 3000),  # a refund (or a later payout) since: capped by now
        (5000, 0, 0),  # paid already by a later period
        (5000, -200, 0),  # negative now: nothing
        (-700, 4000, 0),  # negative at the end of the period: carried, nothing paid
        (-700, -700, 0),
        (0, 0, 0),
        (1, 1, 1),
    ],
)
def test_payout_amount(at_end: int, now: int, expected: int) -> None:
    assert payout_amount(at_end, now) == expected


@PURE
@given(at_end=st.integers(-(10**9), 10**9), now=st.integers(-(10**9), 10**9))
def test_payout_amount_is_never_negative_nor_above_either_balance(at_end: int, now: int) -> None:
    amount = payout_amount(at_end, now)
    assert amount >= 0
    if amount > 0:
        assert amount <= at_end
        assert amount <= now
        assert amount in (at_end, now)


def test_payout_rows_exactly() -> None:
    entries = payout(EXP, 1234, "2024-01")
    assert entries == [
        Entry(EXPERT, EXP, "payout", -1234, "2024-01"),
        Entry(PAYOUT, EXP, "payout_transfer", 1234, "2024-01"),
    ]
    assert balanced(entries)


@pytest.mark.parametrize("amount", [0, -1, -5000])
def test_payout_refuses_nothing_or_less(amount: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        payout(EXP, amount, "2024-01")


def test_a_negative_balance_is_carried_and_netted_from_the_next_payout() -> None:
    """Docs, money rules: a refund after a payout is netted from the next payout."""
    book = Book()
    c = Charge(900, 0, 1000, 200, 800)
    book.add("s1", ms(2024, 1, 10), session_charge(CUST, EXP, c))
    # January is paid on February 1st.
    assert book.pay(EXP, "2024-01", ms(2024, 2, 1, 9)) == 800
    # The January session is refunded in February: the expert owes 800.
    book.add("s1", ms(2024, 2, 3), refund_decision("refund", CUST, EXP, 1000, 200, 800))
    assert book.balance(EXPERT, EXP) == -800
    # He earns 500 in February: the February run pays nothing, the debt is carried.
    book.add("s2", ms(2024, 2, 10), session_charge(CUST, EXP, Charge(900, 0, 625, 125, 500)))
    assert book.owed_through(EXP, "2024-02") == -300
    assert book.pay(EXP, "2024-02", ms(2024, 3, 1)) == 0
    # He earns 1000 in March: March pays what is left after the debt.
    book.add("s3", ms(2024, 3, 10), session_charge(CUST, EXP, Charge(900, 0, 1250, 250, 1000)))
    assert book.pay(EXP, "2024-03", ms(2024, 4, 1)) == 700
    assert book.balance(EXPERT, EXP) == 0
    assert sum(r.amount_cents for r in book.rows) == 0


def test_periods_paid_out_of_order_never_pay_the_month_still_running() -> None:
    """Regression (561a473): a later period paid first already paid this period's money.

    January earns 100, February 50, March (so far) 30. On March 10 a manager
    runs February (150: everything up to the end of February), then January:
    January owes nothing any more. Counting only the rows before January's end
    (balance 100, capped by 30 now) paid 30 cents earned in March, a month still
    running. Then April pays March's 30, and the totals are right.
    """
    book = Book()
    book.add("s1", ms(2024, 1, 15), session_charge(CUST, EXP, Charge(900, 0, 125, 25, 100)))
    book.add("s2", ms(2024, 2, 15), session_charge(CUST, EXP, Charge(900, 0, 62, 12, 50)))
    book.add("s3", ms(2024, 3, 5), session_charge(CUST, EXP, Charge(900, 0, 37, 7, 30)))
    now = ms(2024, 3, 10)

    assert book.pay(EXP, "2024-02", now) == 150
    assert book.owed_through(EXP, "2024-01") == -50
    assert book.pay(EXP, "2024-01", now) == 0
    # Even without the once-per-period guard, February again would pay nothing more.
    assert book.pay(EXP, "2024-02", now) == 0
    assert book.balance(EXPERT, EXP) == 30
    assert book.pay(EXP, "2024-03", ms(2024, 4, 1)) == 30
    assert book.balance(EXPERT, EXP) == 0


def test_a_late_period_pays_only_through_its_end() -> None:
    """January and February both unpaid, run in April: January pays January only,
    February pays February only, and March's money waits for March's run."""
    book = Book()
    book.add("s1", ms(2024, 1, 15), session_charge(CUST, EXP, Charge(900, 0, 125, 25, 100)))
    book.add("s2", ms(2024, 2, 15), session_charge(CUST, EXP, Charge(900, 0, 62, 12, 50)))
    book.add("s3", ms(2024, 3, 5), session_charge(CUST, EXP, Charge(900, 0, 37, 7, 30)))
    now = ms(2024, 4, 2)
    assert book.pay(EXP, "2024-01", now) == 100
    assert book.pay(EXP, "2024-02", now) == 50
    assert book.pay(EXP, "2024-03", now) == 30
    # A refund of the January session after it was paid: the debt is carried.
    book.add("s1", ms(2024, 4, 3), refund_decision("refund", CUST, EXP, 125, 25, 100))
    assert book.balance(EXPERT, EXP) == -100
    assert book.pay(EXP, "2024-04", ms(2024, 5, 1)) == 0


# -- periods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at_ms", "expected"),
    [
        (0, "1970-01"),
        (ms(2024, 1, 1), "2024-01"),
        (ms(2024, 1, 1) - 1, "2023-12"),  # the last millisecond of December
        (ms(2024, 2, 29, 23, 59), "2024-02"),  # leap day
        (ms(2024, 3, 1) - 1, "2024-02"),
        (ms(2024, 12, 31, 23, 59), "2024-12"),
        (ms(2030, 6, 15, 12), "2030-06"),
    ],
)
def test_month_of(at_ms: int, expected: str) -> None:
    assert month_of(at_ms) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01", (2024, 1)),
        ("2024-12", (2024, 12)),
        ("1970-01", (1970, 1)),
        ("9999-12", (9999, 12)),
    ],
)
def test_parse_month_good(text: str, expected: tuple[int, int]) -> None:
    assert parse_month(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024",
        "2024-1",
        "24-01",
        "2024-001",
        "02024-01",
        "2024-13",
        "2024-00",
        "1969-12",
        "2024/01",
        "2024-01-01",
        "abcd-ef",
        "2024-1a",
        "-2024-01",
        "2024--1",
        "2024-01\n",
    ],
)
def test_parse_month_refuses_a_bad_string(text: str) -> None:
    with pytest.raises(ValueError):
        parse_month(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-+1",  # a sign
        "2024- 1",  # a space
        "2024-1 ",
        "2024-\t1",
        "\uff12\uff10\uff12\uff14-\uff10\uff11",  # fullwidth digits: passes the API's ^\d{4}-\d{2}$
        "\u0662\u0660\u0662\u0664-\u0660\u0661",  # Arabic-Indic digits: passes it too
    ],
)
def test_parse_month_refuses_anything_but_ascii_yyyy_mm(text: str) -> None:
    """Regression (561a473): int() of each part allowed signs, whitespace and any
    Unicode digits, so these all parsed as 2024-01.

    Payouts are once per (expert, period) *string*: a run for one of these
    spellings was a new period to ``paid_in`` and to ``UNIQUE (expert, period)``,
    so January could be "paid" again under another name.
    """
    with pytest.raises(ValueError):
        parse_month(text)


@pytest.mark.parametrize(
    ("month", "expected"),
    [
        ("2024-01", ms(2024, 2, 1)),
        ("2024-02", ms(2024, 3, 1)),  # leap year
        ("2023-02", ms(2023, 3, 1)),
        ("2024-11", ms(2024, 12, 1)),
        ("2024-12", ms(2025, 1, 1)),  # December rolls to January of the next year
        ("1970-01", ms(1970, 2, 1)),
    ],
)
def test_month_end_ms(month: str, expected: int) -> None:
    assert month_end_ms(month) == expected
    assert month_of(expected - 1) == month
    assert month_of(expected) != month


def test_month_end_ms_refuses_a_bad_month() -> None:
    with pytest.raises(ValueError):
        month_end_ms("2024-13")


@PURE
@given(at_ms=st.integers(0, ms(2200, 1, 1)))
def test_month_of_and_month_end_agree(at_ms: int) -> None:
    month = month_of(at_ms)
    assert parse_month(month)
    end = month_end_ms(month)
    assert at_ms < end
    assert month_of(end - 1) == month
    assert month_of(end) > month


# -- statements -------------------------------------------------------------------------

BILLABLE = {"s1": 1800, "s2": 3600, "s3": 0, "s4": 2700}


def sample_book() -> Book:
    """Two months of an expert with two customers, each kind of operation once.

    January: s1 (c1) and s2 (c2) charged. February: s1 refunded, c1 misses
    the scheduled s3 (a no-show fee), January paid out, s2 refunded without
    fault, s4 (c1) charged.
    """
    book = Book()
    book.add("s1", ms(2024, 1, 10), session_charge(CUST, EXP, Charge(1800, 0, 1000, 200, 800)))
    book.add("s2", ms(2024, 1, 20), session_charge(CUST2, EXP, Charge(3600, 0, 3000, 600, 2400)))
    book.add("s1", ms(2024, 2, 2), refund_decision("refund", CUST, EXP, 1000, 200, 800))
    book.add(None, ms(2024, 2, 3), payout(EXP, 3200, "2024-01"))
    # The customer does not join s3: he pays 500, the expert gets 400, the platform 100.
    fee = no_show_fee(CUST, EXP, False, True, 500, 20)
    book.add("s3", ms(2024, 2, 5), cancellation(CUST, EXP, fee, "no_show"))
    book.add("s2", ms(2024, 2, 10), refund_decision("no_fault", CUST2, EXP, 3000, 600, 2400))
    book.add("s4", ms(2024, 2, 12), session_charge(CUST, EXP, Charge(2700, 0, 1500, 300, 1200)))
    return book


def wire(months: list[Month]) -> list[dict[str, int | str]]:
    return [m.to_wire() for m in months]


def test_the_sample_ledger_balances() -> None:
    book = sample_book()
    assert sum(r.amount_cents for r in book.rows) == 0
    for op in {r.op for r in book.rows}:
        assert sum(r.amount_cents for r in book.rows if r.op == op) == 0


def test_fees_of_the_expert_are_his_charges_and_refunds_only() -> None:
    book = sample_book()
    fees = book.fees_of_expert(EXP)
    # s1, s2, s4 fees and s1's reversal; not the no-show's cut, not the no-fault refund.
    assert [(r.session_id, r.kind, r.amount_cents) for r in fees] == [
        ("s1", "platform_fee", 200),
        ("s2", "platform_fee", 600),
        ("s1", "fee_reversal", -200),
        ("s4", "platform_fee", 300),
    ]


def test_statements_of_an_expert() -> None:
    book = sample_book()
    claims = [ms(2024, 1, 25), ms(2024, 2, 1)]
    months = statements(EXPERT, book.own(EXPERT, EXP), book.fees_of_expert(EXP), BILLABLE, claims)
    assert wire(months) == [
        {
            "month": "2024-02",
            "sessions": 1,
            "billable_seconds": 2700,
            "gross_cents": 1500,
            "platform_fees_cents": -100,  # s4's 300 less s1's reversed 200
            "refunds_cents": -1000,  # s1's earning and fee taken back
            "adjustments_cents": 400,
            "net_cents": 800,
            "payouts_cents": -3200,
            "refund_claims": 1,
            "refunded_sessions": 1,  # s2's no-fault refund is not his
        },
        {
            "month": "2024-01",
            "sessions": 2,
            "billable_seconds": 5400,
            "gross_cents": 4000,
            "platform_fees_cents": -800,
            "refunds_cents": 0,
            "adjustments_cents": 0,
            "net_cents": 3200,
            "payouts_cents": 0,
            "refund_claims": 1,
            "refunded_sessions": 0,
        },
    ]


def test_statements_of_customers() -> None:
    book = sample_book()
    c1 = statements(CUSTOMER, book.own(CUSTOMER, CUST), (), BILLABLE, [ms(2024, 1, 25)])
    assert wire(c1) == [
        {
            "month": "2024-02",
            "sessions": 1,
            "billable_seconds": 2700,
            "gross_cents": -1500,
            "platform_fees_cents": 0,
            "refunds_cents": 1000,
            "adjustments_cents": -500,
            "net_cents": -1000,
            "payouts_cents": 0,
            "refund_claims": 0,
            "refunded_sessions": 1,
        },
        {
            "month": "2024-01",
            "sessions": 1,
            "billable_seconds": 1800,
            "gross_cents": -1000,
            "platform_fees_cents": 0,
            "refunds_cents": 0,
            "adjustments_cents": 0,
            "net_cents": -1000,
            "payouts_cents": 0,
            "refund_claims": 1,
            "refunded_sessions": 0,
        },
    ]
    c2 = statements(CUSTOMER, book.own(CUSTOMER, CUST2), (), BILLABLE, [ms(2024, 2, 1)])
    assert [(m.month, m.sessions, m.gross_cents, m.refunds_cents, m.net_cents) for m in c2] == [
        ("2024-02", 0, 0, 3000, 3000),
        ("2024-01", 1, -3000, 0, -3000),
    ]
    assert [(m.refund_claims, m.refunded_sessions, m.billable_seconds) for m in c2] == [
        (1, 1, 0),
        (0, 0, 3600),
    ]


def test_statement_identity_on_the_sample() -> None:
    book = sample_book()
    for account, user, fees in (
        (EXPERT, EXP, book.fees_of_expert(EXP)),
        (CUSTOMER, CUST, []),
        (CUSTOMER, CUST2, []),
    ):
        own = book.own(account, user)
        for m in statements(account, own, fees, BILLABLE):
            in_month = [r for r in own if month_of(r.at_ms) == m.month]
            assert m.net_cents == (
                m.gross_cents + m.platform_fees_cents + m.refunds_cents + m.adjustments_cents
            )
            assert m.net_cents == sum(r.amount_cents for r in in_month if r.kind != "payout")
            assert m.payouts_cents == sum(r.amount_cents for r in in_month if r.kind == "payout")


def test_statements_without_rows_are_empty() -> None:
    assert statements(EXPERT, []) == []
    assert statements(CUSTOMER, [], (), None, ()) == []


def test_a_month_with_only_a_claim_is_listed() -> None:
    months = statements(CUSTOMER, [], (), None, [ms(2024, 5, 5)])
    assert wire(months) == [
        {**Month("2024-05").to_wire(), "refund_claims": 1},
    ]


def test_a_session_counts_once_a_month_and_unknown_seconds_are_zero() -> None:
    rows = [
        Row(1, "op1", "s9", EXP, EXPERT, "earning", 100, ms(2024, 4, 1)),
        Row(2, "op2", "s9", EXP, EXPERT, "earning", 50, ms(2024, 4, 2)),
        Row(3, "op3", "s8", EXP, EXPERT, "earning", 70, ms(2024, 4, 3)),
        Row(4, "op4", None, EXP, EXPERT, "earning", 30, ms(2024, 4, 4)),
    ]
    (april,) = statements(EXPERT, rows, (), {"s9": 60})
    assert (april.sessions, april.billable_seconds, april.gross_cents, april.net_cents) == (
        2,
        60,
        250,
        250,
    )


def test_months_are_newest_first_across_a_year() -> None:
    rows = [
        Row(i, f"op{i}", f"s{i}", CUST, CUSTOMER, "charge", -10, at)
        for i, at in enumerate([ms(2023, 11, 5), ms(2024, 1, 5), ms(2023, 12, 31, 23, 59)])
    ]
    assert [m.month for m in statements(CUSTOMER, rows)] == ["2024-01", "2023-12", "2023-11"]


def test_month_to_wire_is_the_protocol_month_object() -> None:
    assert list(Month("2024-01").to_wire()) == [
        "month",
        "sessions",
        "billable_seconds",
        "gross_cents",
        "platform_fees_cents",
        "refunds_cents",
        "adjustments_cents",
        "net_cents",
        "payouts_cents",
        "refund_claims",
        "refunded_sessions",
    ]


# -- running ----------------------------------------------------------------------------


def test_running_balance() -> None:
    book = sample_book()
    own = book.own(EXPERT, EXP)
    got = running(own)
    assert [(r.kind, b) for r, b in got] == [
        ("earning", 800),
        ("earning", 3200),
        ("refund_reversal", 2400),
        ("payout", -800),
        ("cancellation_compensation", -400),
        ("earning", 800),
    ]
    assert [r for r, _ in got] == own
    assert got[-1][1] == book.balance(EXPERT, EXP)


def test_running_from_an_opening_balance() -> None:
    rows = [
        Row(1, "op1", None, CUST, CUSTOMER, "charge", -300, 0),
        Row(2, "op2", None, CUST, CUSTOMER, "refund", 100, 1),
    ]
    assert [b for _, b in running(rows, opening_cents=1000)] == [700, 800]
    assert running([]) == []
    assert running([], opening_cents=5) == []
