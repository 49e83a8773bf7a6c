"""Durable transcripts with group commit.

``append`` returns only once the message is committed to SQLite, so an
``ok`` to ``message.send`` means the message survives a crash of the node.
Appends from every socket of the node go through one queue; a flusher takes
everything queued (up to ``batch``) and writes it in **one** transaction, so
under load one commit serves many messages: durability does not cost one
commit per message. With no load, a message is committed alone at once (no
waiting for a batch to fill).

``seq`` comes from ``sessions.last_seq`` incremented inside the transaction;
SQLite's write lock makes it gapless across every node sharing the file. A
``cid`` its sender already stored returns the first ``seq`` and stores
nothing (a cid is the sending client's id: the other participant's client
may well pick the same one).

A batch is one unit of work (:meth:`Db.write`): one transaction and one
commit for the whole batch, not one per message. It also reads each
session's status under the write lock, so that a message to a session that
ended, on any node, is refused (:class:`NotActive`) rather than stored: the
room service may then check the session from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio

from rtserver.clock import from_ms, to_wire
from rtserver.storage.sql import Conn, Db, Row

log = logging.getLogger("rtserver.transcript")


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append."""

    session_id: str
    cid: str
    from_id: str
    kind: str
    text: str | None
    code_language: str | None
    code_source: str | None
    attachment_id: str | None
    at_ms: int


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an appended message landed."""

    seq: int
    at_ms: int
    duplicate: bool


def message_wire(
    row: Row, people: dict[str, dict[str, Any]], attachments: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A stored message as participants see it (without ``type``)."""
    code = None
    if row["kind"] == "code":
        code = {"language": row["code_language"] or "", "source": row["code_source"]}
    return {
        "session_id": row["session_id"],
        "seq": row["seq"],
        "cid": row["cid"],
        "from": people.get(row["from_id"], {"id": row["from_id"]}),
        "kind": row["kind"],
        "text": row["text"],
        "code": code,
        "attachment": attachments.get(row["attachment_id"]) if row["attachment_id"] else None,
        "at": to_wire(from_ms(row["at"])),
    }


@dataclass(frozen=True, slots=True)
class NotActive:
    """An append refused: the session was not active at commit (it ended meanwhile)."""

    status: str


# The common case is two statements per message: take the next seq (only while
# the session is active), then insert unless the sender's cid is already there.
# The rare cases (not active, a resend) pay for a third and fourth statement.
# One statement fewer than a status-and-cid check first: about 30 % less writer
# CPU per message (docs/benchmarks.md, "Issue 9: the message path").
_NEXT_SEQ = (
    "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = ? AND status = 'active'"
    " RETURNING last_seq"
)
_STATUS = "SELECT status FROM sessions WHERE id = ?"
_INSERT = (
    "INSERT INTO messages (session_id, seq, cid, from_id, kind, text, code_language,"
    " code_source, attachment_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, from_id, cid) DO NOTHING"
)
_GIVE_BACK_SEQ = "UPDATE sessions SET last_seq = last_seq - 1 WHERE id = ?"
_EARLIER = "SELECT seq, at FROM messages WHERE session_id = ? AND from_id = ? AND cid = ?"


async def _write_batch(conn: Conn, batch: list[NewMessage]) -> list[Stored | NotActive]:
    """Store a batch inside the caller's write transaction (a unit of work of
    :meth:`Db.write`).

    The session's status is checked here, under the write lock, so that a message
    never lands in a session that ended (on any node) before this commit. A resend
    (the sender's cid already stored) gives its seq back at once, in the same
    transaction and under the same lock, so the seq stays gapless.
    """
    out: list[Stored | NotActive] = []
    sessions = sorted({m.session_id for m in batch})
    if len(sessions) > 1:
        # On PostgreSQL each seq update locks its session's row until the commit:
        # taken in one order (by id) here, so that two nodes' batches never wait
        # for each other's rows in a cycle. (SQLite: nothing; its lock is the file's.)
        marks = ",".join("?" * len(sessions))
        await conn.lock(
            f"SELECT id FROM sessions WHERE id IN ({marks}) ORDER BY id FOR UPDATE", sessions
        )
    for m in batch:
        row = await conn.fetchrow(_NEXT_SEQ, (m.session_id,))
        if row is None:
            status = await conn.fetchrow(_STATUS, (m.session_id,))
            out.append(NotActive(status[0] if status else "missing"))
            continue
        seq = int(row[0])
        inserted = await conn.execute(
            _INSERT,
            (
                m.session_id,
                seq,
                m.cid,
                m.from_id,
                m.kind,
                m.text,
                m.code_language,
                m.code_source,
                m.attachment_id,
                m.at_ms,
            ),
        )
        if inserted == 1:
            out.append(Stored(seq, m.at_ms, False))
            continue
        await conn.execute(_GIVE_BACK_SEQ, (m.session_id,))
        earlier = await conn.fetchrow(_EARLIER, (m.session_id, m.from_id, m.cid))
        assert earlier is not None  # the cid that refused the insert
        out.append(Stored(int(earlier[0]), int(earlier[1]), True))
    return out


