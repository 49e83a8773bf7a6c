"""Running a node under uvicorn, with a shutdown that closes sockets with 1001."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from rtserver.config import Settings
from rtserver.http.deadlines import deadline_protocol
from rtserver.http.websocket import LeanWebSocketProtocol

log = logging.getLogger("rtserver.server")


class Server(uvicorn.Server):
    """uvicorn's server, but sockets are closed by us with 1001 before uvicorn's 1012,
    and the server stops when its node dies.

    uvicorn itself goes on serving when the app's lifespan fails after start-up
    (it only logs it): a node whose background task group ended would answer
    every call with an error while looking alive. ``failed`` tells ``run`` to
    exit non-zero, so that a supervisor restarts it.
    """

    failed = False

    def node(self) -> Any:
        """The rtserver node this server serves, if any (under any middleware)."""
        app: Starlette = self.config.loaded_app
        while hasattr(app, "app") and not hasattr(app, "state"):
            app = app.app
        return getattr(getattr(app, "state", None), "node", None)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick (every 0.1 s), and: stop when a part of the node died."""
        should_exit = await super().on_tick(counter)
        node = self.node()
        if not self.failed and node is not None and node.health.fatal is not None:
            log.critical("the node failed (%s): exiting", node.health.fatal)
            self.failed = True
        return should_exit or self.failed

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, close every socket with 1001, then let uvicorn finish."""
        for server in self.servers:
            server.close()
        node = self.node()
        if node is not None:
            log.info("going away: closing %d sockets with 1001", len(node.sockets))
            node.going_away()
            for _ in range(50):
                if not node.sockets:
                    break
                await asyncio.sleep(0.05)
        await super().shutdown(sockets)


class SocketsFirst:
    """The ASGI app uvicorn runs: the app's raw WebSocket endpoints straight, the rest
    through the app.

    Starlette runs every call through its middleware stack (``ServerErrorMiddleware``,
    ``BodyLimit``, ``ExceptionMiddleware``, which wraps ``send`` in one more
    coroutine for the socket's whole life) and its router, which tries every HTTP
    route before ``/ws``: none of them acts on a WebSocket (each passes it through),
    and together they were about 8 % of the server's CPU per socket opened
    (docs/benchmarks.md, issue 9). The endpoints are read from the app's own routes
    (a ``WebSocketRoute`` whose endpoint is an ASGI app, as ``rtserver.ws``'s is), so
    that the app stays the one place that routes. A middleware that must see sockets
    would have to be applied here too.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.sockets: dict[str, ASGIApp] = {
            route.path: route.app
            for route in app.routes
            if isinstance(route, WebSocketRoute) and route.app is route.endpoint
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call."""
        if scope["type"] == "websocket" and (endpoint := self.sockets.get(scope["path"])):
            scope["app"] = self.app  # as Starlette sets it: the endpoint finds the node there
            await endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    """uvicorn settings that carry the contract's socket limits and the request deadlines."""
    return uvicorn.Config(
        SocketsFirst(app),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=deadline_protocol(settings.request_timeout),
        limit_concurrency=settings.max_connections,
        # uvicorn's websockets-sansio protocol, holding less per socket.
        ws=LeanWebSocketProtocol,
        ws_max_size=settings.max_frame,
        # No permessage-deflate: browsers offer it on every socket, and with it each
        # socket holds a zlib compressor and decompressor (+40 KB, and +0.55 ms of
        # CPU to open it) for frames mostly too small to shrink (docs/benchmarks.md).
        ws_per_message_deflate=False,
        ws_ping_interval=settings.heartbeat,
        ws_ping_timeout=settings.heartbeat,
        # X-Forwarded-For picks whose rate limits are spent: believed only from the
        # proxies named by --trusted-proxies (uvicorn's default trusts 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        log_config=None,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )


# Young-generation collections every 50,000 net container allocations, not 700.
# Each command allocates a few dozen short-lived containers, nearly all freed by
# reference counting; at 700, the hundreds of commands in flight push the count
# over the line again and again, their live frames get promoted, and full
# collections of the whole heap (every socket, session and cached row) follow
# every few seconds: about 50 of 365 µs of server CPU per W2 round trip
# (docs/benchmarks.md, issue 9). At 50,000 the count is reached only while the
# heap really grows.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up made and collect less often (see ``GC_THRESHOLDS``).

    Modules, the app and the node live as long as the process: frozen, the
    collector never walks them again. For the serving process only (``run``); a
    test process that starts nodes in its own loop keeps Python's defaults.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(app: Starlette, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    tune_gc()
    server = Server(uvicorn_config(app, settings))
    server.run()
    if server.failed:
        sys.exit(1)
