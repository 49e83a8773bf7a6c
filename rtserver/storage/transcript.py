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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from rtserver.clock import from_ms, to_wire
from rtserver.storage.db import Database, Row

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


class _Pending:
    def __init__(self, message: NewMessage) -> None:
        self.message = message
        self.done = anyio.Event()
        self.result: Stored | None = None
        self.error: BaseException | None = None


class Transcript:
    """Appends and reads of session messages."""

    def __init__(self, db: Database, batch: int = 256) -> None:
        self.db = db
        self.batch = batch
        self._send: MemoryObjectSendStream[_Pending]
        self._recv: MemoryObjectReceiveStream[_Pending]
        self._send, self._recv = anyio.create_memory_object_stream[_Pending](max_buffer_size=10_000)
        self.commits = 0
        self.appended = 0

    def close(self) -> None:
        """No more appends (the node is stopping)."""
        self._send.close()
        self._recv.close()

    async def append(self, message: NewMessage) -> Stored:
        """Store a message (or find its cid) and return once it is committed."""
        pending = _Pending(message)
        await self._send.send(pending)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def run(self) -> None:
        """The flusher: commit what is queued, batch after batch, until closed.

        A failed commit ends it: the node runs :meth:`flush` under
        :func:`rtserver.health.supervise`, which survives errors and reports them.
        """
        while await self.flush():
            pass

    async def flush(self) -> bool:
        """Wait for appends and commit them (up to ``batch``) in one transaction.

        False once the queue is closed. A failed commit fails its senders and
        is raised, so that a database that keeps failing is seen (``/healthz``).
        """
        try:
            first = await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return False
        batch = [first]
        while len(batch) < self.batch:
            try:
                batch.append(self._recv.receive_nowait())
            except anyio.WouldBlock:
                break
        await self._commit(batch)
        return True

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results: list[Stored] = []
            async with self.db.transaction() as conn:
                for p in batch:
                    results.append(await self._write(conn, p.message))
        except Exception as exc:
            for p in batch:
                p.error = exc
                p.done.set()
            raise
        self.commits += 1
        self.appended += len(batch)
        for p, r in zip(batch, results, strict=True):
            p.result = r
            p.done.set()

    async def _write(self, conn: Any, m: NewMessage) -> Stored:
        async with conn.execute(
            "SELECT seq, at FROM messages WHERE session_id = ? AND from_id = ? AND cid = ?",
            (m.session_id, m.from_id, m.cid),
        ) as cur:
            row = await cur.fetchone()
        if row is not None:
            return Stored(row[0], row[1], True)
        async with conn.execute(
            "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
            (m.session_id,),
        ) as cur:
            seq_row = await cur.fetchone()
        seq = int(seq_row[0])
        await conn.execute(
            "INSERT INTO messages (session_id, seq, cid, from_id, kind, text, code_language,"
            " code_source, attachment_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        return Stored(seq, m.at_ms, False)

    async def after(self, session_id: str, after_seq: int, limit: int = -1) -> list[Row]:
        """Stored messages with ``seq > after_seq``, in order (at most ``limit``; -1: all)."""
        return await self.db.fetchall(
            "SELECT * FROM messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (session_id, after_seq, limit),
        )

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
