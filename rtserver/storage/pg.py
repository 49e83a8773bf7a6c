"""The PostgreSQL database (``--database-url postgresql://...``): a pool of asyncpg connections.

The same stores run on it as on SQLite (:mod:`rtserver.storage.sql`): their SQL
is written once with ``?`` placeholders, numbered here (``$1``, ``$2``, ...)
once per statement text and cached.

Transactions are PostgreSQL's ``READ COMMITTED``, one connection of the pool
for each. SQLite serializes every write; here writes run side by side, and
each rule that two of them could break together is held by the database
itself, for any number of nodes on any number of hosts:

- a gapless ``seq`` per session: ``UPDATE sessions SET last_seq = last_seq + 1
  ... RETURNING`` locks the session's row until the commit;
- first accept wins: the request is closed by an ``UPDATE ... WHERE status =
  'open'``, which waits for a concurrent one and then sees its row closed;
- one active session per expert: a unique index on ``sessions (expert_id)
  WHERE status = 'active'`` (named ``expert_busy``, as SQLite's trigger says);
- the ledger and the audit log are append-only: triggers refuse ``UPDATE`` and
  ``DELETE``;
- timers: a lease is taken by an ``UPDATE`` of the row selected ``FOR UPDATE
  SKIP LOCKED`` and guarded by the lease's end: one claimant gets it, and the
  others pass at once instead of queueing behind it;
- idempotency keys: a primary key.

A connection lost or a server restarting is an error of the unit of work that
met it (``internal``, nothing half-written: the transaction is the server's);
the pool opens fresh connections for the next ones.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import asyncpg

from rtserver.storage.sql import Conn, IntegrityError, Reads, Row

log = logging.getLogger("rtserver.storage")

T = TypeVar("T")

_COUNT = re.compile(r"(\d+)$")
# Runs of a unit of work that PostgreSQL aborted (a deadlock broken, a serialization failure).
RETRIES = 5


@functools.lru_cache(maxsize=4096)
def numbered(sql: str) -> str:
    """``?`` placeholders numbered ``$1``, ``$2``, ... (not those inside a quoted
    string or identifier)."""
    out: list[str] = []
    n = 0
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _integrity(exc: asyncpg.PostgresError) -> IntegrityError:
    name = getattr(exc, "constraint_name", None)
    message = str(exc)
    if name and name not in message:
        message = f"{message} ({name})"
    return IntegrityError(message)


class PgConn:
    """:class:`~rtserver.storage.sql.Conn` on one asyncpg connection."""

    __slots__ = ("_conn",)
    row_locks = True

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        try:
            rows: list[Row] = await self._conn.fetch(numbered(sql), *args)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError) as exc:
            raise _integrity(exc) from exc
        return rows

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        try:
            row: Row | None = await self._conn.fetchrow(numbered(sql), *args)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError) as exc:
            raise _integrity(exc) from exc
        return row

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        try:
            return await self._conn.fetchval(numbered(sql), *args)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError) as exc:
            raise _integrity(exc) from exc

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            status: str = await self._conn.execute(numbered(sql), *args)
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError) as exc:
            raise _integrity(exc) from exc
        found = _COUNT.search(status)
        return int(found.group(1)) if found else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(numbered(sql), list(rows))
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.RaiseError) as exc:
            raise _integrity(exc) from exc

    async def lock(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self.fetch(sql, args)


class PgDatabase(Reads):
    """One node's pool of connections to a PostgreSQL database. Use ``async with``."""

    # Transcript lanes committing side by side: each holds a connection of the
    # pool while its batch makes its round trips.
    writers = 4

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 20) -> None:
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> PgDatabase:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the pool and bring the schema up to date."""
        from rtserver.storage.pg_schema import migrate

        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            # Statements are cached per connection by asyncpg; a migration that
            # changes a table makes them stale, which asyncpg then re-prepares.
            server_settings={"application_name": "rtserver", "timezone": "UTC"},
        )
        async with self._pool.acquire() as conn:
            await migrate(conn)

    async def aclose(self) -> None:
        """Close the pool (waiting for connections in use to be released)."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def schema_version(self) -> int:
        """The schema version applied to the database."""
        from rtserver.storage.pg_schema import schema_version

        async with self.pool.acquire() as conn:
            return await schema_version(conn)

    async def check(self) -> None:
        """An error if the database does not answer."""
        await self.fetchval("SELECT 1")

    async def shared_secret(self, name: str) -> bytes:
        """A secret of the deployment kept in ``shared_state``: made by whichever node
        asks first, read by every other (one row, inserted once)."""
        value = secrets.token_hex(32)
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT INTO shared_state (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (name, value),
            )
            stored = await conn.fetchval("SELECT value FROM shared_state WHERE name = ?", (name,))
        return str(stored).encode()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A write transaction, committed on exit, rolled back on error."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield PgConn(conn)

    async def write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction; its result once committed.

        A transaction that PostgreSQL aborted to break a deadlock (or a
        serialization failure) committed nothing: ``work`` is run again, up to
        ``RETRIES`` times. A unit of work is a function of what it reads, so
        running it again is safe; the ones written with ``transaction()``
        are not retried (their error is the command's)."""
        for attempt in range(RETRIES):
            try:
                async with self.transaction() as conn:
                    return await work(conn)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
                if attempt == RETRIES - 1:
                    raise
                log.warning("transaction aborted by PostgreSQL (%s): running it again", exc)
        raise AssertionError("unreachable")

    async def read(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``work`` on one connection, outside a transaction: committed reads."""
        async with self.pool.acquire() as conn:
            return await work(PgConn(conn))
