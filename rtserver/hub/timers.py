"""The node's timer loop: finds due durable timers, claims each, runs its handler.

Every node runs one. A timer fires on exactly one node (the lease in
:class:`rtserver.storage.timers.TimerStore`); a node that was down when a
timer fell due runs it when it is back, if no other node did. A timer
scheduled on this node wakes the loop at once; one scheduled on another node
is seen within ``poll`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from rtserver.clock import Clock, to_ms
from rtserver.metrics import Metrics
from rtserver.storage.timers import TimerStore

log = logging.getLogger("rtserver.timers")

Handler = Callable[[str], Awaitable[None]]


class TimerLoop:
    """Runs due timers of every kind it has a handler for."""

    def __init__(
        self,
        store: TimerStore,
        clock: Clock,
        owner: str,
        metrics: Metrics,
        *,
        poll: float = 0.5,
        lease: float = 30.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner
        self.metrics = metrics
        self.poll = poll
        self.lease_ms = int(lease * 1000)
        self.handlers: dict[str, Handler] = {}
        self._wake = anyio.Event()

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler(ref)`` for due timers of ``kind``."""
        self.handlers[kind] = handler

    def wake(self) -> None:
        """A timer was scheduled or moved: look again now."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: run what is due, then sleep until the next due time or a wake."""
        while True:
            try:
                await self.run_due()
                next_due = await self.store.next_due()
            except Exception:
                log.exception("timer loop failed node=%s; retrying", self.owner)
                next_due = None
            now_ms = to_ms(self.clock.now())
            delay = self.poll if next_due is None else min(self.poll, (next_due - now_ms) / 1000)
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._wake.wait()
            self._wake = anyio.Event()

    async def run_due(self) -> int:
        """Claim and run every timer due now; how many ran here."""
        ran = 0
        now_ms = to_ms(self.clock.now())
        for timer in await self.store.due(now_ms):
            handler = self.handlers.get(timer.kind)
            if handler is None:
                continue
            if not await self.store.claim(timer, self.owner, now_ms, self.lease_ms):
                continue
            try:
                await handler(timer.ref)
            except Exception:
                # The lease runs out and the timer is tried again (here or elsewhere).
                log.exception(
                    "timer failed kind=%s ref=%s node=%s", timer.kind, timer.ref, self.owner
                )
                continue
            self.metrics.timer_fired(timer.kind)
            await self.store.complete(timer, self.owner)
            ran += 1
        return ran
