"""A random life of the ledger: every statement and balance stays consistent with its rows.

A hypothesis state machine plays random sequences of what writes money:
sessions ending (core.money.charge, core.ledger.session_charge), refund claims
and their disputes and decisions (core.claims rules, core.ledger.refund_decision),
no-shows and late cancels (core.schedule fees, core.ledger.cancellation), and
payout runs for ended months (portal/money.py's rule: once per expert and
period, only with a complete profile, ``payout_amount(owed_through, balance
now)`` where owed_through is his rows before the month's end less every payout
so far), while time moves forward across month and year boundaries (UTC, ms).

The ledger is a list of ``core.ledger.Row`` with op ids, holding exactly what
the core functions return. A second, independent model keeps each user's
expected month lines, counted from the events themselves and not from rows.
After every step:

(a) the whole ledger sums to zero, and every op does;
(b) for every expert and customer, ``statements()`` (fed as the server feeds
    it) equals the independent model, and each month keeps
    ``net == gross + fees + refunds + adjustments == his non-payout rows of
    the month`` and ``payouts == his payout rows of the month``;
(c) no payout exceeds the expert's balance just before it, none is paid
    without a complete profile, none twice for an expert and period, and none
    pays money of a later month: all paid him so far, that payout included,
    was earned by the end of its period (periods paid late or out of order);
(d) ``running()`` ends at the user's balance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from rtserver.core import claims as claim_rules
from rtserver.core import schedule
from rtserver.core.ledger import (
    CUSTOMER,
    EXPERT,
    OUTCOMES,
    PAYOUT,
    PLATFORM,
    Entry,
    Outcome,
    Row,
    cancellation,
    month_end_ms,
    month_of,
    payout,
    payout_amount,
    refund_decision,
    running,
    session_charge,
    statements,
)
from rtserver.core.money import Charge, charge
from rtserver.errors import Forbidden, InvalidState

CUSTOMERS = ("c1", "c2", "c3")
EXPERTS = ("e1", "e2", "e3")
START_MS = int(datetime(2023, 12, 18, tzinfo=UTC).timestamp()) * 1000
DAY_MS = 86_400_000
REFUND_WINDOW_S = 14 * 86_400
LATE_CANCEL_S = 24 * 3600.0


@dataclass(frozen=True)
class Ends:
    """A session ending: who, at what rate, for how long, with what discount and fee."""

    customer: str
    expert: str
    rate: int
    seconds: int
    discount: int
    fee_pct: int


ENDS = st.builds(
    Ends,
    customer=st.sampled_from(CUSTOMERS),
    expert=st.sampled_from(EXPERTS),
    rate=st.integers(0, 20_000),
    seconds=st.integers(0, 3 * 3600),
    discount=st.integers(0, 100),
    fee_pct=st.integers(0, 100),
)
FIELDS = (
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
)


def dt(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, UTC)


def months_between(first_ms: int, last_ms: int) -> list[str]:
    """Every ``YYYY-MM`` from the month of ``first_ms`` to that of ``last_ms``."""
    out: list[str] = []
    y, m = int(month_of(first_ms)[:4]), int(month_of(first_ms)[5:])
    last = month_of(last_ms)
    while True:
        key = f"{y:04d}-{m:02d}"
        out.append(key)
        if key == last:
            return out
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


@dataclass
class Session:
    id: str
    customer: str
    expert: str
    charge: Charge
    ended_ms: int
    claim: str | None = None  # None, "open", "disputed" or the final status


@dataclass
class Paid:
    expert: str
    period: str
    amount: int
    balance_before: int
    complete: bool
    earned_through_period: int  # his non-payout rows of this period and before, then


@dataclass
class Expected:
    """Independent month lines per (account, user): counted from events, not rows."""

    lines: dict[tuple[str, str], dict[str, Counter[str]]] = field(default_factory=dict)

    def add(self, account: str, user: str, at_ms: int, **amounts: int) -> None:
        months = self.lines.setdefault((account, user), {})
        line = months.setdefault(month_of(at_ms), Counter())
        for k, v in amounts.items():
            line[k] += v

    def of(self, account: str, user: str) -> list[dict[str, int | str]]:
        months = self.lines.get((account, user), {})
        return [
            {"month": key, **{f: months[key][f] for f in FIELDS}}
            for key in sorted(months, reverse=True)
        ]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.ops = 0
        self.now_ms = START_MS
        self.sessions: list[Session] = []
        self.seconds: dict[str, int] = {}
        self.claims_by: dict[str, list[int]] = {c: [] for c in CUSTOMERS}
        self.claims_against: dict[str, list[int]] = {e: [] for e in EXPERTS}
        self.complete: dict[str, bool] = dict.fromkeys(EXPERTS, False)
        self.paid: list[Paid] = []
        self.expected = Expected()
        self.n = 0

    # -- the ledger, as storage writes it ------------------------------------------------

    def append(self, session_id: str | None, entries: list[Entry]) -> str:
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
                    self.now_ms,
                )
            )
        return op

    def own(self, account: str, user: str) -> list[Row]:
        return [r for r in self.rows if r.account == account and r.user_id == user]

    def fees_of_expert(self, expert: str) -> list[Row]:
        """Mirror of ``storage.ledger.Ledger.fees_of_expert``."""
        ops = {
            r.op
            for r in self.rows
            if r.account == EXPERT
            and r.user_id == expert
            and r.kind in ("earning", "refund_reversal")
        }
        return [
            r
            for r in self.rows
            if r.account == PLATFORM and r.kind in ("platform_fee", "fee_reversal") and r.op in ops
        ]

    def balance(self, account: str, user: str) -> int:
        """Mirror of ``storage.ledger.Ledger.balance_in``: the balance now."""
        return sum(r.amount_cents for r in self.own(account, user))

    def owed_through(self, expert: str, end_ms: int) -> int:
        """Mirror of ``storage.ledger.Ledger.owed_through``: his rows before ``end_ms``,
        less every payout made so far, whenever it was made."""
        return sum(
            r.amount_cents
            for r in self.own(EXPERT, expert)
            if r.at_ms < end_ms or r.kind == "payout"
        )

    def new_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    # -- rules ---------------------------------------------------------------------------
    # Hypothesis takes the rules in name order and prefers the first ones when it
    # generates simple runs: the a_ to g_ prefixes put a session ending first.

    @initialize(
        complete=st.lists(
            st.sampled_from([True, True, False]), min_size=len(EXPERTS), max_size=len(EXPERTS)
        ),
        first=st.lists(ENDS, min_size=1, max_size=4),
    )
    def start(self, complete: list[bool], first: list[Ends]) -> None:
        """Random payout profiles, and the first few sessions (so that later steps have
        sessions to claim and balances to pay)."""
        self.complete = dict(zip(EXPERTS, complete, strict=True))
        for ends in first:
            self.a_session_ends(ends)

    @rule(
        ms=st.integers(DAY_MS, 20 * DAY_MS) | st.integers(0, 3_600_000),
        profile=st.none() | st.tuples(st.sampled_from(EXPERTS), st.booleans()),
        edge=st.none() | st.integers(-1, 0),
    )
    def b_time_passes(self, ms: int, profile: tuple[str, bool] | None, edge: int | None) -> None:
        """Time moves forward (or to the last or first millisecond of the next month);
        meanwhile an expert may complete or break his payout profile."""
        if edge is None:
            self.now_ms += ms
        else:
            self.now_ms = max(self.now_ms, month_end_ms(month_of(self.now_ms)) + edge)
        if profile is not None:
            self.complete[profile[0]] = profile[1]

    @rule(ends=ENDS)
    def a_session_ends(self, ends: Ends) -> None:
        customer, expert, seconds = ends.customer, ends.expert, ends.seconds
        c = charge(ends.rate, seconds, ends.discount, ends.fee_pct)
        sid = self.new_id("s")
        self.append(sid, session_charge(customer, expert, c))
        self.sessions.append(Session(sid, customer, expert, c, self.now_ms))
        self.seconds[sid] = seconds
        at = self.now_ms
        self.expected.add(
            CUSTOMER,
            customer,
            at,
            sessions=1,
            billable_seconds=seconds,
            gross_cents=-c.charge_cents,
            net_cents=-c.charge_cents,
        )
        self.expected.add(
            EXPERT,
            expert,
            at,
            sessions=1,
            billable_seconds=seconds,
            gross_cents=c.charge_cents,
            platform_fees_cents=-c.platform_fee_cents,
            net_cents=c.expert_earnings_cents,
        )

    @rule(pick=st.integers(0, 10**6), by_other=st.sampled_from([False, False, False, True]))
    def c_refund_claimed(self, pick: int, by_other: bool) -> None:
        if not self.sessions:
            return
        s = self.sessions[pick % len(self.sessions)]
        user = s.expert if by_other else s.customer
        try:
            claim_rules.check_claim(
                user_id=user,
                customer_id=s.customer,
                status="ended",
                charge_cents=s.charge.charge_cents,
                ended_at=dt(s.ended_ms),
                now=dt(self.now_ms),
                window=REFUND_WINDOW_S,
                already_claimed=s.claim is not None,
            )
        except (Forbidden, InvalidState):
            assert (
                by_other
                or s.claim is not None
                or not s.charge.charge_cents
                or self.now_ms > s.ended_ms + REFUND_WINDOW_S * 1000
            )
            return
        assert not by_other and s.claim is None and s.charge.charge_cents > 0
        event("claim: made")
        s.claim = "open"
        self.claims_by[s.customer].append(self.now_ms)
        self.claims_against[s.expert].append(self.now_ms)
        self.expected.add(CUSTOMER, s.customer, self.now_ms, refund_claims=1)
        self.expected.add(EXPERT, s.expert, self.now_ms, refund_claims=1)

    @rule(
        pick=st.integers(0, 10**6),
        outcome=st.sampled_from(OUTCOMES),
        disputed=st.booleans(),
        any_claim=st.sampled_from([False, False, False, True]),
    )
    def d_claim_decided(self, pick: int, outcome: Outcome, disputed: bool, any_claim: bool) -> None:
        """A manager decides a pending claim (the expert may dispute it first); or tries to
        decide any claim, and a decided one refuses: each claim is decided at most once."""
        claimed = [
            s
            for s in self.sessions
            if s.claim is not None and (any_claim or s.claim in claim_rules.PENDING)
        ]
        if not claimed:
            return
        s = claimed[pick % len(claimed)]
        if disputed and s.claim == "open":
            claim_rules.check_dispute(user_id=s.expert, expert_id=s.expert, status=s.claim)
            s.claim = "disputed"
        try:
            claim_rules.check_decision(role="manager", status=s.claim or "")
        except InvalidState:
            assert s.claim not in claim_rules.PENDING  # decided already: final
            return
        c = s.charge
        entries = refund_decision(
            outcome,
            s.customer,
            s.expert,
            c.charge_cents,
            c.platform_fee_cents,
            c.expert_earnings_cents,
        )
        if entries:
            self.append(s.id, entries)
        event(f"decision: {outcome}")
        s.claim = claim_rules.FINAL_STATUS[outcome]
        at = self.now_ms
        if outcome in ("refund", "no_fault"):
            self.expected.add(
                CUSTOMER,
                s.customer,
                at,
                refunds_cents=c.charge_cents,
                net_cents=c.charge_cents,
                refunded_sessions=1,
            )
        if outcome == "refund":
            self.expected.add(
                EXPERT,
                s.expert,
                at,
                refunds_cents=-c.charge_cents,
                platform_fees_cents=c.platform_fee_cents,
                net_cents=-c.expert_earnings_cents,
                refunded_sessions=1,
            )

    def cancelled(self, fee: schedule.Fee, reason: str, customer: str, expert: str) -> None:
        """The rows of ``rooms.scheduled.Scheduled._cancel``: ``core.ledger.cancellation``."""
        entries = cancellation(customer, expert, fee, reason)
        if fee.charged_user_id is None:
            assert fee == schedule.NO_FEE
            assert entries == []
            return
        assert fee.compensated_user_id is not None
        assert fee.compensation_cents + fee.platform_cents == fee.fee_cents

        def account(user: str) -> str:
            return CUSTOMER if user == customer else EXPERT

        charged, other = fee.charged_user_id, fee.compensated_user_id
        assert [(e.account, e.user_id, e.kind, e.amount_cents) for e in entries] == [
            (account(charged), charged, "cancellation_fee", -fee.fee_cents),
            (account(other), other, "cancellation_compensation", fee.compensation_cents),
            (PLATFORM, None, "platform_fee", fee.platform_cents),
        ]
        self.append(self.new_id("sched"), entries)
        at = self.now_ms
        self.expected.add(
            account(charged),
            charged,
            at,
            adjustments_cents=-fee.fee_cents,
            net_cents=-fee.fee_cents,
        )
        self.expected.add(
            account(other),
            other,
            at,
            adjustments_cents=fee.compensation_cents,
            net_cents=fee.compensation_cents,
        )

    @rule(
        customer=st.sampled_from(CUSTOMERS),
        expert=st.sampled_from(EXPERTS),
        customer_joined=st.booleans(),
        expert_joined=st.booleans(),
        fee_cents=st.one_of(st.just(500), st.integers(0, 5000)),
        fee_pct=st.integers(0, 100),
    )
    def f_no_show(
        self,
        customer: str,
        expert: str,
        customer_joined: bool,
        expert_joined: bool,
        fee_cents: int,
        fee_pct: int,
    ) -> None:
        fee = schedule.no_show_fee(
            customer, expert, customer_joined, expert_joined, fee_cents, fee_pct
        )
        if customer_joined == expert_joined:
            assert fee.charged_user_id is None
        else:
            assert fee.charged_user_id == (expert if customer_joined else customer)
        self.cancelled(fee, "no_show", customer, expert)

    @rule(
        customer=st.sampled_from(CUSTOMERS),
        expert=st.sampled_from(EXPERTS),
        by_customer=st.booleans(),
        seconds_before=st.integers(1, 3 * 86_400),
        fee_cents=st.one_of(st.just(500), st.integers(0, 5000)),
        fee_pct=st.integers(0, 100),
    )
    def g_cancel(
        self,
        customer: str,
        expert: str,
        by_customer: bool,
        seconds_before: int,
        fee_cents: int,
        fee_pct: int,
    ) -> None:
        canceller, other = (customer, expert) if by_customer else (expert, customer)
        now = dt(self.now_ms)
        starts_at = dt(self.now_ms + seconds_before * 1000)
        fee = schedule.cancel_fee(
            canceller, other, now, starts_at, LATE_CANCEL_S, fee_cents, fee_pct
        )
        if seconds_before > LATE_CANCEL_S:
            assert fee == schedule.NO_FEE
        else:
            assert fee.charged_user_id == canceller
        event(f"late cancel: fee {fee.charged_user_id is not None}")
        self.cancelled(fee, "cancelled", customer, expert)

    @rule(pick=st.integers(0, 10**6), latest=st.booleans())
    def e_payout_run(self, pick: int, latest: bool) -> None:
        """``portal.money.Money.run`` for an ended month (the last one, or any)."""
        ended = months_between(START_MS, self.now_ms)[:-1]
        if not ended:
            return
        if latest:
            pick = -1
        period = ended[pick % len(ended)]
        if period != ended[-1]:
            event("payout: a run for an older month")
        end_ms = month_end_ms(period)
        assert end_ms <= self.now_ms  # the period has ended
        experts = sorted({r.user_id for r in self.rows if r.account == EXPERT and r.user_id})
        for expert in experts:
            if any(p.expert == expert and p.period == period for p in self.paid):
                continue
            owed = self.owed_through(expert, end_ms)
            own = self.own(EXPERT, expert)
            # What he earned through the period, counted by month names (so month_end_ms
            # is checked against month_of), and what was paid him so far.
            earned = sum(
                r.amount_cents for r in own if r.kind != "payout" and month_of(r.at_ms) <= period
            )
            paid_so_far = -sum(r.amount_cents for r in own if r.kind == "payout")
            assert owed == earned - paid_so_far
            now_balance = self.balance(EXPERT, expert)
            amount = payout_amount(owed, now_balance)
            if owed < 0:
                event("payout: a negative balance carried")
            if any(p.expert == expert and p.period > period for p in self.paid):
                event("payout: a later period was paid first")
            if amount <= 0:
                continue
            if amount < owed:
                event("payout: capped by the balance now")
            # Never the money of a later month (one still running, say): everything paid
            # him, this payout included, was earned by the end of this period.
            assert paid_so_far + amount <= earned
            if not self.complete[expert]:
                event("payout: held, profile incomplete")
                continue
            event("payout: paid")
            self.append(None, payout(expert, amount, period))
            self.paid.append(
                Paid(expert, period, amount, now_balance, self.complete[expert], earned)
            )
            self.expected.add(EXPERT, expert, self.now_ms, payouts_cents=-amount)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def a_the_ledger_and_every_op_sum_to_zero(self) -> None:
        assert sum(r.amount_cents for r in self.rows) == 0
        per_op: Counter[str] = Counter()
        for r in self.rows:
            per_op[r.op] += r.amount_cents
        assert all(v == 0 for v in per_op.values()), per_op

    @invariant()
    def b_statements_match_the_rows_and_the_model(self) -> None:
        users = [(EXPERT, e) for e in EXPERTS] + [(CUSTOMER, c) for c in CUSTOMERS]
        for account, user in users:
            own = self.own(account, user)
            if account == EXPERT:
                fees = self.fees_of_expert(user)
                claims_ms = self.claims_against[user]
            else:
                fees = []
                claims_ms = self.claims_by[user]
            seconds = {
                r.session_id: self.seconds[r.session_id]
                for r in own
                if r.session_id in self.seconds
            }
            months = statements(account, own, fees, seconds, claims_ms)
            for m in months:
                in_month = [r for r in own if month_of(r.at_ms) == m.month]
                non_payout = sum(r.amount_cents for r in in_month if r.kind != "payout")
                payouts = sum(r.amount_cents for r in in_month if r.kind == "payout")
                total = (
                    m.gross_cents + m.platform_fees_cents + m.refunds_cents + m.adjustments_cents
                )
                assert m.net_cents == total == non_payout, (account, user, m)
                assert m.payouts_cents == payouts, (account, user, m)
            assert [m.to_wire() for m in months] == self.expected.of(account, user), (account, user)

    @invariant()
    def c_payouts_are_capped_once_and_only_with_a_profile(self) -> None:
        seen: set[tuple[str, str]] = set()
        paid_then: Counter[str] = Counter()
        for p in self.paid:
            assert 0 < p.amount <= p.balance_before
            paid_then[p.expert] += p.amount
            assert paid_then[p.expert] <= p.earned_through_period
            assert p.complete
            assert (p.expert, p.period) not in seen
            seen.add((p.expert, p.period))
        payout_rows = [r for r in self.rows if r.kind == "payout"]
        transfers = [r for r in self.rows if r.account == PAYOUT]
        assert len(payout_rows) == len(transfers) == len(self.paid)
        for e in EXPERTS:
            out = sum(r.amount_cents for r in transfers if r.user_id == e)
            assert out == sum(p.amount for p in self.paid if p.expert == e)
            assert out == -sum(r.amount_cents for r in payout_rows if r.user_id == e)

    @invariant()
    def d_running_ends_at_the_balance(self) -> None:
        users = [(EXPERT, e) for e in EXPERTS] + [(CUSTOMER, c) for c in CUSTOMERS]
        for account, user in users:
            own = self.own(account, user)
            record = running(own)
            assert [r for r, _ in record] == own
            assert (record[-1][1] if record else 0) == self.balance(account, user)
            after = 0
            for r, b in record:
                after += r.amount_cents
                assert b == after


LedgerMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, database=None
)
test_ledger_machine = LedgerMachine.TestCase
