"""How much a request may send, counted as it arrives, and a client that leaves mid-request.

:class:`BodyLimit` is plain ASGI middleware around the whole app. Each request
gets the limit of its route (``limits``: the attachment upload's is
``--max-attachment`` plus the multipart framing) or else :data:`MAX_JSON_BODY`.
A ``Content-Length`` over it is answered 413 before a byte of the body is read;
otherwise the ``http.request`` messages are counted as the app reads them,
whatever the headers said (a chunked body declares no length, and h11 ignores
a ``Content-Length`` sent beside ``Transfer-Encoding: chunked``), and the read
that passes the limit raises :class:`BodyTooLarge`: the route answers it like
any :class:`TooLarge` (413 ``too_large``) and stops reading, so nothing past the
limit is buffered or stored. These 413s carry ``Connection: close``: the rest of
the body is not read to reuse the connection (the protocol drops it while closing,
see :mod:`rtserver.http.deadlines`).

A client that goes away before its body is read (starlette's
``ClientDisconnect``, also what a request timed out by :mod:`rtserver.http.deadlines`
ends in) is logged here at info, without a traceback: it is not the server's
failure, and there is nobody left to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rtserver.errors import TooLarge
from rtserver.http.common import error_response

log = logging.getLogger("rtserver.http")

# The largest valid JSON body is a preferences update: a 10,000-character bio,
# 50 skills of 64, 20 languages of 35 and a 200-character title. Sent as UTF-8
# (browsers, httpx, msgspec) it is under 60 KB; with every character escaped
# as a \u surrogate pair (Python's json.dumps default on emoji), about 170 KB.
# 256 KiB takes any valid body in any valid spelling and still bounds what a
# request can make the server hold to a few hundred KiB.
MAX_JSON_BODY = 256 * 1024

_CLOSE = (b"connection", b"close")


class BodyTooLarge(TooLarge):
    """A request body that passed its route's limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request bodies here are at most {limit} bytes")
        self.limit = limit


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


class BodyLimit:
    """Bound every request body while it streams; 413 ``too_large`` at once when over."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int = MAX_JSON_BODY,
        limits: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """``limits`` maps ``(method, path)`` to a route's own limit, in bytes."""
        self.app = app
        self.default = default
        self.limits = dict(limits or {})

    def limit_of(self, scope: Scope) -> int:
        """The body limit of this request's route."""
        return self.limits.get((scope["method"], scope["path"]), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its body counted; anything but HTTP passes through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            log.info(
                "body refused by its length client=%s %s %s length=%d limit=%d",
                _client(scope),
                scope["method"],
                scope["path"],
                declared,
                limit,
            )
            await _too_large(scope, receive, send, BodyTooLarge(limit))
            return

        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            if over:  # the app read on after being told: it gets the same answer
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    log.info(
                        "body over its limit client=%s %s %s read=%d limit=%d",
                        _client(scope),
                        scope["method"],
                        scope["path"],
                        received,
                        limit,
                    )
                    raise BodyTooLarge(limit)
            return message

        async def marked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:
                    # The rest of the body is never read: the connection cannot carry
                    # another request, and saying so spares the client sending it.
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted, marked)
        except BodyTooLarge as exc:  # a route that let it through
            if not started:
                await _too_large(scope, receive, send, exc)
        except ClientDisconnect:
            log.info(
                "client left mid-request client=%s %s %s read=%d",
                _client(scope),
                scope["method"],
                scope["path"],
                received,
            )


async def _too_large(scope: Scope, receive: Receive, send: Send, err: TooLarge) -> None:
    response = error_response(err)
    response.headers["connection"] = "close"
    await response(scope, receive, send)
