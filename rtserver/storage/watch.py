"""A watch on the node's database: does it answer, and is it still the one opened?

For SQLite, the file is checked to be the one the node opened: SQLite keeps
working on a file that was deleted or replaced under it (its connections hold
the old inode open), so every write would then go to a file no one else sees
and that is gone when the node stops. That is fatal, not a failure to retry:
the check raises :class:`rtserver.health.FatalError` and the node exits
instead of acknowledging writes it will lose. For PostgreSQL, a round trip.
"""

from __future__ import annotations

from rtserver.storage.sql import Db


class DatabaseWatch:
    """Checks, at each :meth:`step`, that the database is there and answers."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def step(self) -> None:
        """Fatal if the database is gone or another one; an error if it does not answer."""
        await self.db.check()
