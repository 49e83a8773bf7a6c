"""What a store asks of a database, whichever it is: the one interface of the backends.

Every store (users, requests, sessions, the transcript, the ledger, ...) is
written once, against :class:`Conn`: the statements of one unit of work on one
connection. SQL is written once too, in the dialect SQLite and PostgreSQL both
speak: ``?`` placeholders, ``INSERT ... ON CONFLICT ... DO NOTHING``,
``RETURNING`` instead of a last row id, integers for times (UTC milliseconds),
money (cents) and flags.

A unit of work is an ``async`` function of a :class:`Conn`, handed to the
database's ``read`` (committed reads, no transaction held) or ``write`` (one
transaction: committed when it returns, rolled back when it raises), or run in
``async with db.transaction() as conn``. On SQLite its statements run on the
event loop at once (each ``await`` returns without yielding); on a server
database they are round trips.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Row(Protocol):
    """One result row: by column name or by position (``sqlite3.Row`` and
    asyncpg's ``Record`` both are)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class IntegrityError(Exception):
    """The database refused a write: a unique key, a check, a trigger.

    ``str(exc)`` carries the database's own message (``UNIQUE constraint
    failed: ...``, or a trigger's ``expert_busy``).
    """


class Conn(Protocol):
    """The statements of one unit of work, on one connection."""

    # True where rows lock one by one (PostgreSQL: writers run side by side); False
    # where a write transaction holds the whole database (SQLite), so that a unit of
    # work may skip what only row locks make necessary.
    row_locks: bool

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Every row of a statement (a ``SELECT``, or a write ``RETURNING`` rows)."""
        ...

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a statement, or None."""
        ...

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run a statement once per row of parameters."""
        ...

    async def lock(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Take the row locks of a ``SELECT ... FOR UPDATE`` until the commit, where
        rows lock (PostgreSQL); nothing where the write transaction holds the
        whole database already (SQLite)."""
        ...


class Reads:
    """``fetchone``, ``fetchall`` and ``fetchval`` of a database, as one-statement
    units of work of its ``read``."""

    async def read(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """One row from a committed read, or None."""
        args = tuple(params)
        return await self.read(lambda conn: conn.fetchrow(sql, args))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """All rows of a committed read."""
        args = tuple(params)
        return await self.read(lambda conn: conn.fetch(sql, args))

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first column of the first row of a committed read, or None."""
        args = tuple(params)
        return await self.read(lambda conn: conn.fetchval(sql, args))


class Db(Protocol):
    """A node's database: SQLite in the data dir (:class:`rtserver.storage.db.Database`)
    or PostgreSQL (:class:`rtserver.storage.pg.PgDatabase`)."""

    # How many write transactions are worth running side by side (the
    # transcript's lanes): SQLite has one writer; a server database many.
    writers: int

    async def read(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """``work`` on committed data, outside a write transaction."""
        ...

    async def write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """``work`` in one transaction; its result once committed."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A write transaction, committed on exit, rolled back on error."""
        ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """One row from a committed read, or None."""
        ...

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """All rows of a committed read."""
        ...

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first column of the first row of a committed read, or None."""
        ...

    async def check(self) -> None:
        """Raise if the database does not answer (or, fatally, is not the one opened)."""
        ...

    async def shared_secret(self, name: str) -> bytes:
        """A secret every node of the deployment shares (the token signing key),
        made on first use."""
        ...

    async def open(self) -> None:
        """Connect, and bring the schema up to date."""
        ...

    async def schema_version(self) -> int:
        """The schema version applied to the database."""
        ...

    async def __aenter__(self) -> Db: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def aclose(self) -> None:
        """Disconnect."""
        ...
