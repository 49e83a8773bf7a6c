"""Refund claims: who may claim, dispute and decide, and when. Pure, no I/O.

A claim moves ``open`` → (``disputed``) → one final status. The customer
claims an ended, charged session once, within the refund window after its
end; the session's expert may dispute an open claim once; a manager decides
an open or disputed claim once, and a decision is final.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from rtserver.core.ledger import Outcome
from rtserver.errors import Forbidden, InvalidState

ClaimStatus = Literal["open", "disputed", "refunded", "denied", "no_fault"]
PENDING: tuple[ClaimStatus, ...] = ("open", "disputed")
FINAL_STATUS: dict[Outcome, ClaimStatus] = {
    "refund": "refunded",
    "deny": "denied",
    "no_fault": "no_fault",
}


def check_claim(
    *,
    user_id: str,
    customer_id: str,
    status: str,
    charge_cents: int | None,
    ended_at: datetime | None,
    now: datetime,
    window: float,
    already_claimed: bool,
) -> None:
    """Raise unless ``user_id`` may claim a refund of this session now."""
    if user_id != customer_id:
        raise Forbidden("only the session's customer claims a refund")
    if status != "ended" or ended_at is None:
        raise InvalidState(f"session is {status}; only an ended session can be refunded")
    if not charge_cents:
        raise InvalidState("this session was not charged")
    if now > ended_at + timedelta(seconds=window):
        raise InvalidState("the refund window of this session has closed")
    if already_claimed:
        raise InvalidState("a refund of this session was claimed already")


def check_dispute(*, user_id: str, expert_id: str, status: str) -> None:
    """Raise unless ``user_id`` may dispute a claim in ``status``."""
    if user_id != expert_id:
        raise Forbidden("only the session's expert disputes a claim")
    if status != "open":
        raise InvalidState(f"claim is {status}; only an open claim can be disputed")


def check_decision(*, role: str, status: str) -> None:
    """Raise unless a user of ``role`` may decide a claim in ``status``."""
    if role != "manager":
        raise Forbidden("only a community manager decides a claim")
    if status not in PENDING:
        raise InvalidState(f"claim is {status}; a decision is final")


def check_review(*, user_id: str, customer_id: str, status: str, already_reviewed: bool) -> None:
    """Raise unless ``user_id`` may rate this session."""
    if user_id != customer_id:
        raise Forbidden("only the session's customer rates it")
    if status != "ended":
        raise InvalidState(f"session is {status}; only an ended session can be rated")
    if already_reviewed:
        raise InvalidState("this session was rated already")
