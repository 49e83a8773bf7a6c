"""The transcript's batch writer on a real, migrated database (SQLite, and PostgreSQL).

The write path takes a seq only while the session is active and gives it back
at once when the sender's cid is already stored: these tests pin the rare
branches (a resend within one batch and across batches, a session that ended,
one that does not exist) and that the seq stays gapless through all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rtserver.core.text import email_key
from rtserver.storage.sql import Db
from rtserver.storage.transcript import NewMessage, NotActive, Stored, _write_batch
from tests.storage import opened

pytestmark = pytest.mark.both_backends


@pytest.fixture
async def db(data_dir: Path) -> AsyncIterator[Db]:
    """The database, migrated by the server's own code, with two sessions in it."""
    async with opened(data_dir) as db:
        async with db.transaction() as conn:
            for uid, role in (("u-c", "customer"), ("u-e", "expert")):
                await conn.execute(
                    "INSERT INTO users (id, email, email_key, password_hash, name, role,"
                    " created_at) VALUES (?, ?, ?, 'x', 'Someone', ?, 0)",
                    (uid, f"{uid}@example.com", email_key(f"{uid}@example.com"), role),
                )
            for sid, status in (("s-active", "active"), ("s-ended", "ended")):
                await conn.execute(
                    "INSERT INTO requests (id, customer_id, kind, title, description, skills,"
                    " language, created_at, expires_at)"
                    " VALUES (?, 'u-c', 'instant', 't', '', '[]', 'en', 0, 0)",
                    ("r-" + sid,),
                )
                await conn.execute(
                    "INSERT INTO sessions (id, request_id, customer_id, expert_id, kind, title,"
                    " status, rate_cents_per_15min, created_at)"
                    " VALUES (?, ?, 'u-c', 'u-e', 'instant', 't', ?, 500, 0)",
                    (sid, "r-" + sid, status),
                )
        yield db


def _msg(session_id: str, cid: str, at: int, sender: str = "u-c") -> NewMessage:
    return NewMessage(session_id, cid, sender, "text", f"text {cid}", None, None, None, at)


async def _write(db: Db, batch: list[NewMessage]) -> list[Stored | NotActive]:
    """One batch in one write transaction, as the flusher writes it."""
    async with db.transaction() as conn:
        return await _write_batch(conn, batch)


async def _stored(db: Db, session_id: str) -> tuple[int, list[tuple[int, str]]]:
    async with db.transaction() as conn:
        last = await conn.fetchval("SELECT last_seq FROM sessions WHERE id = ?", (session_id,))
        rows = await conn.fetch(
            "SELECT seq, cid FROM messages WHERE session_id = ? ORDER BY seq", (session_id,)
        )
    return int(last), [(int(r["seq"]), str(r["cid"])) for r in rows]


async def test_a_batch_with_resends_stays_gapless(db: Db) -> None:
    first = await _write(db, [_msg("s-active", "a", 1), _msg("s-active", "b", 2)])
    assert first == [Stored(1, 1, False), Stored(2, 2, False)]
    # In one batch: a new message, a resend of a committed one, the same new cid
    # twice, a message of the other participant with a cid the first one used.
    out = await _write(
        db,
        [
            _msg("s-active", "c", 3),
            _msg("s-active", "a", 4),
            _msg("s-active", "d", 5),
            _msg("s-active", "d", 6),
            _msg("s-active", "a", 7, sender="u-e"),
        ],
    )
    assert out == [
        Stored(3, 3, False),
        Stored(1, 1, True),  # the first send's seq and time, not the resend's
        Stored(4, 5, False),
        Stored(4, 5, True),
        Stored(5, 7, False),
    ]
    last, rows = await _stored(db, "s-active")
    assert last == 5
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5]
    assert [cid for _, cid in rows] == ["a", "b", "c", "d", "a"]


async def test_ended_and_missing_sessions_store_nothing(db: Db) -> None:
    out = await _write(
        db,
        [_msg("s-ended", "x", 1), _msg("s-nowhere", "y", 2), _msg("s-active", "z", 3)],
    )
    assert out == [NotActive("ended"), NotActive("missing"), Stored(1, 3, False)]
    assert await _stored(db, "s-ended") == (0, [])
    assert await _stored(db, "s-active") == (1, [(1, "z")])
