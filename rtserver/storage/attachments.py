"""Attachments: files stored once by content hash, rows that say who may read them.

Bytes live in the node's blob store (:mod:`rtserver.storage.blobs`: files
under ``<data-dir>/attachments``, or the database with ``--database-url``),
by content hash: identical uploads share one blob. A row per upload records
the uploader, the name and type, and the request or session it belongs to,
which decides who may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtserver.storage.blobs import Blobs
from rtserver.storage.db import new_id
from rtserver.storage.sql import Conn, Db, Row


@dataclass(frozen=True, slots=True)
class Attachment:
    """One uploaded file."""

    id: str
    uploader_id: str
    sha256: str
    name: str
    size: int
    content_type: str
    kind: str
    session_id: str | None
    request_id: str | None

    def to_wire(self) -> dict[str, Any]:
        """``{id, name, size, content_type, sha256, kind}``."""
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
            "sha256": self.sha256,
            "kind": self.kind,
        }


def _attachment(row: Row) -> Attachment:
    return Attachment(
        row["id"],
        row["uploader_id"],
        row["sha256"],
        row["name"],
        row["size"],
        row["content_type"],
        row["kind"],
        row["session_id"],
        row["request_id"],
    )


class AttachmentStore:
    """The ``attachments`` table, and the node's blob store for their bytes."""

    def __init__(self, db: Db, blobs: Blobs) -> None:
        self.db = db
        self.blobs = blobs

    async def insert(self, conn: Conn, a: Attachment, now_ms: int) -> None:
        """Record an upload, inside the caller's transaction."""
        await conn.execute(
            "INSERT INTO attachments (id, uploader_id, sha256, name, size, content_type, kind,"
            " session_id, request_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.id,
                a.uploader_id,
                a.sha256,
                a.name,
                a.size,
                a.content_type,
                a.kind,
                a.session_id,
                a.request_id,
                now_ms,
            ),
        )

    async def get(self, attachment_id: str) -> Attachment | None:
        """An attachment by id, or None."""
        row = await self.db.fetchone("SELECT * FROM attachments WHERE id = ?", (attachment_id,))
        return _attachment(row) if row else None

    async def many(self, ids: list[str]) -> dict[str, Attachment]:
        """Attachments by id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(f"SELECT * FROM attachments WHERE id IN ({marks})", ids)
        return {r["id"]: _attachment(r) for r in rows}

    async def of_session(self, session_id: str) -> list[Attachment]:
        """Files and recordings of a session (uploaded to it or posted in its chat)."""
        rows = await self.db.fetchall(
            "SELECT * FROM attachments WHERE session_id = ? OR id IN (SELECT attachment_id"
            " FROM messages WHERE session_id = ? AND attachment_id IS NOT NULL)"
            " ORDER BY created_at",
            (session_id, session_id),
        )
        return [_attachment(r) for r in rows]

    async def of_request(self, request_id: str) -> list[Attachment]:
        """Files attached to a request."""
        rows = await self.db.fetchall(
            "SELECT * FROM attachments WHERE request_id = ? ORDER BY created_at", (request_id,)
        )
        return [_attachment(r) for r in rows]

    async def link(
        self,
        conn: Conn,
        ids: list[str],
        *,
        request_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Attach uploads to a request or a session (keeping an existing link)."""
        await conn.executemany(
            "UPDATE attachments SET request_id = coalesce(request_id, ?),"
            " session_id = coalesce(session_id, ?) WHERE id = ?",
            [(request_id, session_id, i) for i in ids],
        )

    def new(
        self,
        uploader_id: str,
        sha256: str,
        name: str,
        size: int,
        content_type: str,
        kind: str,
        session_id: str | None,
        request_id: str | None,
    ) -> Attachment:
        """A new attachment value with a fresh id."""
        return Attachment(
            new_id("a"), uploader_id, sha256, name, size, content_type, kind, session_id, request_id
        )
