"""The node's timer loop: finds due durable timers, claims each, runs its handler.

Every node runs one. A timer fires on exactly one node at a time (the lease in
:class:`rtserver.storage.timers.TimerStore`): the claimant renews its lease
every third of its length while the handler runs, so a slow handler (an
e-mail provider taking a minute) never lets another node run the same timer;
its completion is conditional on still holding that lease. A node that was
down when a timer fell due runs it when it is back, if no other node did. A
timer scheduled on this node wakes the loop at once; one scheduled on
another node is seen within ``poll`` seconds.

Handlers run concurrently, up to ``concurrency`` per kind: one slow or
failing timer (one address of the outbox) never holds up the others, and a
burst of one kind (a thousand e-mails) never holds up another (a reminder).
A handler that raises is tried again later, after a backoff that grows with
its failures (:class:`rtserver.core.retry.RetryPolicy`); after the policy's
last try the timer is retired into a dead letter, which a manager can see
and retry (``/api/dead-letters``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskGroup

from rtserver.clock import Clock, to_ms
from rtserver.core.retry import RetryPolicy
from rtserver.health import Backoff, Health
from rtserver.metrics import Metrics
from rtserver.storage.timers import Lease, TimerStore

log = logging.getLogger("rtserver.timers")

Handler = Callable[[str], Awaitable[None]]

# The defaults of --timer-retry, --timer-retry-max and --timer-attempts (see config.py).
DEFAULT_RETRY = RetryPolicy(base=2.0, cap=3600.0, attempts=12)
# Handlers of one kind running at once on one node. Sixteen slow sends still
# leave the other kinds their own slots, and the shared database's one writer
# is the real limit on how much more would help.
CONCURRENCY = 16
# The part of rtserver.health that a failing round of this loop is reported as.
TIMERS_PART = "timers"
# After a round that started nothing though something looked due (a claim lost
# to another node), look again this soon rather than at once, so as not to spin.
RACE_PAUSE = 0.01


def describe(exc: BaseException) -> str:
    """An error as a dead letter shows it: its type and message."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


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
        retry: RetryPolicy = DEFAULT_RETRY,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner
        self.metrics = metrics
        self.poll = poll
        self.lease_ms = int(lease * 1000)
        self.retry = retry
        self.concurrency = concurrency
        self.handlers: dict[str, Handler] = {}
        self._running: dict[str, int] = {}
        self._wake = anyio.Event()
        # Set by the node: where a failing round is reported (see rtserver.health).
        self.health: Health | None = None

    def register(self, kind: str, handler: Handler) -> None:
        """Run ``handler(ref)`` for due timers of ``kind``."""
        self.handlers[kind] = handler
        self._running.setdefault(kind, 0)

    def wake(self) -> None:
        """A timer was scheduled or moved, or a handler finished: look again now."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: start what is due, then sleep until the next due time or a wake.

        The handlers run in this loop's own task group: cancelling the loop
        (the node stopping) cancels them, and their leases run out.
        """
        backoff = Backoff()
        async with anyio.create_task_group() as tg:
            while True:
                started, next_due = 0, None
                failed = False
                try:
                    started = await self.start_due(tg)
                    next_due = await self.store.next_due(self._open_kinds())
                except Exception as exc:
                    # Logged once per outage and shown on /healthz (not a traceback
                    # every round), and retried with backoff.
                    failed = True
                    if self.health is not None:
                        self.health.failed(TIMERS_PART, exc)
                    else:
                        log.exception("timer loop failed node=%s; retrying", self.owner)
                else:
                    backoff.reset()
                    if self.health is not None:
                        self.health.ok(TIMERS_PART)
                if failed:
                    await anyio.sleep(backoff.next())
                    continue
                now_ms = to_ms(self.clock.now())
                delay = self.poll
                if next_due is not None:
                    delay = min(delay, (next_due - now_ms) / 1000)
                if started == 0:
                    delay = max(delay, RACE_PAUSE)
                if delay > 0:
                    with anyio.move_on_after(delay):
                        await self._wake.wait()
                self._wake = anyio.Event()

    def _open_kinds(self) -> list[str]:
        """The kinds with a free slot on this node."""
        return [k for k, n in self._running.items() if n < self.concurrency]

    async def start_due(self, tg: TaskGroup) -> int:
        """Claim timers due now, as many as there are free slots, and start each; how many."""
        kinds = self._open_kinds()
        if not kinds:
            return 0
        free = sum(self.concurrency - self._running[k] for k in kinds)
        started = 0
        now_ms = to_ms(self.clock.now())
        for timer in await self.store.due(kinds, now_ms, min(free, 100)):
            if self._running[timer.kind] >= self.concurrency:
                continue
            lease = await self.store.claim(timer, self.owner, now_ms, self.lease_ms)
            if lease is None:
                continue
            self._running[timer.kind] += 1
            tg.start_soon(self._fire, lease, name=f"timer-{timer.kind}-{timer.ref}")
            started += 1
        return started

    async def _fire(self, lease: Lease) -> None:
        """Run one claimed timer's handler under a renewed lease, then record how it went."""
        timer = lease.timer
        try:
            error: Exception | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep, lease)
                try:
                    await self.handlers[timer.kind](timer.ref)
                except Exception as exc:
                    error = exc
                    log.exception(
                        "timer failed kind=%s ref=%s node=%s attempt=%d",
                        timer.kind,
                        timer.ref,
                        self.owner,
                        timer.attempts + 1,
                    )
                tg.cancel_scope.cancel()
            if error is None:
                self.metrics.timer_fired(timer.kind)
                if not await self.store.complete(lease):
                    log.debug("timer moved while it ran kind=%s ref=%s", timer.kind, timer.ref)
            else:
                await self._failed(lease, error)
        except Exception:
            # Bookkeeping failed (the database): the lease runs out and the timer
            # is tried again, here or elsewhere.
            log.exception(
                "timer bookkeeping failed kind=%s ref=%s node=%s", timer.kind, timer.ref, self.owner
            )
        finally:
            self._running[timer.kind] -= 1
            self.wake()

    async def _keep(self, lease: Lease) -> None:
        """Renew the lease every third of its length until cancelled, or until it is lost."""
        timer = lease.timer
        while True:
            await anyio.sleep(self.lease_ms / 3000)
            until = to_ms(self.clock.now()) + self.lease_ms
            try:
                held = await self.store.renew(lease, until)
            except Exception:
                # The next renewal may still come in time; the lease has two more thirds.
                log.warning(
                    "lease renewal failed kind=%s ref=%s node=%s",
                    timer.kind,
                    timer.ref,
                    self.owner,
                    exc_info=True,
                )
                continue
            if not held:
                # The handler moved its own timer (a next wave, a next billing
                # check), or the lease ran out and another node has it: either
                # way this run's completion will change nothing.
                log.debug("lease ended kind=%s ref=%s node=%s", timer.kind, timer.ref, self.owner)
                return

    async def _failed(self, lease: Lease, exc: Exception) -> None:
        """Move a failed timer to its next try, or retire it after its last."""
        timer = lease.timer
        failures = timer.attempts + 1
        error = describe(exc)
        now_ms = to_ms(self.clock.now())
        delay = self.retry.delay(failures)
        if delay is None:
            dead_id = await self.store.retire(lease, error, now_ms)
            if dead_id is not None:
                self.metrics.timer_retired(timer.kind)
                log.error(
                    "timer retired kind=%s ref=%s node=%s attempts=%d dead_letter=%d error=%r",
                    timer.kind,
                    timer.ref,
                    self.owner,
                    failures,
                    dead_id,
                    error,
                )
            return
        if await self.store.fail(lease, error, now_ms + int(delay * 1000)):
            self.metrics.timer_failed(timer.kind)
            log.info(
                "timer retry kind=%s ref=%s node=%s attempt=%d in=%.1fs",
                timer.kind,
                timer.ref,
                self.owner,
                failures + 1,
                delay,
            )
