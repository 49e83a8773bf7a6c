"""Operations: health, metrics, the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rtserver import __version__
from rtserver.core.payout_profile import PayoutProfileBody
from rtserver.errors import RtError
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
    """200 while the node's essential parts work; 503 with the parts failing past the grace.

    Essential: every background loop (rtserver.health.supervise); a loop that
    died is listed at once (and the node is exiting).
    """
    node = node_of(request)
    failing = node.health.failing()
    if failing:
        body = {"status": "unhealthy", "node": node.settings.node_id, "failing": failing}
        return json_response(body, status=503)
    return json_response({"status": "ok", "node": node.settings.node_id})


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        node_of(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


# The error statuses an operation may answer, by what it takes. Each is the
# contract's ``Error`` body; a status not listed here is a bug (the fuzz tests
# in tests/test_fuzz_http.py hold the server to this list).
_AUTH_ERRORS = ("401", "403")  # no or a bad token; a suspended account
_BODY_ERRORS = ("400", "413", "422")  # not JSON; over the body limit; a bad field
_PARAM_ERRORS = ("404",)  # no such object, or not the caller's
_QUERY_ERRORS = ("422",)  # a bad limit, cursor, status, ...
# Any /api call may be rate limited (429), or find the database or Redis busy past
# its bound (503, with Retry-After where known): nothing was done, try again.
_API_ERRORS = ("429", "503")


def _op(
    summary: str,
    body: str | None = None,
    *,
    body_media: str = "application/json",
    auth: bool = True,
    ok: str = "200",
    params: tuple[str, ...] = (),
    query: tuple[str, ...] = (),
    idempotent: bool = False,
    media: tuple[str, ...] = ("application/json",),
    result: str | None = None,
    errors: tuple[str, ...] = (),
    api_call: bool = True,
) -> dict[str, Any]:
    """One operation: its body, parameters, success media types and error statuses.

    ``result`` names the success body's schema (any JSON object when absent);
    ``errors`` adds statuses its shape does not imply (409 for a conflict, 403
    for a role it refuses when it takes no token); ``api_call`` is false for
    health and metrics, which no rate limit and no database stand behind.
    """
    ok_schema = {"$ref": f"#/components/schemas/{result}"} if result else {"type": "object"}
    statuses = set(errors)
    statuses.update(_AUTH_ERRORS if auth else ())
    statuses.update(_BODY_ERRORS if body else ())
    statuses.update(_PARAM_ERRORS if params else ())
    statuses.update(_QUERY_ERRORS if query or idempotent else ())
    statuses.update(_API_ERRORS if api_call else ())
    responses: dict[str, Any] = {
        ok: {
            "description": "success",
            "content": {m: {"schema": ok_schema} if m == "application/json" else {} for m in media},
        }
    }
    for status in sorted(statuses):
        responses[status] = {"$ref": "#/components/responses/Error"}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {body_media: {"schema": {"$ref": f"#/components/schemas/{body}"}}},
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


def _error_codes() -> list[str]:
    """Every contract code an error may carry, from the one exception tree."""
    codes: set[str] = set()
    todo: list[type[RtError]] = [RtError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo.extend(cls.__subclasses__())
    return sorted(codes)


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
                "properties": {
                    "code": {"type": "string", "enum": _error_codes()},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "the invalid field, if known"},
                    "retry_after": {
                        "type": "integer",
                        "description": "seconds after which the same call may succeed",
                    },
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    }
    components["Upload"] = {
        "type": "object",
        "properties": {
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "session_id": {"type": "string"},
            "request_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["file", "recording"]},
        },
        "required": ["file"],
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
            "responses": {
                "Error": {
                    "description": "error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
        "paths": {
            "/api/auth/register": {
                "post": _op(
                    "Create a customer or expert account",
                    "RegisterBody",
                    auth=False,
                    ok="201",
                    errors=("403", "409"),  # role manager; an e-mail already registered
                )
            },
            "/api/auth/login": {
                "post": _op("Log in", "LoginBody", auth=False, errors=("401", "403"))
            },
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
                    errors=("409",),
                )
            },
            "/api/sessions/{session_id}/review": {
                "post": _op(
                    "The customer rates the session, once",
                    "ReviewBody",
                    ok="201",
                    params=("session_id",),
                    idempotent=True,
                    errors=("409",),
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
                    errors=("409",),
                )
            },
            "/api/claims/{claim_id}/decision": {
                "post": _op(
                    "A manager decides a claim (refund, deny, no_fault); final",
                    "DecisionBody",
                    params=("claim_id",),
                    idempotent=True,
                    errors=("409",),
                )
            },
            "/api/me/statements": {
                "get": _op("My Earnings and Session Summary, per UTC month", query=("year",))
            },
            "/api/me/transactions": {
                "get": _op(
                    "The Transaction Record with running balance (format=csv: all rows)",
                    query=("cursor", "limit", "format"),
                    media=("application/json", "text/csv"),
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
                "post": _op(
                    "A manager suspends an account",
                    "SuspendBody",
                    params=("user_id",),
                    errors=("409",),  # himself
                )
            },
            "/api/users/{user_id}/restore": {
                "post": _op(
                    "A manager restores an account",
                    "RestoreBody",
                    params=("user_id",),
                    errors=("409",),  # himself
                )
            },
            "/api/audit": {"get": _op("The managers' audit log", query=("cursor", "limit"))},
            "/api/payouts/run": {
                "post": _op("A manager pays out one ended month", "PayoutRunBody", idempotent=True)
            },
            "/api/payouts": {"get": _op("Payouts, for managers", query=("month",))},
            "/api/dead-letters": {
                "get": _op(
                    "Managers: timers that failed their last try (outbox messages with their"
                    " address), newest first",
                    query=("status", "cursor", "limit"),
                )
            },
            "/api/dead-letters/{dead_letter_id}/retry": {
                "post": _op(
                    "A manager schedules a dead letter's timer again, due now",
                    params=("dead_letter_id",),
                    errors=("409",),  # retried already
                )
            },
            "/api/notifications": {
                "get": _op(
                    "The user's notifications (reminders, claims, reviews, payouts)",
                    query=("unread",),
                )
            },
            "/api/notifications/{notification_id}/read": {
                "post": _op("Mark a notification read", params=("notification_id",))
            },
            "/api/attachments": {
                "post": _op(
                    "Upload an attachment",
                    "Upload",
                    body_media="multipart/form-data",
                    ok="201",
                    errors=("404",),  # the session or request is not the caller's
                )
            },
            "/api/attachments/{attachment_id}": {
                "get": _op("An attachment's bytes", params=("attachment_id",), media=("*/*",))
            },
            "/healthz": {"get": _health_op()},
            "/metrics": {
                "get": _op("Prometheus metrics", auth=False, media=("text/plain",), api_call=False)
            },
        },
    }


_HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "node"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unhealthy"]},
        "node": {"type": "string"},
        "failing": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "part": {"type": "string"},
                    "dead": {"type": "boolean"},
                    "seconds": {"type": "number"},
                    "errors": {"type": "integer"},
                    "error": {"type": "string"},
                },
            },
        },
    },
}


def _health_op() -> dict[str, Any]:
    """``/healthz``: its 503 carries the parts failing, not the error body."""
    op = _op(
        "Health: 200, or 503 with the parts failing (docs/protocol.md)",
        auth=False,
        api_call=False,
    )
    content = {"application/json": {"schema": _HEALTH_SCHEMA}}
    op["responses"]["200"] = {"description": "healthy", "content": content}
    op["responses"]["503"] = {"description": "a part is failing or dead", "content": content}
    return op


async def openapi(request: Request) -> Response:
    """``/openapi.json``."""
    return json_response(openapi_document())


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