class _Lane:
    """One flusher's queue: the appends of the sessions that hash to it."""

    __slots__ = ("queue", "ready", "waiting_for_room")

    def __init__(self) -> None:
        # Appends waiting for the flusher: each its message and the future its
        # sender awaits. Plain asyncio here, not anyio streams and events: this
        # runs once per chat message, and their per-call overhead showed in profiles.
        self.queue: deque[tuple[NewMessage, asyncio.Future[Stored | NotActive]]] = deque()
        self.waiting_for_room: deque[asyncio.Future[None]] = deque()
        self.ready = asyncio.Event()


class Transcript:
    """Appends and reads of session messages.

    Appends are committed by ``lanes`` flushers side by side, each in its own
    transactions: a session always goes to the same lane (by a hash of its id),
    so that its messages are committed in the order they came. SQLite has one
    writer, so one lane; on PostgreSQL each lane is a connection of the pool,
    and a batch waits there for round trips, not for the CPU.
    """

    def __init__(self, db: Db, batch: int = 256, limit: int = 10_000, lanes: int = 1) -> None:
        self.db = db
        self.batch = batch
        self._lanes = [_Lane() for _ in range(max(1, lanes))]
        # Past ``limit`` queued in a lane, its appends wait for room (backpressure,
        # not memory).
        self._limit = limit
        self._closed = False
        self.commits = 0
        self.appended = 0

    @property
    def lanes(self) -> int:
        """How many flushers commit side by side."""
        return len(self._lanes)

    def close(self) -> None:
        """No more appends (the node is stopping)."""
        self._closed = True
        for lane in self._lanes:
            lane.ready.set()
            for room in lane.waiting_for_room:
                if not room.done():
                    room.set_result(None)

    async def append(self, message: NewMessage) -> Stored | NotActive:
        """Store a message (or find its cid) and return once it is committed.

        :class:`NotActive` if the session was not active at the commit.
        """
        lane = self._lanes[hash(message.session_id) % len(self._lanes)]
        loop = asyncio.get_running_loop()
        while len(lane.queue) >= self._limit and not self._closed:
            room: asyncio.Future[None] = loop.create_future()
            lane.waiting_for_room.append(room)
            await room
        if self._closed:
            raise anyio.ClosedResourceError
        done: asyncio.Future[Stored | NotActive] = loop.create_future()
        lane.queue.append((message, done))
        lane.ready.set()
        return await done

    async def flush(self, lane: int = 0) -> bool:
        """Wait for appends to this lane and commit them (up to ``batch``) in one
        transaction.

        False once closed and drained. A failed commit fails its senders and is
        raised, so that a database that keeps failing is seen (``/healthz``).
        """
        q = self._lanes[lane]
        while not q.queue:
            if self._closed:
                return False
            q.ready.clear()
            await q.ready.wait()
        batch = [q.queue.popleft() for _ in range(min(self.batch, len(q.queue)))]
        while q.waiting_for_room and len(q.queue) < self._limit:
            room = q.waiting_for_room.popleft()
            if not room.done():
                room.set_result(None)
        await self._commit(batch)
        return True

    async def _commit(
        self, batch: list[tuple[NewMessage, asyncio.Future[Stored | NotActive]]]
    ) -> None:
        messages = [m for m, _ in batch]
        try:
            results = await self.db.write(lambda conn: _write_batch(conn, messages))
        except Exception as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            raise
        self.commits += 1
        self.appended += len(batch)
        for (_, done), r in zip(batch, results, strict=True):
            # A sender cancelled meanwhile (its socket closed) no longer waits:
            # the message is stored all the same, and a resend finds its cid.
            if not done.done():
                done.set_result(r)

    async def earlier(self, session_id: str, from_id: str, cid: str) -> Stored | None:
        """The message this sender already stored under ``cid``, if any."""
        row = await self.db.fetchone(_EARLIER, (session_id, from_id, cid))
        return Stored(int(row[0]), int(row[1]), True) if row is not None else None

    async def after(self, session_id: str, after_seq: int, limit: int | None = None) -> list[Row]:
        """Stored messages with ``seq > after_seq``, in order (at most ``limit``; None: all)."""
        sql = "SELECT * FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq"
        if limit is None:
            return await self.db.fetchall(sql, (session_id, after_seq))
        return await self.db.fetchall(sql + " LIMIT ?", (session_id, after_seq, limit))

    async def code_of(self, session_id: str) -> list[Row]:
        """A session's code snippets, in order."""
        return await self.db.fetchall(
            "SELECT * FROM messages WHERE session_id = ? AND kind = 'code' ORDER BY seq",
            (session_id,),
        )

    def statistics(self) -> dict[str, float]:
        """Commits, messages, and messages per commit (what group commit buys)."""
        return {
            "commits": self.commits,
            "appended": self.appended,
            "per_commit": self.appended / self.commits if self.commits else 0.0,
        }
