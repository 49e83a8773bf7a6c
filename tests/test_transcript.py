"""The transcript's batch writer on a real, migrated SQLite file.

The write path takes a seq only while the session is active and gives it back
at once when the sender's cid is already stored: these tests pin the rare
branches (a resend within one batch and across batches, a session that ended,
one that does not exist) and that the seq stays gapless through all of them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rtserver.storage.db import Database, SqliteConn
from rtserver.storage.transcript import NewMessage, NotActive, Stored, _write_batch


@pytest.fixture
async def db_file(tmp_path: Path) -> Path:
    """A database migrated by the server's own code, with two sessions in it."""
    path = tmp_path / "rt.db"
    async with Database(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    # Foreign keys are off on this plain connection: users and requests are not
    # what these tests are about.
    for sid, status in (("s-active", "active"), ("s-ended", "ended")):
        conn.execute(
            "INSERT INTO sessions (id, request_id, customer_id, expert_id, kind, title, status,"
            " rate_cents_per_15min, created_at)"
            " VALUES (?, ?, 'u-c', 'u-e', 'instant', 't', ?, 500, 0)",
            (sid, "r-" + sid, status),
        )
    conn.close()
    return path


def _msg(session_id: str, cid: str, at: int, sender: str = "u-c") -> NewMessage:
    return NewMessage(session_id, cid, sender, "text", f"text {cid}", None, None, None, at)


async def _write(path: Path, batch: list[NewMessage]) -> list[Stored | NotActive]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        out = await _write_batch(SqliteConn(conn), batch)
        conn.execute("COMMIT")
        return out
    finally:
        conn.close()


def _stored(path: Path, session_id: str) -> tuple[int, list[tuple[int, str]]]:
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT last_seq FROM sessions WHERE id = ?"
        last = conn.execute(sql, (session_id,)).fetchone()[0]
        rows = conn.execute(
            "SELECT seq, cid FROM messages WHERE session_id = ? ORDER BY seq", (session_id,)
        ).fetchall()
        return int(last), [(int(s), str(c)) for s, c in rows]
    finally:
        conn.close()


async def test_a_batch_with_resends_stays_gapless(db_file: Path) -> None:
    first = await _write(db_file, [_msg("s-active", "a", 1), _msg("s-active", "b", 2)])
    assert first == [Stored(1, 1, False), Stored(2, 2, False)]
    # In one batch: a new message, a resend of a committed one, the same new cid
    # twice, a message of the other participant with a cid the first one used.
    out = await _write(
        db_file,
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
    last, rows = _stored(db_file, "s-active")
    assert last == 5
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5]
    assert [cid for _, cid in rows] == ["a", "b", "c", "d", "a"]


async def test_ended_and_missing_sessions_store_nothing(db_file: Path) -> None:
    out = await _write(
        db_file,
        [_msg("s-ended", "x", 1), _msg("s-nowhere", "y", 2), _msg("s-active", "z", 3)],
    )
    assert out == [NotActive("ended"), NotActive("missing"), Stored(1, 3, False)]
    assert _stored(db_file, "s-ended") == (0, [])
    assert _stored(db_file, "s-active") == (1, [(1, "z")])
