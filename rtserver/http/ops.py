"""Operations: health, metrics, the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtserver import __version__
from rtserver.core.payout_profile import PayoutProfileBody
from rtserver.http.common import json_response, node_of
from rtserver.schemas import (
    ClaimBody,
    DecisionBody,
    DisputeBody,
    LoginBody,
    PayoutRunBody,
    PhoneBody,
    PreferencesBody,
    RegisterBody,
    RestoreBody,
    ReviewBody,
    SuspendBody,
    VerificationBody,
)


async def healthz(request: Request) -> Response:
    """Liveness: the process serves HTTP."""
    return json_response({"status": "ok", "node": node_of(request).settings.node_id})


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        node_of(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


def _op(
    summary: str,
    body: str | None = None,
    *,
    auth: bool = True,
    ok: str = "200",
    params: tuple[str, ...] = (),
    query: tuple[str, ...] = (),
    idempotent: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if auth:
        op["security"] = [{"bearer": []}]
    parameters: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
    ]
    parameters += [
        {"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query
    ]
    if idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "The same key and body answer the first result and move "
                "nothing twice; the same key with another body is refused (422).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if parameters:
        op["parameters"] = parameters
    return op


def openapi_document() -> dict[str, Any]:
    """The whole HTTP API, bodies generated from the same schemas that validate them."""
    _, components = msgspec.json.schema_components(
        [
            RegisterBody,
            LoginBody,
            PreferencesBody,
            ClaimBody,
            DisputeBody,
            DecisionBody,
            ReviewBody,
            PhoneBody,
            VerificationBody,
            SuspendBody,
            RestoreBody,
            PayoutRunBody,
            PayoutProfileBody,
        ],
        ref_template="#/components/schemas/{name}",
    )
    components["Error"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "rtserver",
            "version": __version__,
            "description": "Real-time server for live-help marketplaces. The WebSocket "
            "protocol at /ws is described in docs/protocol.md.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/auth/register": {
                "post": _op(
                    "Create a customer or expert account", "RegisterBody", auth=False, ok="201"
                )
            },
            "/api/auth/login": {"post": _op("Log in", "LoginBody", auth=False)},
            "/api/me": {"get": _op("The user, with an expert's preferences")},
            "/api/me/preferences": {"put": _op("Set an expert's preferences", "PreferencesBody")},
            "/api/requests": {"get": _op("The customer's open requests")},
            "/api/requests/{request_id}": {
                "get": _op(
                    "One request (its customer, or an expert it was offered to)",
                    params=("request_id",),
                )
            },
            "/api/offers": {"get": _op("The expert's open offers")},
            "/api/sessions": {
                "get": _op(
                    "Session History: the user's sessions (managers: all), newest first",
                    query=("status", "disputed", "user_id", "cursor", "limit"),
                )
            },
            "/api/sessions/{session_id}": {
                "get": _op(
                    "View Details: people, times, money, files, code, claim, review, ledger",
                    params=("session_id",),
                )
            },
            "/api/sessions/{session_id}/messages": {
                "get": _op(
                    "A page of the transcript, by seq",
                    params=("session_id",),
                    query=("after_seq", "limit"),
                )
            },
            "/api/sessions/{session_id}/refund-claim": {
                "post": _op(
                    "The customer claims a refund",
                    "ClaimBody",
                    ok="201",
                    params=("session_id",),
                    idempotent=True,
                )
            },
            "/api/sessions/{session_id}/review": {
                "post": _op(
                    "The customer rates the session, once",
                    "ReviewBody",
                    ok="201",
                    params=("session_id",),
                    idempotent=True,
                )
            },
            "/api/claims": {
                "get": _op(
                    "Managers: the claims queue, oldest first; others: their own claims",
                    query=("status", "cursor", "limit"),
                )
            },
            "/api/claims/{claim_id}": {"get": _op("One refund claim", params=("claim_id",))},
            "/api/claims/{claim_id}/dispute": {
                "post": _op(
                    "The expert disputes a claim",
                    "DisputeBody",
                    params=("claim_id",),
                    idempotent=True,
                )
            },
            "/api/claims/{claim_id}/decision": {
                "post": _op(
                    "A manager decides a claim (refund, deny, no_fault); final",
                    "DecisionBody",
                    params=("claim_id",),
                    idempotent=True,
                )
            },
            "/api/me/statements": {
                "get": _op("My Earnings and Session Summary, per UTC month", query=("year",))
            },
            "/api/me/transactions": {
                "get": _op(
                    "The Transaction Record with running balance (format=csv: all rows)",
                    query=("cursor", "limit", "format"),
                )
            },
            "/api/me/payout-profile": {
                "get": _op("The expert's payout profile, masked"),
                "put": _op("Save parts of the payout profile", "PayoutProfileBody"),
            },
            "/api/me/payouts": {"get": _op("The expert's payouts")},
            "/api/me/phone": {"put": _op("Set or remove the phone number for texts", "PhoneBody")},
            "/api/experts": {
                "get": _op("Public expert profiles", auth=False, query=("skill", "language"))
            },
            "/api/experts/{user_id}": {
                "get": _op("An expert's public profile", auth=False, params=("user_id",))
            },
            "/api/experts/{user_id}/reviews": {
                "get": _op(
                    "An expert's reviews",
                    auth=False,
                    params=("user_id",),
                    query=("cursor", "limit"),
                )
            },
            "/api/experts/{user_id}/verification": {
                "put": _op("A manager sets verification", "VerificationBody", params=("user_id",))
            },
            "/api/users": {
                "get": _op(
                    "Accounts, for managers", query=("role", "status", "q", "cursor", "limit")
                )
            },
            "/api/users/{user_id}/suspend": {
                "post": _op("A manager suspends an account", "SuspendBody", params=("user_id",))
            },
            "/api/users/{user_id}/restore": {
                "post": _op("A manager restores an account", "RestoreBody", params=("user_id",))
            },
            "/api/audit": {"get": _op("The managers' audit log", query=("cursor", "limit"))},
            "/api/payouts/run": {
                "post": _op("A manager pays out one ended month", "PayoutRunBody", idempotent=True)
            },
            "/api/payouts": {"get": _op("Payouts, for managers", query=("month",))},
            "/api/notifications": {
                "get": _op(
                    "The user's notifications (reminders, claims, reviews, payouts)",
                    query=("unread",),
                )
            },
            "/api/notifications/{notification_id}/read": {
                "post": _op("Mark a notification read", params=("notification_id",))
            },
            "/api/attachments": {"post": _op("Upload an attachment (multipart)", ok="201")},
            "/api/attachments/{attachment_id}": {
                "get": _op("An attachment's bytes", params=("attachment_id",))
            },
            "/healthz": {"get": _op("Liveness", auth=False)},
            "/metrics": {"get": _op("Prometheus metrics", auth=False)},
        },
    }


async def openapi(request: Request) -> Response:
    """``/openapi.json``."""
    return json_response(openapi_document())


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
