"""Logging: named loggers (``rtserver.hub``, ...), one line per event, UTC times."""

from __future__ import annotations

import logging
import sys
import time


def configure(level: str = "info") -> None:
    """Send rtserver's and uvicorn's logs to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
