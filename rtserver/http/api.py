"""The account and hub HTTP API under ``/api``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtserver.clock import to_ms
from rtserver.core.text import clean_name, clean_text, email_key
from rtserver.errors import Forbidden, NotFound, RateLimited, Unauthenticated
from rtserver.http.common import api, body, client_address, current_user, json_response, node_of
from rtserver.schemas import LoginBody, PreferencesBody, RegisterBody
from rtserver.storage.notifications import notification_wire
from rtserver.storage.users import Profile


@api
async def register(request: Request) -> Response:
    """Create a customer or expert account; managers only come from the CLI."""
    node = node_of(request)
    limits = node.limits
    address = limits.address(client_address(request))
    limits.spend(limits.register, address, "too many accounts registered from this address")
    b = await body(request, RegisterBody)
    if b.role == "manager":
        raise Forbidden("managers are created with `rtserver user create`")
    name = clean_name(b.name)
    user = await node.hub.users.create(
        b.email,
        await node.auth.hash_password(b.password),
        name,
        b.role,
        to_ms(node.clock.now()),
    )
    return json_response({"user": user.public(), "token": node.auth.issue(user.id)}, 201)


@api
async def login(request: Request) -> Response:
    """Exchange e-mail and password for a token.

    Every attempt spends a token of its client address and of its account
    before the password is checked (so that attempts at once cannot pass
    together); one that succeeds gives them back, so only failures count.
    """
    node = node_of(request)
    limits = node.limits
    address = limits.address(client_address(request))
    b = await body(request, LoginBody)
    account = email_key(b.email)
    limits.spend(limits.login, address, "too many failed logins from this address")
    try:
        limits.spend(limits.login_account, account, "too many failed logins for this account")
    except RateLimited:
        limits.refund(limits.login, address)
        raise
    user = await node.hub.users.by_email(b.email)
    # Verify against a real hash even for unknown e-mails, so that timing does not
    # tell which e-mails are registered.
    stored = user.password_hash if user else node.dummy_hash
    if not await node.auth.verify_password(stored, b.password) or user is None:
        raise Unauthenticated("wrong e-mail or password")
    limits.refund(limits.login, address)
    limits.refund(limits.login_account, account)
    if user.suspended:
        raise Forbidden("account suspended")
    return json_response({"user": user.public(), "token": node.auth.issue(user.id)})


@api
async def me(request: Request) -> Response:
    """The user, with an expert's preferences and verification status."""
    node = node_of(request)
    user = await current_user(request)
    out = {**user.public(), "status": user.status, "phone": user.phone}
    profile = await node.hub.users.profile(user.id)
    if profile is not None:
        out.update(profile.to_wire())
        fresh = await node.hub.users.by_id(user.id)
        out["presence"] = fresh.presence if fresh else user.presence
    return json_response({"user": out})


@api
async def put_preferences(request: Request) -> Response:
    """An expert's title, skills, languages, experience, rate and bio."""
    node = node_of(request)
    user = await current_user(request)
    if user.role != "expert":
        raise Forbidden("only experts have preferences")
    b = await body(request, PreferencesBody)
    old = await node.hub.users.profile(user.id) or Profile()
    # Shown to customers on offers and the public profile: visible text only.
    skills = [clean_name(s, "skills", required=False) for s in b.skills]
    languages = [clean_name(lang, "languages", required=False) for lang in b.languages]
    profile = Profile(
        clean_name(b.title, "title", required=False),
        list(dict.fromkeys(s for s in skills if s)),
        list(dict.fromkeys(lang for lang in languages if lang)),
        b.years_experience,
        b.rate_cents_per_15min,
        clean_text(b.bio, "bio"),
        old.verification_status,
    )
    await node.hub.users.put_profile(user.id, profile, to_ms(node.clock.now()))
    # Matching reads his skills and languages.
    await node.bus.experts_changed([user.id])
    return json_response({"user": {**user.public(), **profile.to_wire()}})


@api
async def list_requests(request: Request) -> Response:
    """A customer's open requests."""
    node = node_of(request)
    user = await current_user(request)
    reqs = await node.hub.requests.open_of_customer(user.id)
    return json_response({"requests": [r.to_wire() for r in reqs]})


@api
async def get_request(request: Request) -> Response:
    """One request, to its customer or to an expert it was offered to."""
    node = node_of(request)
    user = await current_user(request)
    req = await node.hub.requests.get(request.path_params["request_id"])
    if req is None:
        raise NotFound("no such request")
    mine = req.customer_id == user.id or user.role == "manager"
    if not mine and await node.hub.requests.offer(req.id, user.id) is None:
        raise NotFound("no such request")
    return json_response({"request": req.to_wire()})


@api
async def list_offers(request: Request) -> Response:
    """An expert's open offers."""
    node = node_of(request)
    user = await current_user(request)
    state = await node.hub.state(user)
    return json_response({"offers": state["offers"]})


@api
async def list_notifications(request: Request) -> Response:
    """The user's dashboard notifications, newest first (``?unread=1``: unread only)."""
    node = node_of(request)
    user = await current_user(request)
    rows = await node.scheduled.notifications.of_user(
        user.id, unread_only=request.query_params.get("unread") in ("1", "true")
    )
    return json_response({"notifications": [notification_wire(r) for r in rows]})


@api
async def read_notification(request: Request) -> Response:
    """Mark one of the user's notifications read."""
    node = node_of(request)
    user = await current_user(request)
    try:
        nid = int(request.path_params["notification_id"])
    except ValueError:
        raise NotFound("no such notification") from None
    if not 0 < nid < 2**63:
        # Past SQLite's integers (was a 500): no such row can exist.
        raise NotFound("no such notification")
    if not await node.scheduled.notifications.mark_read(user.id, nid, node.clock.now()):
        raise NotFound("no such notification")
    return json_response({})


routes = [
    Route("/api/auth/register", register, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/me/preferences", put_preferences, methods=["PUT"]),
    Route("/api/requests", list_requests, methods=["GET"]),
    Route("/api/requests/{request_id}", get_request, methods=["GET"]),
    Route("/api/offers", list_offers, methods=["GET"]),
    Route("/api/notifications", list_notifications, methods=["GET"]),
    Route("/api/notifications/{notification_id}/read", read_notification, methods=["POST"]),
]
