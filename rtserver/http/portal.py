"""The portal's HTTP API: history, claims, money, profiles, the manager console.

Thin: each handler reads the user, the body and the query, calls one portal
service and encodes its answer. The rules are in :mod:`rtserver.core`, the
work in :mod:`rtserver.portal`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtserver.core.payout_profile import PayoutProfileBody
from rtserver.errors import Forbidden, InvalidField
from rtserver.http.common import api, body, current_user, json_response, node_of
from rtserver.portal.common import Done
from rtserver.schemas import (
    ClaimBody,
    DecisionBody,
    DisputeBody,
    PayoutRunBody,
    PhoneBody,
    RestoreBody,
    ReviewBody,
    SuspendBody,
    VerificationBody,
)
from rtserver.storage.db import MAX_INT
from rtserver.storage.idempotency import IdempotencyKey
from rtserver.storage.users import User

MAX_KEY = 255


def _limit(request: Request, default: int = 20, most: int = 100) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField("limit is a whole number", "limit") from None
    if not 1 <= value <= most:
        raise InvalidField(f"limit is 1 to {most}", "limit")
    return value


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField(f"{name} is a whole number", name) from None
    if not 0 <= value <= MAX_INT:
        raise InvalidField(f"{name} is 0 to {MAX_INT}", name)
    return value


def _list(request: Request, name: str) -> list[str]:
    raw = request.query_params.get(name, "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


async def _key(request: Request, user: User) -> IdempotencyKey | None:
    """The call's ``Idempotency-Key``, bound to its method, path and body."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY:
        raise InvalidField(f"Idempotency-Key is 1 to {MAX_KEY} characters", "Idempotency-Key")
    raw = await request.body()
    return IdempotencyKey.of(user.id, key, request.method, request.url.path, raw)


def _done(done: Done) -> Response:
    resp = json_response(done.body, done.status)
    if done.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _manager(user: User) -> None:
    if user.role != "manager":
        raise Forbidden("only community managers do this")


# -- sessions ----------------------------------------------------------------------------


@api
async def list_sessions(request: Request) -> Response:
    """Session History (and Upcoming Sessions with ``?status=scheduled``)."""
    node = node_of(request)
    user = await current_user(request)
    out = await node.history.page(
        user,
        _list(request, "status"),
        _flag(request, "disputed"),
        request.query_params.get("user_id"),
        request.query_params.get("cursor"),
        _limit(request),
    )
    return json_response(out)


@api
async def get_session(request: Request) -> Response:
    """View Details of one session."""
    node = node_of(request)
    user = await current_user(request)
    return json_response(await node.history.details(user, request.path_params["session_id"]))


@api
async def session_messages(request: Request) -> Response:
    """A page of a session's transcript."""
    node = node_of(request)
    user = await current_user(request)
    out = await node.history.messages(
        user,
        request.path_params["session_id"],
        _int(request, "after_seq", 0),
        _limit(request, 200, 500),
    )
    return json_response(out)


@api
async def claim_refund(request: Request) -> Response:
    """The customer claims a refund of an ended session."""
    node = node_of(request)
    user = await current_user(request)
    b = await body(request, ClaimBody)
    if not b.reason.strip():
        raise InvalidField("give a reason", "reason")
    key = await _key(request, user)
    return _done(await node.claims.claim(user, request.path_params["session_id"], b.reason, key))


@api
async def review_session(request: Request) -> Response:
    """The customer rates an ended session."""
    node = node_of(request)
    user = await current_user(request)
    b = await body(request, ReviewBody)
    key = await _key(request, user)
    sid = request.path_params["session_id"]
    return _done(await node.claims.review(user, sid, b.stars, b.comment, key))


# -- claims ------------------------------------------------------------------------------


@api
async def list_claims(request: Request) -> Response:
    """Managers: the claims queue. Others: their own claims."""
    node = node_of(request)
    user = await current_user(request)
    statuses = _list(request, "status")
    allowed = ("open", "disputed", "refunded", "denied", "no_fault")
    for s in statuses:
        if s not in allowed:
            raise InvalidField(f"status is one of {', '.join(allowed)}", "status")
    out = await node.claims.page(
        user, statuses, request.query_params.get("cursor"), _limit(request)
    )
    return json_response(out)


@api
async def get_claim(request: Request) -> Response:
    """One claim, to its parties and managers."""
    node = node_of(request)
    user = await current_user(request)
    claim = await node.claims.visible(user, request.path_params["claim_id"])
    return json_response({"claim": await node.claims.wire(claim)})


