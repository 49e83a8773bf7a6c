"""The node's health: which of its parts are failing, and the loops that keep them going.

Every background loop of a node (the bus reader, its outbox and presence
heartbeat, the timer loop, the transcript flusher, the database watch) runs
under :func:`supervise`. A loop survives every ``Exception`` its work raises
(a Redis ``OOM``, ``READONLY`` or ``NOAUTH``, a timeout, a locked database):
it is logged once per outage, counted in ``rt_loop_errors_total{loop}``, and
the loop backs off (with jitter) and tries again; each loop catches up on what
it may have missed when it recovers (the bus reader checks its stream for a
gap and re-sends ``state``, the heartbeat rewrites the node's presence).

:class:`Health` keeps, per part, whether it is failing and since when.
``/healthz`` answers 503 while a watched part has been failing for longer than
the grace (``--health-grace``), or has died. A part dies only when an error
gets past its loop's handling: :class:`FatalError` (the database file is
gone), a ``BaseException`` other than cancellation, or a bug in the loop
itself. A dead part makes the node exit (``server.Server``) instead of serving
errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from rtserver.core.retry import RetryPolicy
from rtserver.metrics import Metrics

log = logging.getLogger("rtserver.health")

# A loop's retries start this soon after a failure and double up to the cap:
# quick to recover from a blip, and at most one attempt per loop every few
# seconds against a Redis or a disk that is down.
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0


class FatalError(Exception):
    """A part of the node cannot go on (its database file is gone): the node must stop."""


class Backoff:
    """The delays of one loop's retries: :class:`rtserver.core.retry.RetryPolicy`'s
    doubling with jitter in ``[d/2, d]``, counted from the last success, never retired.

    The jitter keeps the nodes of a cluster from retrying against a Redis that
    comes back all at the same instant.
    """

    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> None:
        # A loop is never retired: it keeps trying (attempts past any count).
        self.policy = RetryPolicy(base=base, cap=cap, attempts=2**62)
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (and double the one after)."""
        self.failures += 1
        delay = self.policy.delay(self.failures)
        assert delay is not None
        return delay

    def reset(self) -> None:
        """The last attempt succeeded: start again from the base."""
        self.failures = 0


@dataclass(slots=True)
class _Part:
    watched: bool = False
    failing_since: float | None = None
    errors: int = 0
    last_error: str = ""
    dead: bool = False


def _describe(exc: BaseException) -> str:
    text = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else repr(exc))
    return f"{type(exc).__name__}: {text}"[:300]


class Health:
    """Which parts of this node are failing, since when, and whether one died.

    Any part may be reported (a command's Redis call, ``bus.claim``), so that
    an outage is logged once and its recovery once; only *watched* parts, the
    background loops run by :func:`supervise`, decide ``/healthz``.
    """

    def __init__(
        self,
        node_id: str,
        metrics: Metrics | None = None,
        *,
        grace: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.metrics = metrics
        self.grace = grace
        self.clock = clock
        self._parts: dict[str, _Part] = {}
        self.fatal: BaseException | None = None

    def _part(self, name: str) -> _Part:
        part = self._parts.get(name)
        if part is None:
            part = self._parts[name] = _Part()
        return part

    def watch(self, name: str) -> None:
        """``name`` is essential: while it fails past the grace, the node is unhealthy."""
        self._part(name).watched = True

    def ok(self, name: str) -> None:
        """``name`` just worked: an outage of it, if any, is over."""
        part = self._parts.get(name)
        if part is None or part.failing_since is None:
            return
        log.info(
            "%s recovered node=%s after %d errors in %.1f s",
            name,
            self.node_id,
            part.errors,
            self.clock() - part.failing_since,
        )
        part.failing_since = None
        part.errors = 0
        if self.metrics is not None:
            self.metrics.part_failing(name, False)

    def failed(self, name: str, exc: BaseException) -> None:
        """``name`` just failed: logged (with its traceback) only at the start of an outage."""
        part = self._part(name)
        part.errors += 1
        part.last_error = _describe(exc)
        if part.failing_since is not None:
            return
        part.failing_since = self.clock()
        log.warning("%s failing node=%s: %s", name, self.node_id, part.last_error, exc_info=exc)
        if self.metrics is not None:
            self.metrics.part_failing(name, True)

    def died(self, name: str, exc: BaseException) -> None:
        """``name`` stopped for good: the node is unhealthy and must exit."""
        part = self._part(name)
        part.watched = part.dead = True
        part.last_error = _describe(exc)
        if part.failing_since is None:
            part.failing_since = self.clock()
        if self.fatal is None:
            self.fatal = exc
        log.critical("%s died node=%s: %s", name, self.node_id, part.last_error, exc_info=exc)
        if self.metrics is not None:
            self.metrics.part_failing(name, True)

    def failing(self) -> list[dict[str, Any]]:
        """The watched parts dead, or failing for longer than the grace, for ``/healthz``."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        for name, part in sorted(self._parts.items()):
            if not part.watched or part.failing_since is None:
                continue
            seconds = now - part.failing_since
            if part.dead or seconds >= self.grace:
                out.append(
                    {
                        "part": name,
                        "dead": part.dead,
                        "seconds": round(seconds, 1),
                        "errors": part.errors,
                        "error": part.last_error,
                    }
                )
        return out


async def supervise(
    health: Health,
    name: str,
    step: Callable[[], Awaitable[bool | None]],
    *,
    every: float = 0.0,
    backoff: Backoff | None = None,
) -> None:
    """Run ``step`` again and again, surviving its errors, until it returns False.

    After a successful step the loop waits ``every`` seconds; after a failed
    one it backs off. A step that returns False ends the loop (its input was
    closed). :class:`FatalError` and any other ``BaseException`` (but
    cancellation, which simply ends the loop) mark the part dead and propagate,
    so the node's task group fails and the node exits.
    """
    health.watch(name)
    delay = backoff or Backoff()
    try:
        while True:
            try:
                more = await step()
            except FatalError:
                raise
            except Exception as exc:
                health.failed(name, exc)
                if health.metrics is not None:
                    health.metrics.loop_error(name)
                await anyio.sleep(delay.next())
                continue
            health.ok(name)
            delay.reset()
            if more is False:
                return
            if every > 0:
                await anyio.sleep(every)
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException as exc:
        health.died(name, exc)
        raise
