"""The roster: who may be offered an instant request now, in memory, by skill and language.

Matching used to load and rank every qualified expert from the database for
each wave (issue 9: 19 ms of server CPU per accepted request at 1,000
experts). The roster keeps, for every expert whose account allows an offer
(an active expert, ``available``, not rejected), what the ranking reads
(:class:`rtserver.core.matching.Candidate`), and for each (skill, language)
the list of those experts in ranking order, kept sorted as they change. A
wave walks that list from the top; connected and free are asked of the bus
and the sessions only for the few it walks past.

It is a cache of the database, kept current by one rule: whoever commits a
change to those facts (presence, preferences, verification, suspension, a
review, a response time, an offer) calls
:meth:`rtserver.hub.bus.Bus.experts_changed`, which marks the experts stale
on this node at once and on every other node through the bus; the next wave
reloads the stale ones from the database before it reads. A node that may
have missed such events (its bus reader found a gap), or that just started,
reloads everyone. The write lock's own check (``UserStore.still_free``)
stays the last word on presence, suspension and sessions, so a change not
yet heard of costs at most an offer that is not made, never a wrong one.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Collection, Iterator
from typing import Any

import anyio

from rtserver.core.matching import Candidate, Need
from rtserver.storage.users import UserStore

log = logging.getLogger("rtserver.hub")

# The ranking of rtserver.core.matching.rank, the verified tier first, for
# experts who all share the need's skill: (tier, rating, response, last offer, id).
Key = tuple[int, float, float, int, str]

# Experts reloaded by one query (SQLite's bound parameters are limited).
RELOAD_CHUNK = 500


def sort_key(c: Candidate) -> Key:
    """Where an expert stands in a bucket: verified first, then as :func:`rank`."""
    return (
        0 if c.verified else 1,
        -(c.rating if c.rating is not None else 0.0),
        c.response_ms if c.response_ms is not None else math.inf,
        c.last_offered_ms if c.last_offered_ms is not None else -1,
        c.expert_id,
    )


class Roster:
    """Offerable experts by (skill, language), each bucket in ranking order."""

    def __init__(self, users: UserStore) -> None:
        self.users = users
        self._experts: dict[str, tuple[Candidate, Key]] = {}
        self._buckets: dict[tuple[str, str], list[Key]] = {}
        self._dirty: set[str] = set()
        # Nothing is known yet: the first read loads everyone.
        self._stale = True
        # One reload at a time: a slow one finishing after a newer one would
        # put back what the newer one replaced.
        self._lock = anyio.Lock()
        self._stats = {"full_loads": 0, "reloaded": 0}

    def __len__(self) -> int:
        return len(self._experts)

    def invalidate(self, expert_ids: Collection[str] | None) -> None:
        """These experts changed (None: maybe anyone): reload them before the next read."""
        if expert_ids is None:
            self._stale = True
        else:
            self._dirty.update(expert_ids)

    async def refresh(self) -> None:
        """Reload what was invalidated, from committed reads.

        Returns at once only when nothing is invalidated and no reload is under
        way: a reload in flight holds experts already taken off ``_dirty`` (on
        PostgreSQL its read yields to the loop), and a wave that did not wait for
        it would rank without a change announced before it started.
        """
        if not self._stale and not self._dirty and not self._lock.locked():
            return
        async with self._lock:
            if self._stale:
                # Cleared before the read: what changes during it is reloaded next time.
                self._stale = False
                self._dirty.clear()
                try:
                    rows = await self.users.offerable(None)
                except BaseException:
                    self._stale = True
                    raise
                self._experts.clear()
                self._buckets.clear()
                for c in rows:
                    key = sort_key(c)
                    self._experts[c.expert_id] = (c, key)
                    for skill in c.skills:
                        for language in c.languages:
                            self._buckets.setdefault((skill, language), []).append(key)
                for bucket in self._buckets.values():
                    bucket.sort()
                self._stats["full_loads"] += 1
                log.info("roster loaded experts=%d", len(self._experts))
            while self._dirty:
                ids = sorted(self._dirty)[:RELOAD_CHUNK]
                self._dirty.difference_update(ids)
                try:
                    rows = await self.users.offerable(ids)
                except BaseException:
                    self._dirty.update(ids)
                    raise
                found = {c.expert_id: c for c in rows}
                for expert_id in ids:
                    self._drop(expert_id)
                    fresh = found.get(expert_id)
                    if fresh is not None:
                        self._put(fresh)
                self._stats["reloaded"] += len(ids)

    def ranked(self, need: Need) -> Iterator[Candidate]:
        """The offerable experts who qualify for ``need``: verified first, then in the
        order of :func:`rtserver.core.matching.rank` (more of its skills first).

        Lazy, over a copy of the order taken at the call: the caller awaits
        while it walks, and a reload meanwhile must not shift the list under it.
        """
        buckets = [self._buckets.get((s, need.language), []) for s in need.skills]
        if len(buckets) == 1:
            # A copy made in C: a wave walks a few dozen of the thousands of keys.
            order = (k[4] for k in buckets[0].copy())
        else:
            found = {k[4] for bucket in buckets for k in bucket}
            entries = [self._experts[e] for e in found]
            entries.sort(key=lambda ck: (ck[1][0], -len(ck[0].skills & need.skills), *ck[1][1:]))
            order = (c.expert_id for c, _ in entries)
        for expert_id in order:
            entry = self._experts.get(expert_id)
            if entry is not None:
                yield entry[0]

    def statistics(self) -> dict[str, Any]:
        """Experts held, full loads, experts reloaded one by one."""
        return {"experts": len(self._experts), **self._stats}

    def _put(self, c: Candidate) -> None:
        key = sort_key(c)
        self._experts[c.expert_id] = (c, key)
        for skill in c.skills:
            for language in c.languages:
                bisect.insort(self._buckets.setdefault((skill, language), []), key)

    def _drop(self, expert_id: str) -> None:
        entry = self._experts.pop(expert_id, None)
        if entry is None:
            return
        c, key = entry
        for skill in c.skills:
            for language in c.languages:
                bucket = self._buckets[(skill, language)]
                i = bisect.bisect_left(bucket, key)
                del bucket[i]
                if not bucket:
                    del self._buckets[(skill, language)]
