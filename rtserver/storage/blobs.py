"""Where the bytes of attachments live: the data dir, or the database.

An upload is spooled to a temporary file while it is hashed and counted
(:class:`BlobWriter`), then handed to the node's blob store under its SHA-256:
identical uploads are kept once. Two stores, one interface:

- :class:`LocalBlobs`, the embedded default: ``<data-dir>/attachments/<sha[:2]>/<sha>``,
  fsynced before the upload is answered;
- :class:`DatabaseBlobs`, with ``--database-url``: rows of 1 MiB chunks in
  the ``blobs`` table, written in one transaction, so that every node on every
  host serves every file and a backup of the database holds them too.

A download streams the bytes (:meth:`Blobs.chunks`): a large file is never
held in memory whole.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import anyio

from rtserver.storage.sql import Conn, Db

# The size of a row of DatabaseBlobs, and of a read of either store.
CHUNK = 1024 * 1024


class BlobWriter:
    """Streams an upload to a temporary file, hashing and counting as it goes."""

    def __init__(self, spool: Path, limit: int) -> None:
        self.limit = limit
        spool.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=spool, prefix=".upload-")
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0
        self.sha256 = ""

    def write(self, chunk: bytes) -> bool:
        """Add a chunk; False (and nothing kept) once the size limit is passed."""
        self.size += len(chunk)
        if self.size > self.limit:
            return False
        self._hash.update(chunk)
        self._file.write(chunk)
        return True

    def finish(self) -> str:
        """Close the spool file (flushed to disk); the upload's sha256."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.sha256 = self._hash.hexdigest()
        return self.sha256

    def discard(self) -> None:
        """Drop the spool file."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class Blobs(Protocol):
    """A content-addressed store of attachment bytes."""

    def writer(self, limit: int) -> BlobWriter:
        """A spool for one upload of at most ``limit`` bytes."""
        ...

    async def keep(self, writer: BlobWriter) -> str:
        """Store a finished upload under its sha256 (once per content); the sha256.
        The spool file is gone afterwards."""
        ...

    def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        """The bytes of a stored blob, in order."""
        ...


class LocalBlobs:
    """Blobs as files under one directory (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the bytes of this hash live."""
        return self.root / sha256[:2] / sha256

    def writer(self, limit: int) -> BlobWriter:
        return BlobWriter(self.root, limit)

    async def keep(self, writer: BlobWriter) -> str:
        sha = writer.finish()
        target = self.path(sha)
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            writer.path.unlink()
        else:
            os.replace(writer.path, target)
        return sha

    async def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.path(sha256), "rb") as f:
            while chunk := await f.read(CHUNK):
                yield chunk


class DatabaseBlobs:
    """Blobs as rows of chunks in the database (``--database-url``): any node serves any file."""

    def __init__(self, db: Db, spool: Path) -> None:
        self.db = db
        self.spool = spool

    def writer(self, limit: int) -> BlobWriter:
        return BlobWriter(self.spool, limit)

    async def keep(self, writer: BlobWriter) -> str:
        sha = writer.finish()
        try:

            async def store(conn: Conn) -> None:
                # Two uploads of one content at once: the second waits on the first's
                # rows, then inserts nothing.
                if await conn.fetchval(
                    "SELECT 1 FROM blobs WHERE sha256 = ? AND chunk = 0", (sha,)
                ):
                    return
                index = 0
                async with await anyio.open_file(writer.path, "rb") as f:
                    while True:
                        data = await f.read(CHUNK)
                        if not data and index:
                            break
                        await conn.execute(
                            "INSERT INTO blobs (sha256, chunk, data) VALUES (?, ?, ?)"
                            " ON CONFLICT (sha256, chunk) DO NOTHING",
                            (sha, index, data),
                        )
                        index += 1
                        if len(data) < CHUNK:
                            break

            await self.db.write(store)
        finally:
            writer.path.unlink(missing_ok=True)
        return sha

    async def chunks(self, sha256: str) -> AsyncIterator[bytes]:
        index = 0
        while True:
            data = await self.db.fetchval(
                "SELECT data FROM blobs WHERE sha256 = ? AND chunk = ?", (sha256, index)
            )
            if data is None:
                return
            if data:
                yield bytes(data)
            if len(data) < CHUNK:
                return
            index += 1
