"""The state machines of requests and offers. Pure: values in, decisions out.

A request is ``open`` until exactly one of these closes it, first come first
served (the claim in the bus decides which when they race):

    open ──accept──▶ accepted      (an offered expert won)
      │ ──decline──▶ declined      (a direct request's one expert declined)
      │ ──ttl──────▶ expired       (--request-ttl passed, or no time left to book)
      └ ──cancel───▶ cancelled     (its customer withdrew it)

An offer belongs to one expert and one request, inside one wave:

    open ──▶ accepted | declined | expired (its wave ended) | revoked (taken, cancelled)

Accepting is judged on time, not on whether the wave's timer has run yet: an
accept that arrives before the offer's ``expires_at`` is valid, one after it
is ``offer_expired``. So a wave timer that runs late never steals a win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from rtserver.errors import (
    Conflict,
    InvalidField,
    InvalidState,
    NotFound,
    OfferExpired,
    OfferTaken,
    RequestCancelled,
)

RequestStatus = Literal["open", "accepted", "declined", "expired", "cancelled"]
OfferStatus = Literal["open", "accepted", "declined", "expired", "revoked"]
Kind = Literal["instant", "scheduled"]

MAX_PROPOSED_TIMES = 5


@dataclass(frozen=True, slots=True)
class RequestView:
    """What the rules need to know of a request."""

    id: str
    customer_id: str
    kind: Kind
    status: RequestStatus
    expires_at: datetime
    proposed_times: tuple[datetime, ...] = ()
    direct_expert_id: str | None = None


@dataclass(frozen=True, slots=True)
class OfferView:
    """What the rules need to know of an offer."""

    request_id: str
    expert_id: str
    status: OfferStatus
    expires_at: datetime


def closed_error(status: RequestStatus) -> Conflict:
    """The error an expert gets for acting on a request that is no longer open."""
    if status == "accepted":
        return OfferTaken("another expert accepted this request first")
    if status == "cancelled":
        return RequestCancelled("the customer cancelled this request")
    return OfferExpired("this request is no longer open")


def check_accept(
    request: RequestView | None,
    offer: OfferView | None,
    now: datetime,
    time: datetime | None,
    busy: bool = False,
) -> datetime | None:
    """Raise the contract error if this accept cannot win; return the booked time.

    ``busy``: the expert is in an active session. He cannot take an instant
    request then; said before the state of his offer, which his session's
    start revoked (it is why, not that it expired).

    The booked time is None for an instant request, and for a scheduled one the
    proposed time the expert chose.
    """
    if request is None or offer is None:
        raise NotFound("no such offer")
    if request.status != "open":
        raise closed_error(request.status)
    if busy and request.kind == "instant":
        raise InvalidState("you are in an active session")
    if offer.status == "declined":
        raise InvalidState("you declined this offer")
    if offer.status in ("expired", "revoked") or now >= offer.expires_at:
        raise OfferExpired("this offer has expired")
    if offer.status != "open":
        raise InvalidState(f"offer is {offer.status}")
    if now >= request.expires_at:
        raise OfferExpired("this request has expired")
    if request.kind == "instant":
        if time is not None:
            raise InvalidField("an instant request takes no time", "time")
        return None
    if time is None:
        raise InvalidField("a scheduled request needs one of its proposed times", "time")
    if time not in request.proposed_times:
        raise InvalidField("time is not one of the proposed times", "time")
    return time


def check_decline(request: RequestView | None, offer: OfferView | None) -> None:
    """Raise if this expert cannot decline (no offer, or already answered)."""
    if request is None or offer is None:
        raise NotFound("no such offer")
    if request.status != "open":
        raise closed_error(request.status)
    if offer.status != "open":
        raise InvalidState(f"offer is already {offer.status}")


def check_cancel(request: RequestView | None, user_id: str) -> None:
    """Raise unless ``user_id`` is the customer and the request is open."""
    if request is None or request.customer_id != user_id:
        raise NotFound("no such request")
    if request.status != "open":
        raise InvalidState(f"request is already {request.status}")


# How far ahead a session may be booked: a year covers any real plan, and keeps
# every time (and the claims and timers derived from it) in a sane range.
MAX_AHEAD = timedelta(days=365)


def validate_proposed_times(
    kind: Kind, raw: list[datetime], now: datetime, earliest_lead: timedelta = timedelta(0)
) -> tuple[datetime, ...]:
    """The proposed times of a new request, checked; sorted, in UTC."""
    if kind == "instant":
        if raw:
            raise InvalidField("an instant request takes no proposed_times", "proposed_times")
        return ()
    if not 1 <= len(raw) <= MAX_PROPOSED_TIMES:
        raise InvalidField(
            f"a scheduled request needs 1 to {MAX_PROPOSED_TIMES} proposed_times", "proposed_times"
        )
    if any(t.tzinfo is None for t in raw):
        raise InvalidField("proposed_times must carry a UTC offset", "proposed_times")
    times = [t.astimezone(UTC) for t in raw]
    if len(set(times)) != len(times):
        raise InvalidField("proposed_times must be distinct", "proposed_times")
    for t in times:
        if t <= now + earliest_lead:
            raise InvalidField("proposed_times must be in the future", "proposed_times")
        if t > now + MAX_AHEAD:
            raise InvalidField(
                f"proposed_times must be within {MAX_AHEAD.days} days", "proposed_times"
            )
    return tuple(sorted(times))


def offer_expiry(now: datetime, offer_ttl: float, request_expires_at: datetime) -> datetime:
    """When an offer made now closes: one wave, never past the request's end."""
    return min(now + timedelta(seconds=offer_ttl), request_expires_at)
