"""A watch on the database file: is the file the node writes still the one on disk?

SQLite keeps working on a file that was deleted or replaced under it (its
connections hold the old inode open): every write would then go to a file no
one else sees and that is gone when the node stops. That is fatal, not a
failure to retry: the watch raises :class:`rtserver.health.FatalError` and the
node exits instead of acknowledging writes it will lose.
"""

from __future__ import annotations

import logging
import os

from rtserver.health import FatalError
from rtserver.storage.db import Database

log = logging.getLogger("rtserver.storage")


class DatabaseWatch:
    """Checks, at each :meth:`step`, that the database file is there and answers."""

    def __init__(self, db: Database) -> None:
        self.db = db
        st = os.stat(db.path)
        self._identity = (st.st_dev, st.st_ino)

    async def step(self) -> None:
        """Fatal if the file is gone or another one; an error if it does not answer."""
        try:
            st = os.stat(self.db.path)
        except FileNotFoundError:
            raise FatalError(f"the database file {self.db.path} is gone") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise FatalError(f"the database file {self.db.path} was replaced")
        # A read of the schema page: a disk or file that fails is seen here too.
        await self.db.fetchone("SELECT count(*) FROM sqlite_master")
