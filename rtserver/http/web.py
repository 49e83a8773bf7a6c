"""The browser client: ``/`` serves ``static/index.html``, ``/static/...`` its ES modules.

The files live inside the package (``rtserver/static``), so a wheel install serves
them too. There is no build step: the browser loads the modules as they are. Every
answer says ``Cache-Control: no-cache`` (the browser revalidates with the ETag, so an
upgraded server is never mixed with stale modules), and the page carries a strict
Content-Security-Policy: scripts, styles and connections from this origin only.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
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
        headers={**HEADERS, "Content-Security-Policy": CSP},
    )


routes: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Mount("/static", app=_Static(directory=STATIC_DIR), name="static"),
]
