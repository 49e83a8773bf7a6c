"""What every HTTP route shares: error bodies, JSON bodies, the bearer token."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from rtserver.errors import BadFrame, Forbidden, InvalidField, RtError, Unauthenticated
from rtserver.protocol import field_of, retry_seconds
from rtserver.storage.users import User

if TYPE_CHECKING:
    from rtserver.app import Node

log = logging.getLogger("rtserver.http")

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response encoded by msgspec."""
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def error_response(err: RtError) -> Response:
    """``{"error": {"code", "message"}}`` with the error's HTTP status."""
    body: dict[str, Any] = {"error": err.to_wire()}
    if isinstance(err, InvalidField) and err.field:
        body["error"]["field"] = err.field
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(err, Unauthenticated) else {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(retry_seconds(err.retry_after))
        body["error"]["retry_after"] = retry_seconds(err.retry_after)
    resp = json_response(body, err.status)
    if headers:
        resp.headers.update(headers)
    return resp


def client_address(request: Request) -> str | None:
    """The client's address: the TCP peer, or what a trusted proxy said it was
    (uvicorn rewrites the peer from X-Forwarded-For only for ``--trusted-proxies``)."""
    return request.client.host if request.client else None


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route: 404, wrong method: 405) in the contract's body."""
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code in (404, 405) else "bad_frame"
    if exc.status_code >= 500:
        code = "internal"
    body = {"error": {"code": code, "message": exc.detail or "error"}}
    resp = json_response(body, exc.status_code)
    resp.headers.update(exc.headers or {})
    return resp


Endpoint = Callable[[Request], Awaitable[Response]]


def api(handler: Endpoint) -> Endpoint:
    """Turn :class:`RtError` into contract error bodies; anything else into ``internal``."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except RtError as err:
            return error_response(err)
        except ClientDisconnect:
            raise  # nobody to answer; logged without a traceback by http.bodies.BodyLimit
        except Exception:
            log.exception("unhandled error path=%s", request.url.path)
            return error_response(RtError("internal error"))

    return wrapper


def node_of(request: Request) -> Node:
    """The node serving this app."""
    node: Node = request.app.state.node
    return node


async def body(request: Request, schema: type[T]) -> T:
    """The JSON body validated against ``schema``."""
    raw = await request.body()
    try:
        return msgspec.json.decode(raw, type=schema)
    except msgspec.ValidationError as exc:
        raise InvalidField(str(exc), field_of(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise BadFrame(f"body is not JSON: {exc}") from None


async def current_user(request: Request) -> User:
    """The user named by the bearer token; :class:`Unauthenticated` otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token")
    node = node_of(request)
    user = await node.hub.users.by_id(node.auth.verify(token.strip()))
    if user is None:
        raise Unauthenticated("no such user")
    if user.suspended:
        raise Forbidden("account suspended")
    return user
