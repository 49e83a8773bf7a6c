"""The one exception tree of rtclient.

::

    RtError                        every error this package raises
    ├── CallError                  the server answered with an error (socket or HTTP alike):
    │   │                          ``code``, ``message``, ``field``, ``retry_after``, ``status``
    │   ├── BadFrame               bad_frame
    │   ├── UnknownType            unknown_type
    │   ├── InvalidField           invalid_field (``field`` names it)
    │   ├── Unauthenticated        unauthenticated (HTTP 401)
    │   ├── Forbidden              forbidden (HTTP 403)
    │   ├── NotFound               not_found (HTTP 404)
    │   ├── Conflict               the request closed before this command
    │   │   ├── OfferTaken         offer_taken
    │   │   ├── OfferExpired       offer_expired
    │   │   └── RequestCancelled   request_cancelled
    │   ├── InvalidState           invalid_state (HTTP 409)
    │   ├── RateLimited            rate_limited (HTTP 429; ``retry_after``)
    │   ├── TooLarge               too_large (HTTP 413)
    │   └── Internal               internal (HTTP 5xx), or a 5xx whose body is not ours
    ├── TransportError             no answer: the command may or may not have been carried out
    │   ├── Disconnected           the socket closed before the reply came
    │   ├── ReplyTimeout           no reply within the timeout
    │   └── HttpTransportError     the HTTP request failed (connect, read, ...)
    ├── ClientClosed               the client stopped for good; commands fail at once
    │   ├── AuthFailed             4401 or a refused hello: the token is no longer valid
    │   └── AccountSuspended       4403: a manager suspended the account; never reconnect
    └── OutboxFull                 the bounded outbox holds ``maxsize`` unsent messages

A code this version does not know becomes a plain :class:`CallError` with that
``code``, so that a newer server never breaks an older client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RtError(Exception):
    """Base of every error rtclient raises."""


class CallError(RtError):
    """The server answered a command (or an HTTP call) with an error.

    ``status`` is the HTTP status for HTTP answers and None over the socket;
    ``retry_after`` (seconds) is set for errors that may pass with time.
    """

    code = "internal"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.message = message or self.code.replace("_", " ")
        super().__init__(f"{self.code}: {self.message}")
        self.field = field
        self.retry_after = retry_after
        self.status = status


class BadFrame(CallError):
    """A frame the server could not read (undecodable, not a map, no type, bad id)."""

    code = "bad_frame"


class UnknownType(CallError):
    """A command type the server does not know."""

    code = "unknown_type"


class InvalidField(CallError):
    """A missing or invalid field; ``field`` names it when the server said."""

    code = "invalid_field"


class Unauthenticated(CallError):
    """No valid credentials (a wrong password, an expired token)."""

    code = "unauthenticated"


class Forbidden(CallError):
    """Authenticated, but not allowed (the wrong role, a suspended account)."""

    code = "forbidden"


class NotFound(CallError):
    """No such object, or none this user may see."""

    code = "not_found"


class Conflict(CallError):
    """The request was closed (taken, expired, cancelled) before this command."""


class OfferTaken(Conflict):
    """Another expert accepted first."""

    code = "offer_taken"


class OfferExpired(Conflict):
    """The offer ran out of time."""

    code = "offer_expired"


class RequestCancelled(Conflict):
    """The customer cancelled the request."""

    code = "request_cancelled"


class InvalidState(CallError):
    """The object is not in a state that allows this (an ended session)."""

    code = "invalid_state"


class RateLimited(CallError):
    """Too many at once; ``retry_after`` says when to try again."""

    code = "rate_limited"


class TooLarge(CallError):
    """A payload over its limit."""

    code = "too_large"


class Internal(CallError):
    """The server failed; trying again later may succeed."""

    code = "internal"


class TransportError(RtError):
    """No answer came: the command may or may not have been carried out."""


class Disconnected(TransportError):
    """The socket closed before the reply came."""


class ReplyTimeout(TransportError):
    """No reply within the timeout."""


class HttpTransportError(TransportError):
    """The HTTP request failed before an answer (connect, read, ...)."""


class ClientClosed(RtError):
    """The client stopped for good (closed, or refused by the server)."""

    def __init__(self, message: str = "the client is closed", close_code: int | None = None):
        super().__init__(message)
        self.close_code = close_code


class AuthFailed(ClientClosed):
    """The server refused the token (4401, or an ``unauthenticated`` hello): log in again."""


class AccountSuspended(ClientClosed):
    """The account was suspended (4403): do not reconnect."""


class OutboxFull(RtError):
    """The outbox already holds its ``maxsize`` unsent messages."""


ERRORS_BY_CODE: dict[str, type[CallError]] = {
    cls.code: cls
    for cls in (
        BadFrame,
        UnknownType,
        InvalidField,
        Unauthenticated,
        Forbidden,
        NotFound,
        OfferTaken,
        OfferExpired,
        RequestCancelled,
        InvalidState,
        RateLimited,
        TooLarge,
        Internal,
    )
}


def error_from_wire(body: Mapping[str, Any], status: int | None = None) -> CallError:
    """The exception for an ``error`` frame or an HTTP error body's ``error`` map.

    Unknown codes give a plain :class:`CallError` carrying the code.
    """
    code = str(body.get("code") or "internal")
    cls = ERRORS_BY_CODE.get(code, CallError)
    retry = body.get("retry_after")
    field = body.get("field")
    return cls(
        str(body.get("message") or ""),
        code=code,
        field=str(field) if field is not None else None,
        retry_after=float(retry) if isinstance(retry, int | float) else None,
        status=status,
    )


def error_from_http(status: int, body: Any, retry_after_header: str | None = None) -> CallError:
    """The exception for an HTTP error answer (any status >= 400).

    The body is the server's ``{"error": {...}}``; anything else (a proxy's page)
    is mapped by status alone.
    """
    inner = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(inner, Mapping):
        err = error_from_wire(inner, status)
    else:
        code = {
            400: "bad_frame",
            401: "unauthenticated",
            403: "forbidden",
            404: "not_found",
            409: "invalid_state",
            413: "too_large",
            422: "invalid_field",
            429: "rate_limited",
        }.get(status, "internal")
        err = ERRORS_BY_CODE[code](f"HTTP {status}", code=code, status=status)
    if err.retry_after is None and retry_after_header and retry_after_header.isdigit():
        err.retry_after = float(retry_after_header)
    return err
