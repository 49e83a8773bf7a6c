"""Who gets the next wave of a request: the I/O around the pure ranking.

:mod:`rtserver.core.matching` ranks; this module gathers what the ranking
needs (qualified experts from the roster, or from storage for scheduled
requests; who is connected from the bus; who is busy or booked from the
sessions) and takes the next ``--offer-batch``.
"""

from __future__ import annotations

import itertools

from rtserver.clock import Clock
from rtserver.config import Settings
from rtserver.core import schedule
from rtserver.core.matching import Candidate, Need, next_wave, rank, tiered
from rtserver.hub.bus import Bus
from rtserver.hub.roster import Roster
from rtserver.storage.requests import Request, RequestStore
from rtserver.storage.sessions import SessionStore
from rtserver.storage.sql import Conn
from rtserver.storage.users import UserStore

# Experts asked of the bus and the sessions at once, as a wave walks the roster.
WALK_STEP = 32


class Matcher:
    """Chooses the experts of a request's next wave, best first."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: Bus,
        users: UserStore,
        requests: RequestStore,
        sessions: SessionStore,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.bus = bus
        self.users = users
        self.requests = requests
        self.sessions = sessions
        self.roster = Roster(users)
        bus.watch_experts(self.roster.invalidate)

    async def instant(self, request: Request, depth: int) -> list[str]:
        """Connected, available, free, qualified experts not yet offered, best first:
        enough of them to hold ``depth`` who hold no open offer of another instant
        request (with those who do, met on the way).

        The hub takes the wave from them under the write lock: spread (those
        holding other offers last), then the first ``--offer-batch`` still free
        (see :func:`rtserver.core.matching.spread`). Read from the roster, so
        that a wave costs the few experts it walks past, not all who qualify.
        """
        await self.roster.refresh()
        need = Need.of(request.skills, request.language)

        async def read(conn: Conn) -> tuple[set[str], set[str]]:
            return (
                await self.requests.offered_experts(conn, request.id),
                await self.requests.holding_instant_offers(conn),
            )

        offered, holding = await self.requests.db.read(read)
        pool = (c for c in self.roster.ranked(need) if c.expert_id not in offered)
        # Connected experts, best first, minus those found in a session; of them, the
        # non-holders not yet asked about sessions. Who is in a session is asked once
        # for all of them when they would be enough, not once per page (a wave walks
        # past the holders of other waves' offers: several pages under load, each a
        # query). Holders are not asked: the accept that put an expert in a session
        # withdrew his instant offers in its own transaction.
        chosen: list[Candidate] = []
        unasked: list[str] = []
        unheld = 0
        step = max(WALK_STEP, depth)
        while True:
            page = list(itertools.islice(pool, step))
            if page:
                online = await self.bus.online([c.expert_id for c in page])
                for c in page:
                    if c.expert_id in online:
                        chosen.append(c)
                        if c.expert_id not in holding:
                            unasked.append(c.expert_id)
            if unasked and (unheld + len(unasked) >= depth or not page):
                busy = await self.sessions.busy(unasked)
                if busy:
                    chosen = [c for c in chosen if c.expert_id not in busy]
                unheld += len(unasked) - len(busy)
                unasked = []
            if unheld >= depth or not page:
                break
        # The verified tier (core.matching.tiered): the roster ranks the verified
        # first, so the first one eligible tells whether any is.
        if chosen and chosen[0].verified:
            chosen = list(itertools.takewhile(lambda c: c.verified, chosen))
        return [c.expert_id for c in chosen]

    async def scheduled(self, request: Request) -> list[str]:
        """The next wave of a scheduled request: qualified, free at one proposed time."""
        need = Need.of(request.skills, request.language)
        candidates = await self.users.candidates(need, available_only=False)
        offered = await self.requests.db.read(
            lambda conn: self.requests.offered_experts(conn, request.id)
        )
        pool = [c for c in candidates if c.expert_id not in offered]
        if not pool:
            return []
        booked = await self.sessions.booked_many([c.expert_id for c in pool])
        now = self.clock.now()
        length = self.settings.session_length
        excluded = {
            c.expert_id
            for c in pool
            if not schedule.free_times(
                request.proposed_times, booked.get(c.expert_id, []), length, now
            )
        }
        ranked = tiered(rank(pool, need), excluded)
        wave = next_wave(ranked, set(), excluded, self.settings.offer_batch)
        return [c.expert_id for c in wave]
