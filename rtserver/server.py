"""Running a node under uvicorn, with a shutdown that closes sockets with 1001."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from starlette.applications import Starlette

from rtserver.config import Settings

log = logging.getLogger("rtserver.server")


class Server(uvicorn.Server):
    """uvicorn's server, but sockets are closed by us with 1001 before uvicorn's 1012."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, close every socket with 1001, then let uvicorn finish."""
        for server in self.servers:
            server.close()
        app: Starlette = self.config.loaded_app
        while hasattr(app, "app") and not hasattr(app, "state"):
            app = app.app
        node = getattr(getattr(app, "state", None), "node", None)
        if node is not None:
            log.info("going away: closing %d sockets with 1001", len(node.sockets))
            node.going_away()
            for _ in range(50):
                if not node.sockets:
                    break
                await asyncio.sleep(0.05)
        await super().shutdown(sockets)


def uvicorn_config(app: Starlette, settings: Settings) -> uvicorn.Config:
    """uvicorn settings that carry the contract's socket limits."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        ws="websockets-sansio",
        ws_max_size=settings.max_frame,
        ws_ping_interval=settings.heartbeat,
        ws_ping_timeout=settings.heartbeat,
        log_config=None,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )


def run(app: Starlette, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    server = Server(uvicorn_config(app, settings))
    server.run()
