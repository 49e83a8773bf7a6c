"""The roster (matching's in-memory index) ranks as the reference ranking does,
and follows the writes it is told of, on a real SQLite database."""

from __future__ import annotations

import random
from pathlib import Path

from clients.rtclient import Api
from rtserver.core.matching import Need, rank, tiered
from rtserver.hub.roster import Roster
from rtserver.storage.db import Database
from rtserver.storage.requests import HOLDING, OPEN_OFFERS_OF, WITHDRAW_INSTANT
from rtserver.storage.users import RECENT_ANSWERS, RESPONSE_WINDOW, Profile, UserStore
from tests.servers import node_settings, online_expert, run_node

SKILLS = ["python", "go", "rust", "sql"]


def reference(candidates: list, need: Need) -> list[str]:
    """The order matching had before the roster: rank, then the verified tier."""
    return [c.expert_id for c in tiered(rank(candidates, need), set())]


async def test_the_roster_ranks_as_the_reference_and_follows_changes(tmp_path: Path) -> None:
    rnd = random.Random(9)
    async with Database(tmp_path / "rt.sqlite3") as db:
        users = UserStore(db)
        ids = []
        for i in range(60):
            user = await users.create(f"e{i}@x", "h", f"E{i}", "expert", 0)
            ids.append(user.id)
            skills = rnd.sample(SKILLS, rnd.randint(1, 3))
            languages = ["en"] if i % 5 else ["en", "de"]
            await users.put_profile(user.id, Profile(skills=skills, languages=languages), 0)
            await users.set_presence(user.id, "available" if i % 7 else "away")
            async with db.transaction() as conn:
                await conn.execute(
                    "UPDATE expert_profiles SET rating_sum = ?, rating_count = ?,"
                    " response_ms = ? WHERE user_id = ?",
                    (rnd.randint(0, 10), rnd.randint(0, 2), rnd.choice([None, 500, 900]), user.id),
                )
                await conn.execute(
                    "UPDATE users SET last_offered_at = ? WHERE id = ?",
                    (rnd.choice([None, 1, 2]), user.id),
                )
                if i % 3 == 0:
                    await users.set_verification(conn, user.id, "verified")
                if i % 11 == 0:
                    await users.set_verification(conn, user.id, "rejected")
        roster = Roster(users)
        needs = [
            Need.of(["python"], "en"),
            Need.of(["go", "rust"], "en"),
            Need.of(["sql", "python", "go"], "de"),
        ]

        async def check() -> None:
            await roster.refresh()
            for need in needs:
                expected = reference(await users.candidates(need, available_only=True), need)
                got = [c.expert_id for c in roster.ranked(need)]
                # The roster ranks every tier; the reference keeps only the verified one.
                assert got[: len(expected)] == expected

        await check()
        # Changes the roster is told of: presence, preferences, suspension, verification.
        await users.set_presence(ids[1], "away")
        await users.set_presence(ids[7], "available")
        await users.put_profile(ids[2], Profile(skills=["rust"], languages=["de"]), 1)
        async with db.transaction() as conn:
            await users.set_status(conn, ids[4], "suspended")
            await users.set_verification(conn, ids[5], "verified")
            await users.set_verification(conn, ids[6], "rejected")
        roster.invalidate(ids[1:8])
        await check()
        assert roster.statistics()["full_loads"] == 1
        roster.invalidate(None)
        await check()
        assert roster.statistics()["full_loads"] == 2


async def test_a_node_loads_the_roster_when_it_starts(data_dir: Path) -> None:
    """Not on the first request after a restart: that request would pay the load."""
    async with run_node(node_settings(data_dir)) as node:
        api = Api(node.http)
        _, expert = await online_expert(node, api)
        await expert.close()
        await api.aclose()
    async with run_node(node_settings(data_dir)) as node:
        assert node.app is not None
        roster = node.app.state.node.hub.matcher.roster
        assert roster.statistics()["full_loads"] == 1
        assert len(roster) == 1


async def test_an_experts_response_time_is_read_from_one_covering_index(tmp_path: Path) -> None:
    # Once per accept (UserStore.note_response): through the table, it read every
    # offer the expert had been sent, lost races included (docs/benchmarks.md).
    async with Database(tmp_path / "rt.sqlite3") as db:
        plan = await db.fetchall("EXPLAIN QUERY PLAN " + RECENT_ANSWERS, ("e1", RESPONSE_WINDOW))
    details = [row["detail"] for row in plan]
    assert details == [
        "SEARCH offers USING COVERING INDEX offers_answer_times (expert_id=? AND closed_at>?)"
    ], details


async def test_open_offers_and_open_requests_are_read_from_their_partial_indexes(
    tmp_path: Path,
) -> None:
    # Dispatch asks for open offers and open requests only: indexes that held every
    # offer and request ever made were rewritten by each close (docs/benchmarks.md).
    async with Database(tmp_path / "rt.sqlite3") as db:
        plans = {
            name: [row["detail"] for row in await db.fetchall("EXPLAIN QUERY PLAN " + sql, args)]
            for name, sql, args in [
                ("holding", HOLDING, ()),
                ("open offers", OPEN_OFFERS_OF, ("e1", 0)),
                ("withdraw", WITHDRAW_INSTANT, (0, "e1")),
            ]
        }
    assert plans["holding"][0] == "SEARCH r USING INDEX requests_open (kind=?)", plans
    assert "SEARCH o USING INDEX offers_open (expert_id=?)" in plans["open offers"], plans
    # The withdrawal reaches his offers through the few open requests, or through
    # offers_open: never through every offer.
    assert not any(step.startswith("SCAN") for plan in plans.values() for step in plan), plans
