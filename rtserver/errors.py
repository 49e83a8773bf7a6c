"""The one exception tree of rtserver.

::

    RtError                      every error a client may be answered with
    ├── BadFrame                 bad_frame: undecodable, not a map, no type, bad id
    ├── UnknownType              unknown_type
    ├── InvalidField             invalid_field (carries ``field``)
    │   └── AlreadyExists        invalid_field, HTTP 409 (an e-mail already registered)
    ├── Unauthenticated          unauthenticated (HTTP 401)
    ├── Forbidden                forbidden (HTTP 403)
    ├── NotFound                 not_found (HTTP 404)
    ├── Conflict                 the request was closed before this command
    │   ├── OfferTaken           offer_taken
    │   ├── OfferExpired         offer_expired
    │   └── RequestCancelled     request_cancelled
    ├── InvalidState             invalid_state (HTTP 409)
    ├── RateLimited              rate_limited (HTTP 429, Retry-After)
    ├── TooLarge                 too_large (HTTP 413)
    └── Internal                 internal (HTTP 500)
        ├── Busy                 internal, HTTP 503 + Retry-After (the database write lock
        │                        was held too long by another process)
        └── Unavailable          internal, HTTP 503: the bus (Redis) failed or did not
                                 answer in --redis-timeout; try again

Each carries its contract ``code``, a human ``message`` and the HTTP ``status``
used when the same error is answered over HTTP; ``retry_after`` (seconds), when
set, becomes the ``Retry-After`` header and the error frame's ``retry_after``.
"""

from __future__ import annotations


class RtError(Exception):
    """Base of every error that is answered to a client with a contract code."""

    code = "internal"
    status = 500
    # Seconds after which trying again may succeed (rate limits, a busy database).
    retry_after: float | None = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.message = message or self.code.replace("_", " ")

    def to_wire(self) -> dict[str, str]:
        """The ``{code, message}`` pair sent in error frames and HTTP bodies."""
        return {"code": self.code, "message": self.message}


class BadFrame(RtError):
    """A frame that does not decode, is not a map, or has no valid type or id."""

    code = "bad_frame"
    status = 400


class UnknownType(RtError):
    """A frame whose ``type`` is not a known command."""

    code = "unknown_type"
    status = 400


class InvalidField(RtError):
    """A known command with a missing or invalid field."""

    code = "invalid_field"
    status = 422

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AlreadyExists(InvalidField):
    """A unique value (an e-mail) that is already taken."""

    status = 409


class Unauthenticated(RtError):
    """No valid credentials."""

    code = "unauthenticated"
    status = 401


class Forbidden(RtError):
    """Authenticated, but not allowed to do this."""

    code = "forbidden"
    status = 403


class NotFound(RtError):
    """No such object, or not one this user may see."""

    code = "not_found"
    status = 404


class Conflict(RtError):
    """The request was closed (taken, expired, cancelled) before this command."""

    status = 409


class OfferTaken(Conflict):
    """Another expert accepted first."""

    code = "offer_taken"


class OfferExpired(Conflict):
    """The offer (or its request) ran out of time."""

    code = "offer_expired"


class RequestCancelled(Conflict):
    """The customer cancelled the request."""

    code = "request_cancelled"


class InvalidState(RtError):
    """The object is not in a state that allows this command."""

    code = "invalid_state"
    status = 409


class RateLimited(RtError):
    """Too many commands or messages in too short a time."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(RtError):
    """A payload over its size limit."""

    code = "too_large"
    status = 413


class Internal(RtError):
    """A failure of the server itself; details are in its log."""

    code = "internal"
    status = 500


class Busy(Internal):
    """The database's write lock stayed held by another process past ``--lock-wait``."""

    status = 503

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Internal):
    """The bus (Redis) failed or did not answer within ``--redis-timeout``.

    Trying again is safe: a claim that Redis runs late (it was hung) holds the
    same decision, which the retry recognizes and writes (``Hub._close``). The
    code stays the contract's ``internal``.
    """

    status = 503
