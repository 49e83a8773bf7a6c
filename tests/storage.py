"""A test's storage, read straight, whichever backend the test runs on.

Tests check what was stored (rows, the ledger) by reading the database
themselves, not through the server: the SQLite file of the data dir, or the
test's PostgreSQL database (``tests.servers.DATABASES``). SQL is written with
``?`` placeholders, as the stores write it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from rtserver.storage import backend
from rtserver.storage.sql import Db
from tests.servers import DATABASES, node_settings


def database_url(data_dir: Path) -> str | None:
    """The test's PostgreSQL database, or None on SQLite."""
    return DATABASES.get(str(data_dir))


def query(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a read, as dicts, straight from the test's database."""
    url = database_url(data_dir)
    if url is None:
        conn = sqlite3.connect(
            f"file:{data_dir / 'rtserver.sqlite3'}?mode=ro", uri=True, timeout=15
        )
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()
    return query_url(url, sql, params)


def query_url(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a read, as dicts, from the PostgreSQL database at ``url``."""
    with psycopg.connect(url, row_factory=dict_row) as pg:
        return list(pg.execute(sql.replace("?", "%s"), params).fetchall())


def execute(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """One write, committed, straight to the test's database, as another program
    would make it (not through the node); the backend's own error if it is refused
    (``sqlite3.IntegrityError``, ``psycopg.IntegrityError``: see :data:`INTEGRITY_ERRORS`)."""
    url = database_url(data_dir)
    if url is None:
        conn = sqlite3.connect(data_dir / "rtserver.sqlite3", timeout=15)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()
        return
    with psycopg.connect(url) as pg:
        pg.execute(sql.replace("?", "%s"), params)


# A constraint refused a write of :func:`execute`, on either backend.
INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg.IntegrityError)
# Any refusal of a write of :func:`execute` (a trigger's error too), on either backend.
DATABASE_ERRORS = (sqlite3.DatabaseError, psycopg.DatabaseError)


@asynccontextmanager
async def held_write(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> AsyncIterator[None]:
    """One write by another program, made on entering and committed on leaving the
    block (rolled back if it fails): the node's writes that meet it wait meanwhile.
    SQLite: ``BEGIN IMMEDIATE``, the whole file's write lock; PostgreSQL: the locks of
    the rows it wrote."""
    url = database_url(data_dir)
    if url is None:
        lite = sqlite3.connect(
            data_dir / "rtserver.sqlite3", isolation_level=None, check_same_thread=False
        )
        try:
            await asyncio.to_thread(lite.execute, "BEGIN IMMEDIATE")
            await asyncio.to_thread(lite.execute, sql, params)
            yield
            await asyncio.to_thread(lite.execute, "COMMIT")
        finally:
            lite.close()
        return
    pg = await asyncio.to_thread(psycopg.connect, url)
    try:
        await asyncio.to_thread(pg.execute, sql.replace("?", "%s"), params)
        yield
        await asyncio.to_thread(pg.commit)
    finally:
        await asyncio.to_thread(pg.close)


def storage_flags(data_dir: Path) -> list[str]:
    """The command-line flags that name the test's storage (``rtserver user create ...``)."""
    url = database_url(data_dir)
    return ["--data-dir", str(data_dir)] + (["--database-url", url] if url else [])


@asynccontextmanager
async def opened(data_dir: Path) -> AsyncIterator[Db]:
    """The test's database, opened as a node opens it (for stores used directly)."""
    async with backend.database(node_settings(data_dir)) as db:
        yield db
