"""Requests and offers: create, match in waves, accept (first wins), decline, cancel.

This is where the pure rules (:mod:`rtserver.core`) meet storage and the bus.
Every decision that closes a request goes through :meth:`Hub._close`: first a
claim on the bus (one atomic step across all nodes), then one database
transaction guarded by ``status = 'open'`` (so that even a Redis that lost its
data cannot make two winners), then the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from rtserver.clock import Clock, from_ms, from_wire, to_ms, to_wire
from rtserver.config import Settings
from rtserver.core import requests as rules
from rtserver.core import schedule
from rtserver.core.matching import normalize, spread
from rtserver.core.retry import RetryPolicy
from rtserver.core.text import clean_name, clean_text
from rtserver.errors import (
    Forbidden,
    InvalidField,
    InvalidState,
    NotFound,
    RateLimited,
    RtError,
    Unavailable,
)
from rtserver.hub.bus import Bus
from rtserver.hub.connections import ACCOUNT_SUSPENDED, Registry
from rtserver.hub.matching import Matcher
from rtserver.hub.timers import TimerLoop
from rtserver.metrics import Metrics
from rtserver.notices import Notices
from rtserver.protocol import retry_seconds
from rtserver.schemas import (
    OfferAccept,
    OfferDecline,
    Presence,
    RequestCancel,
    RequestCreate,
    RequestMessage,
)
from rtserver.storage.attachments import AttachmentStore
from rtserver.storage.db import new_id
from rtserver.storage.requests import Offer, Request, RequestStore
from rtserver.storage.sessions import Session, SessionStore
from rtserver.storage.sql import Conn, Db, IntegrityError
from rtserver.storage.timers import TimerStore
from rtserver.storage.users import User, UserStore

log = logging.getLogger("rtserver.hub")

REQUEST_TIMER = "request"
# A scheduled session's reminders (ref "<session>|<ms before>") and no-show check.
REMINDER_TIMER = "reminder"
NO_SHOW_TIMER = "no_show"
# When a wave finds nobody to offer, look again this soon (capped by --offer-ttl).
# A safety net only: an expert who turns available, connects available, or ends a
# session wakes the waiting requests at once (Hub.expert_free).
EMPTY_WAVE_RETRY = 10.0
# When a wave found its free experts all locked by other transactions (PostgreSQL:
# waves offering them work, accepts making them busy), look again this soon.
CONTENDED_RETRY = 0.05
# Under the write lock a wave is taken from the first this many batches of the
# ranked experts (holders of other offers last) that are still free: deep enough
# to replace those who turned busy or away since the read, few enough to stay cheap.
WAVE_DEPTH = 4
# Claims outlive their request by a day: later commands still read who won.
CLAIM_GRACE = 86_400.0
# Requests this node closed lately are remembered with the experts who held their
# offers (the losers of an accept race): their accepts are answered at once.
CLOSED_NOTES = 4096
# How long an accept waits for this node's write of the request's claimed decision
# before it reads and claims for itself (which then loses at once).
CLOSING_WAIT = 1.0
# A new request's timer is written with the request, due this soon: if the node
# dies (or the command is cut off) before the first wave is written, whichever
# node runs the timer sends it. The first wave moves the timer to its own end.
FIRST_WAVE_GRACE = 5.0


class Hub:
    """The request and offer commands of one node, and the state snapshot."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        db: Db,
        bus: Bus,
        registry: Registry,
        metrics: Metrics,
        attachments: AttachmentStore,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.db = db
        self.bus = bus
        self.registry = registry
        self.metrics = metrics
        self.users = UserStore(db)
        self.requests = RequestStore(db)
        self.sessions = SessionStore(db)
        self.timer_store = TimerStore(db)
        self.attachments = attachments
        self.matcher = Matcher(settings, clock, bus, self.users, self.requests, self.sessions)
        self.timers = TimerLoop(
            self.timer_store,
            clock,
            settings.node_id,
            metrics,
            lease=settings.timer_lease,
            retry=RetryPolicy(
                settings.timer_retry, settings.timer_retry_max, settings.timer_attempts
            ),
        )
        self.timers.register(REQUEST_TIMER, self.on_request_timer)
        # Set by the app factory: how direct requests reach their expert.
        self.notices: Notices | None = None
        # request id -> (its final status, who held its offers then), oldest first.
        self._closed: dict[str, tuple[rules.RequestStatus, frozenset[str]]] = {}
        # request id -> done once the decision this node claimed is written (or failed).
        self._closing: dict[str, asyncio.Future[None]] = {}

    # -- the snapshot ------------------------------------------------------------

    async def people(self, user_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """``{id: {id, name, role}}`` for these users."""
        return {uid: u.person() for uid, u in (await self.users.many(list(set(user_ids)))).items()}

    async def session_wire(self, session: Session) -> dict[str, Any]:
        """A session with its people filled in."""
        return session.to_wire(await self.people(session.participants()))

    async def state(self, user: User) -> dict[str, Any]:
        """The ``state`` event: open offers, open requests, active and upcoming sessions.

        Read in one unit of work (``Db.read``), not one per store: every
        ``hello`` sends one (issue 9, a connect storm).
        """
        now = self.clock.now()
        expert = user.role == "expert"

        async def read(
            conn: Conn,
        ) -> tuple[list[tuple[Request, Offer]], list[Request], list[Session], dict[str, User]]:
            pairs = await self.requests.open_offers_in(conn, user.id, now) if expert else []
            mine = (
                await self.requests.open_of_customer_in(conn, user.id)
                if user.role == "customer"
                else []
            )
            sessions = await self.sessions.current_in(conn, user.id)
            ids = {p for s in sessions for p in s.participants()}
            ids.update(r.customer_id for r, _ in pairs)
            if expert:
                ids.add(user.id)  # his presence as stored now
            return pairs, mine, sessions, await self.users.many_in(conn, list(ids))

        pairs, mine, sessions, users = await self.db.read(read)
        people = {uid: u.person() for uid, u in users.items()}
        frame: dict[str, Any] = {
            "type": "state",
            "offers": [
                (await self.with_attachments(r)).offer_wire(
                    people[r.customer_id], o.expires_at, o.rate_cents_per_15min
                )
                for r, o in pairs
            ],
            "requests": [(await self.with_attachments(r)).to_wire() for r in mine],
            "sessions": [s.to_wire(people) for s in sessions],
        }
        if expert:
            fresh = users.get(user.id)
            frame["presence"] = fresh.presence if fresh else user.presence
        return frame

    async def with_attachments(self, request: Request) -> Request:
        """The request with its attachments filled in (stored apart)."""
        if not request.attachment_ids:
            return request
        files = await self.attachments.of_request(request.id)
        return replace(request, attachments=[a.to_wire() for a in files])

    async def resync(self) -> None:
        """Re-send ``state`` (marked ``resync``) to every socket of this node."""
        for conn in self.registry.all():
            try:
                conn.send_nowait({**await self.state(conn.user), "resync": True})
            except Exception:
                log.exception("resync failed conn=%s user=%s", conn.id, conn.user.id)

    # -- presence ------------------------------------------------------------------

    async def presence(self, user: User, cmd: Presence) -> dict[str, Any]:
        """An expert's availability, stored so that it outlives the connection."""
        if user.role != "expert":
            raise Forbidden("only experts have a presence")
        await self.users.set_presence(user.id, cmd.status)
        await self.bus.experts_changed([user.id])
        log.info("presence user=%s status=%s", user.id, cmd.status)
        if cmd.status == "available":
            await self.expert_free(user.id)
        return {"status": cmd.status}

    async def expert_free(self, expert_id: str) -> None:
        """An expert turned available (or connected so): requests waiting for anyone
        (their current wave has no open offer) look again now instead of at their
        next retry, so that he is offered them at once."""
        waiting = await self.requests.waiting()
        if waiting:
            woken = await self._wake_unanswered(waiting)
            log.debug("expert free expert=%s woken_requests=%d", expert_id, woken)

    async def _wake_unanswered(self, request_ids: list[str]) -> int:
        """Make the timers of those of these requests still unanswered (open to
        anyone, no open offer in their current wave) due now; how many.

        Checked again under the write lock: the read that chose them may be stale,
        and waking a request whose next wave went out meanwhile would expire that
        fresh wave at once (its timer's run ends the current wave).
        """
        now_ms = to_ms(self.clock.now())

        async def hasten(conn: Conn) -> int:
            still = await self.requests.unanswered(conn, request_ids)
            # In id order: two wakes of overlapping requests (PostgreSQL: side by
            # side) take their timers' rows in one order, never in a cycle.
            for request_id in sorted(still):
                # A wake: a request already due (one burst wakes it many times) keeps
                # the due time its claimant is about to match.
                await self.timer_store.hasten(conn, REQUEST_TIMER, request_id, now_ms)
            return len(still)

        woken = await self.db.write(hasten)
        if woken:
            self.timers.wake()
        return woken

    # -- creating and matching ---------------------------------------------------

    async def create(self, user: User, cmd: RequestCreate) -> dict[str, Any]:
        """Store a new request and send its first wave of offers."""
        if user.role != "customer":
            raise Forbidden("only customers create requests")
        # Shown to experts in their offers: visible text only (no bidi overrides).
        title = clean_name(cmd.title, "title")
        description = clean_text(cmd.description, "description")
        if cmd.cid is not None:
            # A retry of a create whose answer was lost: the same request, not a new one.
            existing = await self.requests.by_cid(user.id, cmd.cid)
            if existing is not None:
                return await self._created_before(existing)
        now = self.clock.now()
        await self._check_create_limit(user, now)
        try:
            times = [from_wire(t) for t in cmd.proposed_times]
        except ValueError:
            raise InvalidField(
                "proposed_times must be ISO-8601 with an offset", "proposed_times"
            ) from None
        proposed = rules.validate_proposed_times(cmd.kind, times, now)
        skills = list(dict.fromkeys(s.strip() for s in cmd.skills if s.strip()))
        if not skills:
            raise InvalidField("skills must name at least one skill", "skills")
        files = await self.attachments.many(list(dict.fromkeys(cmd.attachment_ids)))
        for aid in cmd.attachment_ids:
            a = files.get(aid)
            if a is None or a.uploader_id != user.id or a.session_id or a.request_id:
                raise NotFound(f"no such attachment {aid[:64]!r}")
        direct: User | None = None
        if cmd.expert_id is not None:
            direct = await self.users.by_id(cmd.expert_id)
            if direct is None or direct.role != "expert" or direct.suspended:
                raise NotFound("no such expert")
        request = Request(
            id=new_id("r"),
            customer_id=user.id,
            kind=cmd.kind,
            title=title,
            description=description,
            skills=skills,
            language=cmd.language.strip(),
            direct_expert_id=direct.id if direct else None,
            proposed_times=proposed,
            attachment_ids=list(files),
            attachments=[a.to_wire() for a in files.values()],
            status="open",
            wave=0,
            notified=0,
            created_at=now,
            # An instant request searches for --request-ttl; a scheduled one stays
            # open until its last proposed time can no longer be booked.
            expires_at=proposed[-1]
            if proposed
            else now + timedelta(seconds=self.settings.request_ttl),
        )
        # Most requests (no direct expert, no attachments) are stored with their
        # first wave, in one transaction. The others are stored with their notice
        # and links first; their first wave follows as any later wave does.
        notified: int | None = None
        deferred = False
        try:
            if direct is None and not files:
                try:
                    notified = await self._dispatch(request, user, new=True, cid=cmd.cid)
                except Unavailable:
                    deferred = True
            if notified is None:
                await self._store_alone(request, user, cmd.cid, list(files), direct, now)
        except IntegrityError:
            # The same cid raced in on another socket or node: its request won.
            existing = await self.requests.by_cid(user.id, cmd.cid) if cmd.cid else None
            if existing is None:
                raise
            return await self._created_before(existing)
        if direct is not None and self.notices is not None:
            self.notices.kick()
        self.metrics.request_created(request.kind)
        # At debug, as the wave: on the hot path, and "request closed" tells the outcome.
        log.debug(
            "request created request=%s customer=%s kind=%s direct=%s",
            request.id,
            user.id,
            request.kind,
            request.direct_expert_id,
        )
        if notified is None and not deferred:
            try:
                notified = await self._dispatch(request, user)
            except Unavailable:
                deferred = True
        if notified is None:
            # Stored with its timer (FIRST_WAVE_GRACE): the timer sends the first
            # wave once the bus answers again. The create itself is done.
            log.warning("first wave deferred request=%s: the bus is unavailable", request.id)
            return {"request": request.to_wire()}
        return {"request": replace(request, wave=1, notified=notified).to_wire()}

    async def _store_alone(
        self,
        request: Request,
        user: User,
        cid: str | None,
        files: list[str],
        direct: User | None,
        now: datetime,
    ) -> None:
        """Store a new request without its first wave: with its attachments' links and
        its direct notice, and its timer, which sends the first wave if nobody does."""
        async with self.db.transaction() as conn:
            await self.requests.insert(conn, request, cid)
            if files:
                await self.attachments.link(conn, files, request_id=request.id)
            await self._add_direct_notice(conn, request, user, direct, now)
            # The first wave's timer is part of the request: a create cut off
            # after this commit still gets its waves and its end.
            first = now + timedelta(seconds=FIRST_WAVE_GRACE)
            await self.timer_store.schedule(conn, REQUEST_TIMER, request.id, to_ms(first))

    async def _check_create_limit(self, user: User, now: datetime) -> None:
        """``--create-limit``: at most N requests *not accepted* in the last period.

        What floods experts is requests that page them and never become a
        session; a customer whose requests are taken (a bot, a busy team, the
        shared bench's W4) is not limited, however often he asks. Counted in the
        database, so the limit holds across nodes and restarts.
        """
        limit = self.settings.create_limit
        since = now - timedelta(seconds=limit.period)
        if await self.requests.unaccepted_since(user.id, to_ms(since)) >= limit.count:
            raise RateLimited(
                f"too many requests not taken: at most {int(limit.count)} in"
                f" {retry_seconds(limit.period)} s",
                retry_after=limit.period,
            )

    async def _created_before(self, request: Request) -> dict[str, Any]:
        """The answer to a create repeated with a ``cid`` already used."""
        log.info("request create repeated request=%s", request.id)
        return {"request": (await self.with_attachments(request)).to_wire(), "duplicate": True}

    async def _add_direct_notice(
        self, conn: Conn, request: Request, user: User, direct: User | None, now: datetime
    ) -> None:
        """A direct request's notice to its expert, in the request's own transaction."""
        if direct is None or self.notices is None:
            return
        # The product's rule: a direct request reaches its expert by e-mail, text
        # or a dashboard notification.
        text = f'{user.name} asks you directly for help: "{request.title}".'
        await self.notices.add(
            conn,
            direct,
            "direct_request",
            request.id,
            None,
            {"request_id": request.id, "title": request.title, "text": text},
            f"Direct request: {request.title}",
            text,
            now,
            sms=True,
        )

    async def _dispatch(
        self, request: Request, customer: User, *, new: bool = False, cid: str | None = None
    ) -> int:
        """Send the next wave of offers; schedule the next look; the new ``notified``.

        ``new``: the request is not stored yet; it is, with this wave (and its
        ``cid``: :class:`~rtserver.storage.sql.IntegrityError` if the customer used it
        already).
        """
        now = self.clock.now()
        wave_no = request.wave + 1
        if request.direct_expert_id is not None:
            chosen = [request.direct_expert_id]
            expires_at = next_due = request.expires_at
        elif request.kind == "scheduled":
            # Offers of a scheduled request stay open until it closes (experts may be
            # offline now); every --offer-ttl more qualified, free experts are added.
            chosen = await self.matcher.scheduled(request)
            expires_at = request.expires_at
            next_due = min(now + timedelta(seconds=self.settings.offer_ttl), expires_at)
        else:
            # Eligible experts, best first: the wave is taken from them under the lock.
            chosen = await self.matcher.instant(request, WAVE_DEPTH * self.settings.offer_batch)
            expires_at = rules.offer_expiry(now, self.settings.offer_ttl, request.expires_at)
            if chosen:
                next_due = expires_at
            else:
                retry = min(EMPTY_WAVE_RETRY, self.settings.offer_ttl)
                next_due = min(now + timedelta(seconds=retry), request.expires_at)
        batch, depth = self.settings.offer_batch, WAVE_DEPTH * self.settings.offer_batch
        instant = request.kind == "instant" and request.direct_expert_id is None

        async def write_wave(
            conn: Conn, candidates: list[str], next_due: datetime
        ) -> tuple[list[str], int, dict[str, int | None], datetime]:
            # One transaction: one unit of work of Db.write.
            if new:
                await self.requests.insert(conn, request, cid)
            elif await self.requests.wave_of(conn, request.id) != ("open", request.wave):
                # Closed, or this wave was sent meanwhile (by the create and by its
                # timer at once, or by two nodes): once only.
                raise _WaveSent
            wave = candidates
            if wave and instant:
                # Chosen from committed reads, but an expert may have won another
                # request (or gone away) since: his offer would never be answered.
                # Under the write lock that question has one answer.
                # And a burst of requests all read the same best few: those already
                # offered another instant request (by a wave written since) go last,
                # so that concurrent waves spread over the free experts instead of
                # racing for the same ones (core.matching.spread).
                order = spread(wave, await self.requests.holding_instant_offers(conn))[:depth]
                wave, skipped = await self._still_free(conn, order, batch)
                if not wave:
                    # Nobody free; or everyone free was being offered other work at
                    # this instant: then look again at once, not at the safety net's pace.
                    retry = CONTENDED_RETRY if skipped else EMPTY_WAVE_RETRY
                    retry = min(retry, self.settings.offer_ttl)
                    next_due = min(now + timedelta(seconds=retry), request.expires_at)
            notified = request.notified
            rates: dict[str, int | None] = {}
            if wave:
                notified, rates = await self.requests.add_wave(
                    conn, request.id, wave_no, wave, now, expires_at
                )
            # An empty wave waits for its retry, unless an expert turned free while it
            # was being chosen (his wake found this timer running): then it looks again now.
            await self.timer_store.schedule(
                conn,
                REQUEST_TIMER,
                request.id,
                to_ms(next_due),
                woken_ms=None if wave else to_ms(now),
            )
            return wave, notified, rates, next_due

        try:
            found, due = chosen, next_due
            chosen, notified, rates, next_due = await self.db.write(
                lambda conn: write_wave(conn, found, due)
            )
        except _WaveSent:
            return request.notified
        self.timers.wake()
        if chosen:
            # Their last offer moved them down the ranking, on every node.
            await self.bus.experts_changed(chosen)
            self.metrics.offers_sent.inc(len(chosen))
            # Each offer carries the rate it was made at; one event per rate.
            by_rate: dict[int | None, list[str]] = {}
            for expert_id in chosen:
                by_rate.setdefault(rates.get(expert_id), []).append(expert_id)
            for rate, experts in by_rate.items():
                offer = request.offer_wire(customer.person(), expires_at, rate)
                await self.bus.publish(experts, {"type": "offer.new", "offer": offer})
            log.debug(
                "wave sent request=%s wave=%d notified=%d experts=%s",
                request.id,
                wave_no,
                notified,
                chosen,
            )
        await self.bus.publish(
            [request.customer_id],
            {
                "type": "request.update",
                "request_id": request.id,
                "status": "open",
                "notified": notified,
            },
        )
        return notified

    async def _still_free(self, conn: Conn, order: list[str], batch: int) -> tuple[list[str], bool]:
        """The first ``batch`` of these experts still free, read inside a wave's write
        transaction; and whether some free ones were skipped, being locked elsewhere.

        SQLite's one write lock makes the read the answer. On PostgreSQL nodes and
        writers run side by side, so the chosen experts' rows are locked and the
        question asked again under the lock: an accept that makes one of them busy
        locks his row too (``_write_close``), so either it committed first and is
        seen now, or it waits for this wave and withdraws the offer it adds. Without
        it a wave could offer a request to an expert turning busy; his offer stayed
        open and the request stalled until the wave expired. Rows another
        transaction holds (a wave offering him work this instant, his accept) are
        skipped, not waited for, and the next free ones taken: concurrent waves
        spread over the free experts instead of queueing for the same few, and only
        the rows used are held.
        """
        free = await self.users.still_free(conn, order)
        if not conn.row_locks:
            return free[:batch], False
        wave: list[str] = []
        skipped = False
        taken = 0
        while len(wave) < batch and taken < len(free):
            want = free[taken : taken + batch - len(wave)]
            taken += len(want)
            locked = await self.users.lock_free_of(conn, want)
            skipped = skipped or len(locked) < len(want)
            wave += await self.users.still_free(conn, [e for e in want if e in locked])
        return wave, skipped

    async def on_request_timer(self, request_id: str) -> None:
        """A wave ended (or nobody was found): expire it and send the next, or expire all."""
        request = await self.requests.get(request_id)
        if request is None or request.status != "open":
            return
        now = self.clock.now()
        if now >= request.expires_at:
            held = await self._close(request, "expired")
            if held is not None and not held.startswith("expired"):
                await self._repair(request, held)
            return
        if request.direct_expert_id is not None:
            # One offer for the request's whole life; nothing to do before it expires
            # but send it, if its create was cut off before it did.
            customer = await self.users.by_id(request.customer_id)
            if request.wave == 0 and customer is not None:
                await self._dispatch(await self.with_attachments(request), customer)
            else:
                await self._schedule(request.id, request.expires_at)
            return
        customer = await self.users.by_id(request.customer_id)
        if request.kind == "scheduled":
            if customer is not None:
                await self._dispatch(await self.with_attachments(request), customer)
            return

        async def expire(conn: Conn) -> tuple[list[str], datetime | None]:
            # Only the offers whose time is up. A wake read before this wave went
            # out (a stale one: an expert turned free, a decline, another node)
            # must not cut a fresh wave short: its timer goes back to its end.
            expired = await self.requests.close_offers(
                conn, request.id, "expired", "expired", now, wave=request.wave, ended=True
            )
            live = await self.requests.wave_end(conn, request.id, request.wave)
            if live is not None:
                await self.timer_store.schedule(conn, REQUEST_TIMER, request.id, to_ms(live))
            return expired, live

        expired, live = await self.db.write(expire)
        if expired:
            await self.bus.publish(
                expired, {"type": "offer.revoked", "request_id": request.id, "reason": "expired"}
            )
        if live is not None:
            self.timers.wake()
            log.debug("request timer early request=%s: its wave is out till %s", request.id, live)
            return
        if customer is not None:
            await self._dispatch(await self.with_attachments(request), customer)

    async def _schedule(self, request_id: str, at: datetime) -> None:
        """Move the request's timer to ``at`` (its own handler's next look)."""
        await self.db.write(
            lambda conn: self.timer_store.schedule(conn, REQUEST_TIMER, request_id, to_ms(at))
        )
        self.timers.wake()

    async def _hasten(self, request_id: str) -> None:
        """Make the request's timer due now, unless it already is (a wake-up)."""
        now_ms = to_ms(self.clock.now())
        await self.db.write(
            lambda conn: self.timer_store.hasten(conn, REQUEST_TIMER, request_id, now_ms)
        )
        self.timers.wake()

    # -- closing: accept, decline, cancel, expire -----------------------------------

    async def _close(
        self,
        request: Request,
        status: rules.RequestStatus,
        expert_id: str | None = None,
        time: datetime | None = None,
    ) -> str | None:
        """Claim the request's one final decision; None if ours (and applied), else the holder's."""
        held, _session = await self._decide(request, status, expert_id, time)
        return held

    async def _decide(
        self,
        request: Request,
        status: rules.RequestStatus,
        expert_id: str | None = None,
        time: datetime | None = None,
    ) -> tuple[str | None, dict[str, Any] | None]:
        """:meth:`_close`, and the session an accept made (as its participants see it)."""
        # status:expert:booked time:nonce — the nonce makes each attempt's value unique.
        booked = str(to_ms(time)) if time else ""
        value = f"{status}:{expert_id or ''}:{booked}:{secrets.token_hex(4)}"
        key = f"request:{request.id}"
        held = await self.bus.claim(key, value, self._claim_ttl(request))
        if held is not None and _decision(held) == _decision(value):
            # This very decision, claimed by an earlier attempt that was answered
            # `internal` (Redis hung past --redis-timeout, then ran the claim when
            # it resumed): the retry writes it, instead of losing to itself.
            log.info("claim of an earlier attempt adopted request=%s", request.id)
            value, held = held, None
        if held is not None:
            return held, None
        # The claim is ours: while it is written, this node's other accepts of the
        # request wait for it and are answered from _closed, not from reads.
        closing = asyncio.get_running_loop().create_future()
        self._closing.setdefault(request.id, closing)
        try:
            applied = await self._apply(request, value)
        except _Overlap:
            # Another booking of this expert won the same time meanwhile: give the
            # request back to the others.
            await self.bus.release(key, value)
            raise InvalidState("you have another session at that time") from None
        except _Busy:
            # He won another request a moment ago (another socket, another node):
            # one active session at a time, so this one goes back to the others.
            await self.bus.release(key, value)
            self.metrics.races_lost.inc()
            log.info(
                "accept refused request=%s expert=%s: busy, claim released", request.id, expert_id
            )
            raise InvalidState("you are in an active session") from None
        finally:
            if self._closing.get(request.id) is closing:
                del self._closing[request.id]
            closing.set_result(None)
        if applied is False:
            # Closed in the database without a claim (the bus lost its data): it decided.
            fresh = await self.requests.get(request.id)
            return (fresh.status if fresh else "expired"), None
        return None, applied if isinstance(applied, dict) else None

    def _claim_ttl(self, request: Request) -> float:
        left = (request.expires_at - self.clock.now()).total_seconds()
        return max(left, 0.0) + CLAIM_GRACE

    async def _apply(self, request: Request, value: str) -> dict[str, Any] | bool:
        """Write a claimed decision and send its events: the session an accept made,
        True for another decision, False if the request was not open."""
        status, expert_id, booked, _nonce = value.split(":", 3)
        time = from_ms(int(booked)) if booked else None
        now = self.clock.now()
        try:
            return await self._write_close(request, status, expert_id, time, now)
        except IntegrityError as exc:
            if "expert_busy" in str(exc):
                raise _Busy from exc
            raise

    async def _write_close(
        self,
        request: Request,
        status: str,
        expert_id: str,
        time: datetime | None,
        now: datetime,
    ) -> dict[str, Any] | bool:
        """Write a decision in one transaction, then send its events.

        The session made by an accept (as its participants see it), True for any
        other decision, False if the request was no longer open.
        """
        offer_status, reason = _OFFERS_ON_CLOSE[status]
        length = self.settings.session_length

        async def write(conn: Conn) -> _Written | None:
            # One transaction: one unit of work of Db.write.
            session: Session | None = None
            if status == "accepted":
                if time is not None:
                    taken = await self.sessions.booked_in(conn, expert_id)
                    if any(schedule.overlaps(time, t, length) for t in taken):
                        raise _Overlap
                elif await self.sessions.busy_in(conn, [expert_id]):
                    # The busy check of accept() read before the claim; this one is
                    # under the write lock, so two accepts of one expert cannot both pass.
                    raise _Busy
                session = Session(
                    id=new_id("s"),
                    request_id=request.id,
                    customer_id=request.customer_id,
                    expert_id=expert_id,
                    kind=request.kind,
                    title=request.title,
                    status="active" if request.kind == "instant" else "scheduled",
                    scheduled_at=time,
                    # The rate of his offer: what the customer was shown, not what
                    # the expert may have set since.
                    rate_cents_per_15min=await self.requests.offer_rate(
                        conn, request.id, expert_id
                    ),
                    created_at=now,
                    started_at=now if request.kind == "instant" else None,
                )
            notified = await self.requests.close(
                conn,
                request.id,
                status,  # type: ignore[arg-type]
                now,
                session_id=session.id if session else None,
                expert_id=expert_id or None,
            )
            if notified is None:
                return None
            if session is not None:
                # The winner's row, after the request's (a wave takes its request's row,
                # then its experts'): a wave that would offer him work is either
                # committed now, its offer among those locked next, or skips him while
                # this close holds his row, or sees him busy after it (_still_free).
                # Before the offers: locked after them, a wave's offer to him committed
                # in between was outside the set, and the withdrawal that met it waited
                # in a cycle with another close locking that request's offers.
                await self.users.lock_in(conn, expert_id)
            # Every open offer this close will change (this request's, and the
            # winner's of other requests), locked first and in one order: two
            # accepts of two requests, each withdrawing its winner's offer of the
            # other, took them in opposite orders and deadlocked on PostgreSQL.
            await self.requests.lock_open_offers(
                conn, request.id, expert_id if session is not None else None
            )
            withdrawn: list[str] = []
            if session is not None:
                await self.sessions.insert(conn, session)
                if session.status == "active":
                    # Busy now: his offers of other instant requests could only
                    # answer invalid_state; hand them back to those requests.
                    withdrawn = await self.requests.withdraw_instant_offers(conn, expert_id, now)
                if time is not None:
                    await self._schedule_session_timers(conn, session.id, time, now)
                await self.requests.close_offers(
                    conn, request.id, "accepted", None, now, expert_id=expert_id
                )
            revoked = await self.requests.close_offers(conn, request.id, offer_status, reason, now)
            answered = expert_id if session is not None else None
            if status == "declined":
                answered = request.direct_expert_id
            if answered:
                await self.users.note_response(conn, answered)
            await self.timer_store.cancel(conn, REQUEST_TIMER, request.id)
            people: dict[str, dict[str, Any]] = {}
            if session is not None:
                # Read here, in this unit of work, rather than in another one after.
                users = await self.users.many_in(conn, list(session.participants()))
                people = {uid: u.person() for uid, u in users.items()}
            return _Written(notified, session, people, withdrawn, revoked, answered)

        written = await self.db.write(write)
        if written is None:
            return False
        session = written.session
        self._note_closed(request.id, status, [*written.revoked, expert_id])
        if written.answered:
            # His response time changed, and so did his rank.
            await self.bus.experts_changed([written.answered])
        log.info(
            "request closed request=%s status=%s expert=%s session=%s",
            request.id,
            status,
            expert_id or None,
            session.id if session else None,
        )
        if written.revoked and reason is not None:
            await self.bus.publish(
                written.revoked,
                {"type": "offer.revoked", "request_id": request.id, "reason": reason},
            )
        for other in written.withdrawn:
            await self.bus.publish(
                [expert_id], {"type": "offer.revoked", "request_id": other, "reason": "taken"}
            )
            await self._advance_if_unanswered(other)
        update: dict[str, Any] = {
            "type": "request.update",
            "request_id": request.id,
            "status": status,
            "notified": written.notified,
        }
        wire: dict[str, Any] | None = None
        if session is not None:
            wire = session.to_wire(written.people)
            update["session_id"] = session.id
            update["expert"] = written.people.get(expert_id)
            await self.bus.publish(
                session.participants(), {"type": "session.update", "session": wire}
            )
        await self.bus.publish([request.customer_id], update)
        return wire if wire is not None else True

    def _note_closed(self, request_id: str, status: str, holders: list[str]) -> None:
        """Remember that this node closed a request, and who held its offers then."""
        self._closed[request_id] = (status, frozenset(h for h in holders if h))  # type: ignore[assignment]
        if len(self._closed) > CLOSED_NOTES:
            del self._closed[next(iter(self._closed))]

    async def _schedule_session_timers(
        self, conn: Conn, session_id: str, starts_at: datetime, now: datetime
    ) -> None:
        """A booked session's reminders and its no-show check, as durable timers."""
        for r in schedule.reminders(starts_at, self.settings.reminders, now):
            ref = f"{session_id}|{int(r.seconds_before * 1000)}"
            await self.timer_store.schedule(conn, REMINDER_TIMER, ref, to_ms(r.due))
        due = starts_at + timedelta(seconds=self.settings.no_show)
        await self.timer_store.schedule(conn, NO_SHOW_TIMER, session_id, to_ms(due))

    async def _repair(self, request: Request, held: str) -> None:
        """A claim was won but never written (its node died in between): write it now.

        If it can no longer be written (its expert is busy elsewhere, or booked at
        that time), the claim is given back and the request expires.
        """
        log.warning("repairing request=%s decided=%s", request.id, held)
        try:
            await self._apply(request, held)
        except (_Busy, _Overlap):
            await self.bus.release(f"request:{request.id}", held)
            log.warning("repair refused request=%s decided=%s: expiring", request.id, held)
            again = await self._close(request, "expired")
            if again is not None and not again.startswith("expired"):
                log.error("request=%s still held by %s after repair", request.id, again)

    async def accept(self, user: User, cmd: OfferAccept) -> dict[str, Any]:
        """First accept wins; every other one learns why it lost."""
        if user.role != "expert":
            raise Forbidden("only experts accept offers")
        time = None
        if cmd.time is not None:
            try:
                time = from_wire(cmd.time)
            except ValueError:
                raise InvalidField("time must be ISO-8601 with an offset", "time") from None
        if (closing := self._closing.get(cmd.request_id)) is not None:
            # Another accept of it won the claim here and is being written (most
            # accepts lose, and arrive while the winner waits for the write lock).
            # Bounded: behind a write lock held elsewhere, the claim answers sooner.
            await asyncio.wait([closing], timeout=CLOSING_WAIT)
        closed = self._closed.get(cmd.request_id)
        if closed is not None and user.id in closed[1]:
            # The race is over, decided on this node, and he held an offer: what
            # the reads and the claim would answer, without them (most accepts lose).
            self.metrics.races_lost.inc()
            raise rules.closed_error(closed[0])

        async def read(conn: Conn) -> tuple[Offer | None, Request | None, bool]:
            # The offer before the request: the transaction that revokes an offer also
            # closes its request, so this order never sees a revoked offer of an open one.
            offer = await self.requests.offer_in(conn, cmd.request_id, user.id)
            request = await self.requests.get_in(conn, cmd.request_id) if offer else None
            instant = request is not None and request.kind == "instant"
            return offer, request, instant and bool(await self.sessions.busy_in(conn, [user.id]))

        # One unit of work for the three reads: most accepts lose the race.
        offer, request, busy = await self.db.read(read)
        booked = rules.check_accept(
            request.view() if request else None,
            offer.view() if offer else None,
            self.clock.now(),
            time,
            busy,
        )
        assert request is not None
        if booked is not None:
            if booked <= self.clock.now():
                raise InvalidState("that time has passed")
            taken = await self.sessions.booked(user.id)
            if any(schedule.overlaps(booked, t, self.settings.session_length) for t in taken):
                raise InvalidState("you have another session at that time")
        held, session = await self._decide(request, "accepted", user.id, booked)
        if held is not None:
            self.metrics.races_lost.inc()
            log.debug("accept lost request=%s expert=%s held=%s", request.id, user.id, held)
            raise _lost(held)
        self.metrics.accepts.inc()
        self.metrics.accept_latency.observe((self.clock.now() - request.created_at).total_seconds())
        if session is None:
            # Adopted from an earlier attempt whose events went out then.
            made = await self.sessions.by_request(request.id)
            assert made is not None
            session = await self.session_wire(made)
        return {"session": session}

    async def decline(self, user: User, cmd: OfferDecline) -> dict[str, Any]:
        """Pass on an offer. A direct request's one decline closes it as ``declined``."""
        if user.role != "expert":
            raise Forbidden("only experts decline offers")
        offer = await self.requests.offer(cmd.request_id, user.id)
        request = await self.requests.get(cmd.request_id) if offer else None
        rules.check_decline(request.view() if request else None, offer.view() if offer else None)
        assert request is not None and offer is not None
        if request.direct_expert_id is not None:
            held = await self._close(request, "declined")
            if held is not None:
                raise _lost(held)
            return {}
        now = self.clock.now()

        async def write(conn: Conn) -> None:
            await self.requests.close_offers(
                conn, request.id, "declined", None, now, expert_id=user.id
            )
            await self.users.note_response(conn, user.id)

        await self.db.write(write)
        await self.bus.experts_changed([user.id])
        log.info("offer declined request=%s expert=%s", request.id, user.id)
        if offer.wave == request.wave:
            # Everyone in this wave said no: do not wait for its TTL.
            await self._advance_if_unanswered(request.id)
        return {}

    async def account_suspended(self, user: User) -> None:
        """A manager suspended ``user``: his sockets close, his offers and requests end.

        An expert's open offers are withdrawn (their requests move on to the
        next wave; a direct request to him is declined); a customer's open
        requests are cancelled.
        """
        if user.role == "expert":
            now = self.clock.now()
            async with self.db.transaction() as conn:
                withdrawn = await self.requests.withdraw_all_offers(conn, user.id, now)
            for request_id in withdrawn:
                await self.bus.publish(
                    [user.id],
                    {"type": "offer.revoked", "request_id": request_id, "reason": "withdrawn"},
                )
                request = await self.requests.get(request_id)
                if request is None or request.status != "open":
                    continue
                if request.direct_expert_id == user.id:
                    await self._close(request, "declined")
                else:
                    await self._hasten(request.id)
        elif user.role == "customer":
            for request in await self.requests.open_of_customer(user.id):
                with contextlib.suppress(RtError):
                    await self.cancel(user, RequestCancel(request_id=request.id))
        # Last, so that his sockets see what happened to his offers and requests first.
        await self.bus.publish([user.id], {"type": ACCOUNT_SUSPENDED})
        log.info("account suspended user=%s role=%s", user.id, user.role)

    async def _advance_if_unanswered(self, request_id: str) -> None:
        """If no offer of the request's current wave is open, send the next wave now."""
        if await self.db.read(lambda conn: self.requests.unanswered(conn, [request_id])):
            log.debug("wave unanswered request=%s: next wave now", request_id)
            await self._wake_unanswered([request_id])

    async def cancel(self, user: User, cmd: RequestCancel) -> dict[str, Any]:
        """The customer withdraws an open request."""
        request = await self.requests.get(cmd.request_id)
        rules.check_cancel(request.view() if request else None, user.id)
        assert request is not None
        held = await self._close(request, "cancelled")
        if held is not None:
            raise InvalidState(f"request is already {held.partition(':')[0]}")
        return {}

    async def message(self, user: User, cmd: RequestMessage) -> dict[str, Any]:
        """A message about an open request between its customer and its offered experts."""
        request = await self.requests.get(cmd.request_id)
        if request is None:
            raise NotFound("no such request")
        is_customer = request.customer_id == user.id
        offer = None if is_customer else await self.requests.offer(request.id, user.id)
        if not is_customer and offer is None:
            raise NotFound("no such request")
        if request.status != "open":
            raise InvalidState(f"request is {request.status}")
        if offer is not None and (offer.status != "open" or offer.expires_at <= self.clock.now()):
            # His offer expired, was declined or taken back: the conversation is over.
            raise InvalidState(
                f"your offer is {offer.status if offer.status != 'open' else 'expired'}"
            )
        now = self.clock.now()
        await self.requests.add_message(request.id, user.id, cmd.text, now)
        message = {
            "request_id": request.id,
            "from": user.person(),
            "text": cmd.text,
            "at": to_wire(now),
        }
        if is_customer:
            pairs = await self.db.fetchall(
                "SELECT expert_id FROM offers WHERE request_id = ? AND status = 'open'",
                (request.id,),
            )
            recipients = [user.id, *(r["expert_id"] for r in pairs)]
        else:
            recipients = [user.id, request.customer_id]
        await self.bus.publish(recipients, {"type": "request.message", **message})
        return {"message": message}


# What closing a request does to its offers still open: their status, and the
# reason their holders are told (None: nobody else held one).
_OFFERS_ON_CLOSE: dict[str, tuple[rules.OfferStatus, str | None]] = {
    "accepted": ("revoked", "taken"),
    "cancelled": ("revoked", "cancelled"),
    "expired": ("expired", "expired"),
    "declined": ("declined", None),
}


@dataclass(frozen=True, slots=True)
class _Written:
    """What the transaction that closed a request did."""

    notified: int
    session: Session | None
    # The session's participants, as ``{id: {id, name, role}}``.
    people: dict[str, dict[str, Any]]
    # Requests whose offers to the winner were withdrawn (he is busy now).
    withdrawn: list[str]
    # Experts whose offers of this request were closed (told why, if anyone).
    revoked: list[str]
    # The expert whose answer counts towards his response time, if any.
    answered: str | None


class _WaveSent(Exception):
    """The wave about to be written was sent meanwhile, or its request closed."""


class _Overlap(Exception):
    """A booking that would overlap another session of the same expert."""


class _Busy(Exception):
    """An instant accept by an expert already in an active session."""


def _decision(value: str) -> str:
    """A claim's value without its nonce: ``status:expert:booked time``."""
    return value.rpartition(":")[0]


def _lost(held: str) -> RtError:
    """The error for a command that lost to the decision ``held``."""
    status = held.partition(":")[0]
    return rules.closed_error(status if status in ("accepted", "cancelled") else "expired")  # type: ignore[arg-type]


__all__ = ["Hub", "normalize"]
