"""Who gets the next wave of a request: the I/O around the pure ranking.

:mod:`rtserver.core.matching` ranks; this module gathers what the ranking
needs (qualified experts from storage, who is connected from the bus, who is
busy or booked from the sessions) and takes the next ``--offer-batch``.
"""

from __future__ import annotations

from rtserver.clock import Clock
from rtserver.config import Settings
from rtserver.core import schedule
from rtserver.core.matching import Need, next_wave, rank, tiered
from rtserver.hub.bus import Bus
from rtserver.storage.requests import Request, RequestStore
from rtserver.storage.sessions import SessionStore
from rtserver.storage.users import UserStore


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

    async def instant(self, request: Request, spare: int | None = 0) -> list[str]:
        """The next wave: connected, available, free, qualified, not yet offered; best first.

        ``spare`` more are returned after the wave's ``--offer-batch``: the hub
        keeps the first ones still free under the write lock, so that experts
        who won another request meanwhile are replaced by the next best instead
        of leaving the wave short (or empty, to wait for a retry). ``None``:
        every eligible expert, best first, for the hub to choose from under the
        lock (see :func:`rtserver.core.matching.spread`).
        """
        need = Need.of(request.skills, request.language)
        candidates = await self.users.candidates(need, available_only=True)
        offered = await self.requests.offered_experts(request.id)
        pool = [c for c in candidates if c.expert_id not in offered]
        if not pool:
            return []
        ids = [c.expert_id for c in pool]
        online = await self.bus.online(ids)
        busy = await self.sessions.busy([i for i in ids if i in online])
        excluded = {i for i in ids if i not in online or i in busy}
        ranked = tiered(rank(pool, need), excluded)
        depth = len(ranked) if spare is None else self.settings.offer_batch + spare
        wave = next_wave(ranked, set(), excluded, depth)
        return [c.expert_id for c in wave]

    async def scheduled(self, request: Request) -> list[str]:
        """The next wave of a scheduled request: qualified, free at one proposed time."""
        need = Need.of(request.skills, request.language)
        candidates = await self.users.candidates(need, available_only=False)
        offered = await self.requests.offered_experts(request.id)
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