@api
async def dispute_claim(request: Request) -> Response:
    """The session's expert disputes a claim."""
    node = node_of(request)
    user = await current_user(request)
    b = await body(request, DisputeBody)
    if not b.summary.strip():
        raise InvalidField("give a summary of the session", "summary")
    key = await _key(request, user)
    return _done(await node.claims.dispute(user, request.path_params["claim_id"], b.summary, key))


@api
async def decide_claim(request: Request) -> Response:
    """A community manager decides a claim."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    b = await body(request, DecisionBody)
    key = await _key(request, user)
    cid = request.path_params["claim_id"]
    return _done(await node.claims.decide(user, cid, b.outcome, b.note, key))


# -- money -----------------------------------------------------------------------------------


@api
async def statements(request: Request) -> Response:
    """My Earnings and the Session Summary, per month."""
    node = node_of(request)
    user = await current_user(request)
    year = request.query_params.get("year")
    if year is not None and not (year.isascii() and year.isdigit() and len(year) == 4):
        raise InvalidField("year is written YYYY", "year")
    return json_response(await node.money.statements(user, int(year) if year else None))


@api
async def transactions(request: Request) -> Response:
    """The Transaction Record (``?format=csv``: every row, as CSV)."""
    node = node_of(request)
    user = await current_user(request)
    fmt = request.query_params.get("format", "json")
    if fmt == "csv":
        text = await node.money.transactions_csv(user)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="transactions.csv"'},
        )
    if fmt != "json":
        raise InvalidField("format is json or csv", "format")
    out = await node.money.transactions(user, request.query_params.get("cursor"), _limit(request))
    return json_response(out)


@api
async def get_payout_profile(request: Request) -> Response:
    """The expert's payout profile, masked."""
    node = node_of(request)
    return json_response(await node.money.profile(await current_user(request)))


@api
async def put_payout_profile(request: Request) -> Response:
    """Save parts of the payout profile."""
    node = node_of(request)
    user = await current_user(request)
    if user.role != "expert":
        raise Forbidden("only experts have a payout profile")
    b = await body(request, PayoutProfileBody)
    return json_response(await node.money.put_profile(user, b))


@api
async def my_payouts(request: Request) -> Response:
    """The expert's payouts."""
    node = node_of(request)
    return json_response(await node.money.payouts_of(await current_user(request)))


@api
async def run_payouts(request: Request) -> Response:
    """A manager pays out one month."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    b = await body(request, PayoutRunBody)
    key = await _key(request, user)
    return _done(await node.money.run(user, b.month, key))


@api
async def list_payouts(request: Request) -> Response:
    """Every payout (of a month), for managers."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    return json_response(await node.money.payouts_all(request.query_params.get("month")))


# -- accounts ------------------------------------------------------------------------------


@api
async def put_phone(request: Request) -> Response:
    """The user's phone number for texts."""
    node = node_of(request)
    user = await current_user(request)
    b = await body(request, PhoneBody)
    return json_response(await node.accounts.set_phone(user, b.phone))


async def _viewer(request: Request) -> User | None:
    """The user if a token is given; None for anonymous callers.

    The public pages need no token, but a token that is given must be valid: an
    invalid one is ``unauthenticated`` (401), as on every other call, so that a
    client learns its session ended rather than being served as a stranger. A
    suspended account reads them as anyone may.
    """
    if "authorization" not in request.headers:
        return None
    try:
        return await current_user(request)
    except Forbidden:
        return None


@api
async def list_experts(request: Request) -> Response:
    """Public experts, optionally by skill and language."""
    node = node_of(request)
    await _viewer(request)
    out = await node.accounts.experts(
        request.query_params.get("skill"), request.query_params.get("language")
    )
    return json_response(out)


@api
async def get_expert(request: Request) -> Response:
    """An expert's public profile: what his profile link opens."""
    node = node_of(request)
    viewer = await _viewer(request)
    return json_response(await node.accounts.expert(request.path_params["user_id"], viewer))


@api
async def expert_reviews(request: Request) -> Response:
    """An expert's reviews."""
    node = node_of(request)
    await _viewer(request)
    out = await node.accounts.reviews(
        request.path_params["user_id"], request.query_params.get("cursor"), _limit(request)
    )
    return json_response(out)


