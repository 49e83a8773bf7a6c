"""The browser client: ``/`` serves ``static/index.html``, ``/static/...`` its ES modules.

The files live inside the package (``rtserver/static``), so a wheel install serves
them too. There is no build step: the browser loads the modules as they are. Every
answer says ``Cache-Control: no-cache`` (the browser revalidates with the ETag, so an
upgraded server is never mixed with stale modules), and every answer carries a strict
Content-Security-Policy: scripts, styles and connections from this origin only (its
WebSocket named too: ``'self'`` covers ``ws:``/``wss:`` only in CSP Level 3 browsers),
and no framing by any page (``frame-ancestors 'none'``, and ``X-Frame-Options`` for
browsers older than CSP 2).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# A Host header fit to name in a source expression: a name or an address, and a port.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def csp(host: str | None = None) -> str:
    """The page's policy; with its ``host``, the page's own WebSocket named in ``connect-src``."""
    connect = "connect-src 'self'"
    if host and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            connect,
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )


CSP = csp()
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
}


class _Static(StaticFiles):
    """StaticFiles whose answers must be revalidated (the module names carry no hash)."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        return response


async def index(request: Request) -> Response:
    """``GET /``: the single page; the modules it loads come from ``/static``."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**HEADERS, "Content-Security-Policy": csp(request.headers.get("host"))},
    )


routes: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Mount("/static", app=_Static(directory=STATIC_DIR), name="static"),
]
