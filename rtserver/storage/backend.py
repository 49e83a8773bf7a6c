"""The node's storage, chosen by its settings: SQLite in the data dir, or PostgreSQL.

``--database-url postgresql://...`` selects PostgreSQL (:mod:`rtserver.storage.pg`)
and keeps attachments in it too (:class:`~rtserver.storage.blobs.DatabaseBlobs`):
nodes on many hosts then share nothing but the database and Redis. Without it,
the embedded default: SQLite and attachment files in ``--data-dir``.
"""

from __future__ import annotations

from collections.abc import Callable

from rtserver.config import Settings
from rtserver.storage.blobs import Blobs, DatabaseBlobs, LocalBlobs
from rtserver.storage.db import Database
from rtserver.storage.pg import PgDatabase
from rtserver.storage.sql import Db

SQLITE_FILE = "rtserver.sqlite3"


def database(settings: Settings, on_lock_wait: Callable[[float, bool], None] | None = None) -> Db:
    """The database of these settings (not opened yet)."""
    if settings.database_url:
        return PgDatabase(settings.database_url)
    return Database(
        settings.data_dir / SQLITE_FILE,
        fsync=settings.fsync,
        # Nodes sharing one SQLite file (on one host) with Redis between them.
        shared=settings.redis_url is not None,
        lock_wait=settings.lock_wait,
        on_lock_wait=on_lock_wait,
    )


def blobs(settings: Settings, db: Db) -> Blobs:
    """Where attachments' bytes live: in the database with PostgreSQL (uploads are
    spooled under the data dir meanwhile), else files in the data dir."""
    root = settings.data_dir / "attachments"
    if settings.database_url:
        return DatabaseBlobs(db, root)
    return LocalBlobs(root)