@api
async def set_verification(request: Request) -> Response:
    """A manager verifies or rejects an expert."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    b = await body(request, VerificationBody)
    out = await node.accounts.set_verification(
        user, request.path_params["user_id"], b.status, b.note
    )
    return json_response(out)


@api
async def list_users(request: Request) -> Response:
    """Accounts, for managers."""
    node = node_of(request)
    user = await current_user(request)
    q = request.query_params
    role, status = q.get("role"), q.get("status")
    if role is not None and role not in ("customer", "expert", "manager"):
        raise InvalidField("role is customer, expert or manager", "role")
    if status is not None and status not in ("active", "suspended"):
        raise InvalidField("status is active or suspended", "status")
    out = await node.accounts.users(
        user, role, status, q.get("q"), q.get("cursor"), _limit(request)
    )
    return json_response(out)


@api
async def suspend_user(request: Request) -> Response:
    """A manager suspends an account."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    b = await body(request, SuspendBody)
    if not b.reason.strip():
        raise InvalidField("give a reason", "reason")
    out = await node.accounts.set_status(
        user, request.path_params["user_id"], "suspended", b.reason
    )
    return json_response(out)


@api
async def restore_user(request: Request) -> Response:
    """A manager restores a suspended account."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    b = await body(request, RestoreBody)
    out = await node.accounts.set_status(user, request.path_params["user_id"], "active", b.reason)
    return json_response(out)


@api
async def audit_log(request: Request) -> Response:
    """The managers' audit log."""
    node = node_of(request)
    user = await current_user(request)
    out = await node.accounts.audit(user, request.query_params.get("cursor"), _limit(request))
    return json_response(out)


# -- dead letters ----------------------------------------------------------------------------


@api
async def list_dead_letters(request: Request) -> Response:
    """Timers that failed their last try, for managers."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    status = request.query_params.get("status")
    if status is not None and status not in ("dead", "retried"):
        raise InvalidField("status is dead or retried", "status")
    out = await node.dead_letters.page(
        user, status, request.query_params.get("cursor"), _limit(request)
    )
    return json_response(out)


@api
async def retry_dead_letter(request: Request) -> Response:
    """A manager schedules a dead letter's timer again."""
    node = node_of(request)
    user = await current_user(request)
    _manager(user)
    out = await node.dead_letters.retry(user, request.path_params["dead_letter_id"])
    return json_response(out)


routes = [
    Route("/api/sessions", list_sessions, methods=["GET"]),
    Route("/api/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/api/sessions/{session_id}/messages", session_messages, methods=["GET"]),
    Route("/api/sessions/{session_id}/refund-claim", claim_refund, methods=["POST"]),
    Route("/api/sessions/{session_id}/review", review_session, methods=["POST"]),
    Route("/api/claims", list_claims, methods=["GET"]),
    Route("/api/claims/{claim_id}", get_claim, methods=["GET"]),
    Route("/api/claims/{claim_id}/dispute", dispute_claim, methods=["POST"]),
    Route("/api/claims/{claim_id}/decision", decide_claim, methods=["POST"]),
    Route("/api/me/statements", statements, methods=["GET"]),
    Route("/api/me/transactions", transactions, methods=["GET"]),
    Route("/api/me/payout-profile", get_payout_profile, methods=["GET"]),
    Route("/api/me/payout-profile", put_payout_profile, methods=["PUT"]),
    Route("/api/me/payouts", my_payouts, methods=["GET"]),
    Route("/api/me/phone", put_phone, methods=["PUT"]),
    Route("/api/experts", list_experts, methods=["GET"]),
    Route("/api/experts/{user_id}", get_expert, methods=["GET"]),
    Route("/api/experts/{user_id}/reviews", expert_reviews, methods=["GET"]),
    Route("/api/experts/{user_id}/verification", set_verification, methods=["PUT"]),
    Route("/api/users", list_users, methods=["GET"]),
    Route("/api/users/{user_id}/suspend", suspend_user, methods=["POST"]),
    Route("/api/users/{user_id}/restore", restore_user, methods=["POST"]),
    Route("/api/audit", audit_log, methods=["GET"]),
    Route("/api/payouts/run", run_payouts, methods=["POST"]),
    Route("/api/payouts", list_payouts, methods=["GET"]),
    Route("/api/dead-letters", list_dead_letters, methods=["GET"]),
    Route("/api/dead-letters/{dead_letter_id}/retry", retry_dead_letter, methods=["POST"]),
]
