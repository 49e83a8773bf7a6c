"""Operations: health, metrics, the OpenAPI document, the browser client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from rtserver import __version__
from rtserver.http.common import json_response, node_of
from rtserver.schemas import LoginBody, PreferencesBody, RegisterBody

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"


async def healthz(request: Request) -> Response:
    """Liveness: the process serves HTTP."""
    return json_response({"status": "ok", "node": node_of(request).settings.node_id})


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        node_of(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def index(request: Request) -> Response:
    """The browser client."""
    page = CLIENT_DIR / "index.html"
    if not page.is_file():
        return PlainTextResponse("browser client not installed (clients/web/index.html)", 404)
    return FileResponse(page, media_type="text/html")


def _op(
    summary: str,
    body: str | None = None,
    *,
    auth: bool = True,
    ok: str = "200",
    params: tuple[str, ...] = (),
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
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    return op


def openapi_document() -> dict[str, Any]:
    """The whole HTTP API, bodies generated from the same schemas that validate them."""
    _, components = msgspec.json.schema_components(
        [RegisterBody, LoginBody, PreferencesBody], ref_template="#/components/schemas/{name}"
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
            "/api/sessions/{session_id}": {
                "get": _op("One session (its participants)", params=("session_id",))
            },
            "/api/notifications": {"get": _op("The user's notifications (reminders)")},
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
    Route("/", index, methods=["GET"]),
]
