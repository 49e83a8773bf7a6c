"""The SQLite database: one writer connection and one reader per node.

Several nodes may share one database file (``--data-dir`` on shared storage
with ``--redis-url``): SQLite's own file locks serialize writers across
processes (``BEGIN IMMEDIATE`` with a busy timeout), and WAL lets readers run
beside a writer. A write lock held longer than one busy-timeout round (a
backup, a ``sqlite3`` shell in a transaction) is waited for with backoff, up
to ``--lock-wait``, then answered :class:`~rtserver.errors.Busy`. Only the
``BEGIN`` is retried: it is where a write meets the lock (in WAL mode nothing
after it waits for one), and nothing of the transaction has run yet.

Within a node, an asyncio lock serializes write transactions on the one
writer connection, because statements of two coroutines must not interleave
inside one transaction.

Statements run on the event loop's own thread. An indexed statement costs a few
microseconds; handing it to a database thread and back cost far more (two
thread wake-ups, the GIL passed back and forth: about a third of the node's
CPU in ``bench/dispatch.py``). What could block the loop is kept off it:

- a lock held elsewhere: the connections have no busy timeout, so a ``BEGIN
  IMMEDIATE`` that meets another process's write lock fails at once; it is
  tried again in a thread with SQLite's busy handler for one round (1 s: nodes
  sharing the file take turns within it), then with asyncio backoff up to
  ``--lock-wait``. The loop runs on meanwhile. A read that meets a lock (WAL
  recovery) is tried again with backoff;
- checkpoints: the writer does not checkpoint on commit (``wal_autocheckpoint =
  0``); a third connection checkpoints in its own thread, once a second after
  writes, so the database file's writes and ``fsync`` happen off the loop. The
  checkpoint holds the node's write lock (its writes wait, as they did for
  SQLite's own checkpoint; reads go on): the WAL is written from its start
  again only after a checkpoint that reached its end, and with this node's
  commits landing in the middle of it one seldom did (the WAL grew to 1.3 GB
  in a minute of ``bench/dispatch.py``). It is ``PASSIVE``: it waits for no
  reader (a backup reading the file for minutes must not hold the writes up),
  and what a reader still needs waits for the next round. Nodes sharing the
  file (``--redis-url`` on SQLite) keep SQLite's own checkpoint on commit
  instead: each one's commits would land in the middle of the other's
  checkpoints, and the WAL, never started over, grew to 1.6 GB in 25 s of two
  processes writing (``PASSIVE`` and ``RESTART`` alike); run by the committing
  connection right after its commit, SQLite's checkpoint completes;
- ``--fsync``: each commit waits for the disk, so the ``COMMIT`` runs in a
  thread (the loop is free during the ``fsync``; the write lock keeps the
  writer to it meanwhile).

Durability: WAL with ``synchronous=NORMAL``. A committed transaction is in the
WAL file before ``commit`` returns, so a crash of the process (SIGKILL) loses
nothing; only a power failure may lose the last transactions before a
checkpoint. ``synchronous=FULL`` (``--fsync``) closes that window too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from rtserver.auth import load_secret
from rtserver.core.retry import RetryPolicy
from rtserver.core.text import email_key
from rtserver.errors import Busy, InvalidField
from rtserver.health import FatalError
from rtserver.storage.sql import Conn, IntegrityError, Reads, Row

__all__ = ["Conn", "Database", "IntegrityError", "Row", "SqliteConn", "new_id"]

log = logging.getLogger("rtserver.storage")

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time: ``r_18c2f9a3b41d7e2a9``."""
    return f"{prefix}_{int(time.time() * 1000):x}{secrets.token_hex(5)}"


MIGRATIONS: list[str] = [
    # 1: accounts, expert profiles, requests, offers, sessions, timers.
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('customer', 'expert', 'manager')),
        created_at INTEGER NOT NULL,
        presence TEXT NOT NULL DEFAULT 'away' CHECK (presence IN ('available', 'away')),
        last_offered_at INTEGER
    );
    CREATE TABLE expert_profiles (
        user_id TEXT PRIMARY KEY REFERENCES users(id),
        title TEXT NOT NULL DEFAULT '',
        skills TEXT NOT NULL DEFAULT '[]',
        languages TEXT NOT NULL DEFAULT '[]',
        years_experience INTEGER NOT NULL DEFAULT 0,
        rate_cents_per_15min INTEGER NOT NULL DEFAULT 0,
        bio TEXT NOT NULL DEFAULT '',
        verification_status TEXT NOT NULL DEFAULT 'pending',
        updated_at INTEGER NOT NULL
    );
    -- Normalized copies of skills and languages, for matching by index.
    CREATE TABLE expert_skills (
        user_id TEXT NOT NULL REFERENCES users(id),
        skill TEXT NOT NULL,
        PRIMARY KEY (skill, user_id)
    );
    CREATE TABLE expert_languages (
        user_id TEXT NOT NULL REFERENCES users(id),
        language TEXT NOT NULL,
        PRIMARY KEY (language, user_id)
    );
    CREATE TABLE requests (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL CHECK (kind IN ('instant', 'scheduled')),
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        skills TEXT NOT NULL,
        language TEXT NOT NULL,
        direct_expert_id TEXT REFERENCES users(id),
        proposed_times TEXT NOT NULL DEFAULT '[]',
        attachment_ids TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL DEFAULT 'open',
        wave INTEGER NOT NULL DEFAULT 0,
        notified INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        closed_at INTEGER,
        session_id TEXT,
        accepted_expert_id TEXT
    );
    CREATE INDEX requests_customer ON requests (customer_id, status);
    CREATE INDEX requests_open ON requests (status, kind);
    CREATE TABLE offers (
        request_id TEXT NOT NULL REFERENCES requests(id),
        expert_id TEXT NOT NULL REFERENCES users(id),
        wave INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        reason TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        closed_at INTEGER,
        PRIMARY KEY (request_id, expert_id)
    );
    CREATE INDEX offers_expert ON offers (expert_id, status);
    CREATE TABLE request_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL REFERENCES requests(id),
        from_id TEXT NOT NULL REFERENCES users(id),
        text TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX request_messages_request ON request_messages (request_id, id);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE REFERENCES requests(id),
        customer_id TEXT NOT NULL REFERENCES users(id),
        expert_id TEXT NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('scheduled', 'active', 'ended', 'cancelled')),
        scheduled_at INTEGER,
        rate_cents_per_15min INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER
    );
    CREATE INDEX sessions_customer ON sessions (customer_id, status);
    CREATE INDEX sessions_expert ON sessions (expert_id, status);
    -- Durable timers: every node polls for due ones and claims each with a lease.
    CREATE TABLE timers (
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, ref)
    );
    CREATE INDEX timers_due ON timers (due_at);
    """,
    # 2: session rooms: transcripts, billing, ledger, attachments.
    """
    ALTER TABLE sessions ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN billing_running INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN billed_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN billing_checked INTEGER;
    ALTER TABLE sessions ADD COLUMN billing_absent_since INTEGER;
    ALTER TABLE sessions ADD COLUMN billing_held_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN ended_by TEXT;
    ALTER TABLE sessions ADD COLUMN discount_pct INTEGER;
    ALTER TABLE sessions ADD COLUMN charge_cents INTEGER;
    ALTER TABLE sessions ADD COLUMN platform_fee_cents INTEGER;
    ALTER TABLE sessions ADD COLUMN expert_earnings_cents INTEGER;
    CREATE TABLE messages (
        session_id TEXT NOT NULL REFERENCES sessions(id),
        seq INTEGER NOT NULL,
        cid TEXT NOT NULL,
        from_id TEXT NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL CHECK (kind IN ('text', 'code', 'attachment')),
        text TEXT,
        code_language TEXT,
        code_source TEXT,
        attachment_id TEXT,
        at INTEGER NOT NULL,
        PRIMARY KEY (session_id, seq),
        -- A cid is its sender's own: the other participant may use the same one.
        UNIQUE (session_id, from_id, cid)
    );
    CREATE TABLE attachments (
        id TEXT PRIMARY KEY,
        uploader_id TEXT NOT NULL REFERENCES users(id),
        sha256 TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'file' CHECK (kind IN ('file', 'recording')),
        session_id TEXT REFERENCES sessions(id),
        request_id TEXT REFERENCES requests(id),
        created_at INTEGER NOT NULL
    );
    CREATE INDEX attachments_session ON attachments (session_id);
    CREATE INDEX attachments_request ON attachments (request_id);
    -- Append-only money: one row per movement, integer cents, never updated.
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT REFERENCES sessions(id),
        user_id TEXT,
        account TEXT NOT NULL,
        kind TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        at INTEGER NOT NULL,
        memo TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ledger_user ON ledger (user_id, at);
    CREATE INDEX ledger_session ON ledger (session_id);
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    """,
    # 3: scheduled sessions: who joined, cancellations, notifications, the outbox.
    """
    ALTER TABLE sessions ADD COLUMN customer_joined_at INTEGER;
    ALTER TABLE sessions ADD COLUMN expert_joined_at INTEGER;
    ALTER TABLE sessions ADD COLUMN cancel_reason TEXT;
    ALTER TABLE sessions ADD COLUMN cancelled_by TEXT;
    ALTER TABLE sessions ADD COLUMN fee_cents INTEGER;
    ALTER TABLE sessions ADD COLUMN charged_user_id TEXT;
    CREATE INDEX sessions_scheduled ON sessions (status, scheduled_at);
    -- The dashboard's notifications; (user, kind, key) makes each one exactly once.
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        read_at INTEGER,
        UNIQUE (user_id, kind, key)
    );
    CREATE INDEX notifications_user ON notifications (user_id, id);
    -- E-mail and text messages to send, drained by whichever node claims the job.
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        sent_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        UNIQUE (user_id, channel, key)
    );
    CREATE INDEX outbox_unsent ON outbox (sent_at, id);
    """,
    # 4: the portal: accounts' status and phone, ratings and responsiveness, ledger
    # operations, refund claims, reviews, payout profiles and payouts, idempotency
    # keys, the managers' audit log.
    """
    ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'suspended'));
    ALTER TABLE users ADD COLUMN phone TEXT;
    ALTER TABLE expert_profiles ADD COLUMN rating_sum INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE expert_profiles ADD COLUMN rating_count INTEGER NOT NULL DEFAULT 0;
    -- Median milliseconds from offer to answer over his recent answers.
    ALTER TABLE expert_profiles ADD COLUMN response_ms INTEGER;
    CREATE INDEX offers_answered ON offers (expert_id, closed_at);
    -- Rows of one operation share an op id (and sum to zero). Rows written
    -- before version 4 get one from their session and time.
    ALTER TABLE ledger ADD COLUMN op TEXT;
    DROP TRIGGER ledger_no_update;
    UPDATE ledger SET op = 'v3:' || coalesce(session_id, '') || ':' || at WHERE op IS NULL;
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
    CREATE INDEX ledger_account ON ledger (account, user_id, id);
    CREATE INDEX ledger_op ON ledger (op);
    CREATE TABLE refund_claims (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL UNIQUE REFERENCES sessions(id),
        customer_id TEXT NOT NULL REFERENCES users(id),
        expert_id TEXT NOT NULL REFERENCES users(id),
        status TEXT NOT NULL
            CHECK (status IN ('open', 'disputed', 'refunded', 'denied', 'no_fault')),
        reason TEXT NOT NULL,
        dispute_summary TEXT,
        outcome TEXT,
        note TEXT,
        created_at INTEGER NOT NULL,
        disputed_at INTEGER,
        decided_at INTEGER,
        decided_by TEXT REFERENCES users(id)
    );
    CREATE INDEX refund_claims_status ON refund_claims (status, created_at);
    CREATE INDEX refund_claims_expert ON refund_claims (expert_id, created_at);
    CREATE INDEX refund_claims_customer ON refund_claims (customer_id, created_at);
    CREATE TABLE reviews (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id),
        customer_id TEXT NOT NULL REFERENCES users(id),
        expert_id TEXT NOT NULL REFERENCES users(id),
        stars INTEGER NOT NULL CHECK (stars BETWEEN 1 AND 5),
        comment TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    CREATE INDEX reviews_expert ON reviews (expert_id, created_at);
    CREATE TABLE payout_profiles (
        user_id TEXT PRIMARY KEY REFERENCES users(id),
        data TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE payouts (
        id TEXT PRIMARY KEY,
        expert_id TEXT NOT NULL REFERENCES users(id),
        period TEXT NOT NULL,
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        op TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        -- One payout per expert and period, whatever the retries.
        UNIQUE (expert_id, period)
    );
    CREATE TABLE idempotency_keys (
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        response TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        manager_id TEXT,
        action TEXT NOT NULL,
        target_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}',
        at INTEGER NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # v5: hardening of the request path.
    """
    -- The rate an offer was made at: the customer is charged what the expert
    -- offered, not what he set afterwards (NULL for offers made before v5).
    ALTER TABLE offers ADD COLUMN rate_cents_per_15min INTEGER;
    -- request.create is idempotent by the customer's cid.
    ALTER TABLE requests ADD COLUMN cid TEXT;
    CREATE UNIQUE INDEX requests_cid ON requests (customer_id, cid) WHERE cid IS NOT NULL;
    -- An expert is in at most one active session, whatever writes it: the
    -- service checks under the write lock, and these refuse any write that slips by.
    -- (Triggers, not a unique index, so that a database that already holds such a
    -- pair still migrates.)
    CREATE TRIGGER sessions_one_active_insert BEFORE INSERT ON sessions
        WHEN NEW.status = 'active' AND EXISTS (SELECT 1 FROM sessions
            WHERE expert_id = NEW.expert_id AND status = 'active')
        BEGIN SELECT RAISE(ABORT, 'expert_busy'); END;
    CREATE TRIGGER sessions_one_active_update BEFORE UPDATE OF status ON sessions
        WHEN NEW.status = 'active' AND OLD.status != 'active' AND EXISTS (SELECT 1
            FROM sessions WHERE expert_id = NEW.expert_id AND status = 'active')
        BEGIN SELECT RAISE(ABORT, 'expert_busy'); END;
    """,
    # v6: e-mails compare by their full Unicode case fold (rt_email_key, registered
    # on every connection), not by SQLite's ASCII-only NOCASE: STRASSE@x is straße@x.
    """
    ALTER TABLE users ADD COLUMN email_key TEXT;
    UPDATE users SET email_key = rt_email_key(email);
    -- Accounts that only the new folding makes one address (registered before v6):
    -- the oldest keeps the key; each newer one gets a key no address folds to (it
    -- holds char(31)) and logs in no more by e-mail. Database.open logs which.
    UPDATE users SET email_key = email_key || char(31) || id WHERE EXISTS (
        SELECT 1 FROM users o WHERE o.email_key = users.email_key
        AND (o.created_at < users.created_at
            OR (o.created_at = users.created_at AND o.id < users.id)));
    CREATE UNIQUE INDEX users_email_key ON users (email_key);
    """,
    # v7: timers count their failed tries and retire into dead letters; the
    # outbox is one timer per message (it was one timer for the whole outbox).
    """
    ALTER TABLE timers ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE timers ADD COLUMN last_error TEXT;
    -- Timers that failed their last try, until a manager retries them.
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT NOT NULL,
        failed_at INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'retried')),
        retried_at INTEGER,
        retried_by TEXT
    );
    CREATE INDEX dead_letters_status ON dead_letters (status, id);
    ALTER TABLE outbox ADD COLUMN last_error TEXT;
    INSERT OR IGNORE INTO timers (kind, ref, due_at)
        SELECT 'outbox', CAST(id AS TEXT), created_at FROM outbox WHERE sent_at IS NULL;
    DELETE FROM timers WHERE kind = 'outbox' AND ref = 'all';
    """,
    # v8: a wake that finds its timer already due (perhaps running) is kept, so
    # that the run it could not hasten does not put the timer off past it.
    """
    ALTER TABLE timers ADD COLUMN woken INTEGER NOT NULL DEFAULT 0;
    """,
    # v9: an expert's answered offers, newest first, with their times and status in
    # the index (UserStore.note_response, once per accept: SQLite reads no row).
    # Through offers_answered the median read every offer he had been sent, lost
    # races included, from the table: at 55 offers per expert it was a tenth of the
    # node's CPU under dispatch load.
    """
    CREATE INDEX offers_answer_times ON offers (expert_id, closed_at, created_at, status)
        WHERE status IN ('accepted', 'declined');
    DROP INDEX offers_answered;
    """,
    # v10: open offers by expert and open requests by kind, in partial indexes: every
    # query through the two indexes they replace asked for open ones only. The full
    # ones held every offer and request ever made, and each close of a request moved
    # its entries across them: 13 WAL pages per create or close commit with them, 8
    # without (docs/benchmarks.md, "the database's hidden costs").
    """
    CREATE INDEX offers_open ON offers (expert_id) WHERE status = 'open';
    DROP INDEX offers_expert;
    DROP INDEX requests_open;
    CREATE INDEX requests_open ON requests (kind) WHERE status = 'open';
    """,
]

# The version that folded e-mails into users.email_key (see Database._migrate).
_EMAIL_KEY_VERSION = next(v for v, m in enumerate(MIGRATIONS, 1) if "rt_email_key(" in m)
# One round of SQLite's own busy handler, in a thread (_begin): nodes sharing one
# file take turns within it. A lock held past it (a backup, a sqlite3 shell) is
# waited for with backoff, logged, and counted in the metrics.
_BUSY_ROUND = 1.0
# Between tries for a lock held past a busy round: 50 ms doubling to 1 s,
# jittered so that the nodes waiting for one lock do not retry in step; bounded
# by time (--lock-wait), not by a count.
_LOCK_BACKOFF = RetryPolicy(base=0.05, cap=1.0, attempts=2**31)
# How often the checkpointer moves the WAL's pages into the database file.
_CHECKPOINT_EVERY = 1.0
# Told to clients refused by a busy database: come back after this.
_BUSY_RETRY_AFTER = 5.0


def _statements(script: str) -> list[str]:
    """Split a migration into statements (a trigger's body keeps its semicolons)."""
    out: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece
        if not sqlite3.complete_statement(current + ";"):
            current += ";"
            continue
        if current.strip():
            out.append(current.strip())
        current = ""
    return out


def _least(*values: Any) -> Any:
    """PostgreSQL's ``least``: the smallest value, NULLs left out (NULL if all are)."""
    return min((v for v in values if v is not None), default=None)


def _greatest(*values: Any) -> Any:
    """PostgreSQL's ``greatest``: the largest value, NULLs left out (NULL if all are)."""
    return max((v for v in values if v is not None), default=None)


def _begin_waiting(conn: sqlite3.Connection, busy_ms: int) -> None:
    """``BEGIN IMMEDIATE`` with SQLite's busy handler for ``busy_ms`` (in a thread)."""
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


class _LockHeld(Exception):
    """A statement met a lock another process holds (``BEGIN IMMEDIATE``: its write lock)."""


def _lock_held(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


_FOR_UPDATE = " FOR UPDATE"
_SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"


class SqliteConn:
    """:class:`~rtserver.storage.sql.Conn` on a SQLite connection: each statement
    runs at once, on the calling thread (the event loop's)."""

    __slots__ = ("_conn",)
    row_locks = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _run(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        if _FOR_UPDATE in sql:
            # PostgreSQL's row locks; SQLite's write transaction holds the whole file.
            sql = sql.replace(_SKIP_LOCKED, "").replace(_FOR_UPDATE, "")
        try:
            return self._conn.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = self._run(sql, args).fetchall()
        return rows

    async def fetchrow(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        # fetchall, not fetchone: a statement left unfinished would hold its
        # read snapshot (or the rest of a RETURNING write) until collected.
        rows = self._run(sql, args).fetchall()
        return rows[0] if rows else None

    async def fetchval(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = self._run(sql, args).fetchall()
        return rows[0][0] if rows else None

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._run(sql, args).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    async def lock(self, sql: str, args: Sequence[Any] = ()) -> None:
        # The write transaction (BEGIN IMMEDIATE) holds the whole file already.
        return


class Database(Reads):
    """One node's connections to the shared SQLite file. Use ``async with``."""

    # One write transaction at a time: SQLite's write lock is the file's.
    writers = 1

    def __init__(
        self,
        path: Path,
        *,
        fsync: bool = False,
        shared: bool = False,
        lock_wait: float = 30.0,
        on_lock_wait: Callable[[float, bool], None] | None = None,
    ) -> None:
        self.path = path
        self._fsync = fsync
        # Other nodes write this file too (--redis-url on SQLite): see open().
        self._shared = shared
        self.lock_wait = lock_wait
        # Told (seconds waited, acquired or not) about each write that waited for
        # the lock past one busy round: the node counts it in its metrics.
        self._on_lock_wait = on_lock_wait or (lambda seconds, acquired: None)
        self._identity: tuple[int, int] | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        # Something was committed since the last checkpoint.
        self._written = False

    async def __aenter__(self) -> Database:
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
        """Open the connections, bring the schema up to date, start checkpointing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        await self._migrate(self._writer)
        self._reader = await self._connect()
        if not self._shared:
            # The writer checkpoints no more on commit: the checkpointer does, off the loop.
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = await aiosqlite.connect(self.path, isolation_level=None)
            self._checkpoints = asyncio.create_task(self._checkpoint_every(_CHECKPOINT_EVERY))

    async def _checkpoint_every(self, period: float) -> None:
        """Move the WAL's committed pages into the database file, every ``period``
        after writes, in the checkpointer's thread (see the module's docstring)."""
        assert self._checkpointer is not None
        conn = self._checkpointer
        while True:
            await asyncio.sleep(period)
            if not self._written:
                continue
            try:
                async with self._write_lock:
                    self._written = False
                    await conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint failed: %s path=%s", exc, self.path)

    async def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.create_function("rt_email_key", 1, email_key, deterministic=True)
        # PostgreSQL's scalar least() and greatest(), so that one SQL text runs on both.
        conn.create_function("least", -1, _least, deterministic=True)
        conn.create_function("greatest", -1, _greatest, deterministic=True)
        # No busy timeout: a lock held elsewhere is waited for in _waiting_for_lock,
        # with the loop free (see the module's docstring).
        conn.execute("PRAGMA busy_timeout = 0")
        # Turning WAL on takes a lock: nodes started at once on a fresh data dir
        # met "database is locked" here. It is idempotent, so try again for a while.
        for attempt in range(100):
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if not _lock_held(exc) or attempt == 99:
                    raise
                await asyncio.sleep(min(0.01 * 2**attempt, 0.5))
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._fsync else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def _migrate(self, conn: sqlite3.Connection) -> None:
        await self._waiting_for_lock(lambda: self._begin(conn))
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"the database is at schema version {version}, newer than this rtserver"
                    f" knows ({len(MIGRATIONS)}): upgrade rtserver"
                )
            for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {i}")
                log.info("database migrated to version %d path=%s", i, self.path)
            if version < _EMAIL_KEY_VERSION:
                for row in conn.execute(
                    "SELECT id, email FROM users WHERE instr(email_key, char(31)) > 0"
                ).fetchall():
                    log.warning(
                        "user=%s e-mail %r is the same address as an older account's"
                        " once case is folded: it can no longer log in by e-mail",
                        row[0],
                        row[1],
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``; :class:`_LockHeld` if another process holds the lock
        past one busy round.

        Tried on the loop first, with no busy timeout: uncontended, it costs no
        more than the statement. If another process holds the lock (nodes sharing
        the file take turns), the ``BEGIN`` is tried again in a thread with SQLite's
        own busy handler, up to one busy round: it waits there in short sleeps
        while the loop runs on. Past that round, :meth:`_waiting_for_lock` backs off.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _lock_held(exc):
                raise
        try:
            await asyncio.to_thread(_begin_waiting, conn, int(_BUSY_ROUND * 1000))
        except sqlite3.OperationalError as exc:
            if _lock_held(exc):
                raise _LockHeld from exc
            raise

    async def _commit(self, conn: sqlite3.Connection) -> None:
        """``COMMIT``; with ``--fsync`` in a thread, since it waits for the disk."""
        if self._fsync:
            await asyncio.to_thread(conn.execute, "COMMIT")
        else:
            conn.execute("COMMIT")

    async def _waiting_for_lock(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, tried again with backoff while it raises :class:`_LockHeld`
        (it met another process's lock), for ``lock_wait`` seconds; then
        :class:`Busy`. Waits past one busy round are logged and counted; shorter
        ones are nodes sharing a file taking turns."""
        started = time.monotonic()
        failures = 0
        warned = False
        while True:
            try:
                result = await attempt()
            except _LockHeld:
                waited = time.monotonic() - started
                if waited >= self.lock_wait:
                    self._on_lock_wait(waited, False)
                    log.error(
                        "database write lock held elsewhere for %.1f s: giving up path=%s",
                        waited,
                        self.path,
                    )
                    raise Busy(
                        "the database is busy: another process held its write lock for"
                        f" over {self.lock_wait:g} s; try again",
                        retry_after=_BUSY_RETRY_AFTER,
                    ) from None
                if waited >= _BUSY_ROUND and not warned:
                    warned = True
                    log.warning("database write lock held elsewhere: waiting path=%s", self.path)
                failures += 1
                pause = _LOCK_BACKOFF.delay(failures) or _LOCK_BACKOFF.cap
                await asyncio.sleep(min(pause, self.lock_wait - waited))
                continue
            if warned:
                waited = time.monotonic() - started
                self._on_lock_wait(waited, True)
                log.warning("database write lock acquired after %.1f s path=%s", waited, self.path)
            return result

    async def aclose(self) -> None:
        """Stop the checkpoints and close the connections."""
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
        if self._checkpointer is not None:
            await self._checkpointer.close()
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()
        self._checkpointer = None
        self._reader = self._writer = None

    async def check(self) -> None:
        """Fatal if the file is gone or another one; an error if it does not answer."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise FatalError(f"the database file {self.path} is gone") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise FatalError(f"the database file {self.path} was replaced")
        # A read of the schema page: a disk or file that fails is seen here too.
        await self.fetchone("SELECT count(*) FROM sqlite_master")

    async def schema_version(self) -> int:
        """The schema version applied to the file (``PRAGMA user_version``)."""
        return int(await self.fetchval("PRAGMA user_version"))

    async def shared_secret(self, name: str) -> bytes:
        """The data dir's signing key (``secret.key``, made on first start): the
        nodes that share this file share the data dir."""
        if name != "token":
            raise ValueError(f"no shared secret {name!r}")
        return load_secret(self.path.parent)

    def _writer_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return self._writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """An immediate write transaction, committed on exit, rolled back on error.

        Prefer :meth:`write` where the work is one function: the same transaction,
        and a server database runs it as a unit."""
        async with self._write_lock:
            conn = self._writer_conn()
            self._written = True
            await self._waiting_for_lock(lambda: self._begin(conn))
            try:
                yield SqliteConn(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            try:
                await self._commit(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``work`` in one immediate write transaction: ``BEGIN IMMEDIATE``,
        ``await work(conn)``, ``COMMIT`` (``ROLLBACK`` if it raises), and return
        its result once committed. The write lock serializes the node's writes,
        and SQLite's serializes them across processes: what ``work`` reads holds
        until the commit."""
        async with self.transaction() as conn:
            return await work(conn)

    async def read(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``work`` as committed reads: each statement sees what was committed
        when it ran (no snapshot is held across them).

        ``work`` must only read, and only the database (it runs without a pause
        of the loop). It runs on the writer's connection while no write holds
        it, else on the reader's. SQLite drops a connection's whole page cache
        when it finds that another connection changed the file: a reader that
        reads between the writer's commits read every page again from the file,
        where the writer's own connection keeps its cache (issue 9,
        docs/benchmarks.md). A read that meets a lock (another process
        recovering the WAL) is run again after a pause.
        """
        if self._reader is None or self._writer is None:
            raise RuntimeError("database is not open")
        reader, writer = SqliteConn(self._reader), SqliteConn(self._writer)

        async def attempt() -> T:
            try:
                return await work(reader if self._write_lock.locked() else writer)
            except sqlite3.OperationalError as exc:
                if _lock_held(exc):
                    raise _LockHeld from exc
                raise

        return await self._waiting_for_lock(attempt)


# The largest integer SQLite stores; a cursor or query number past it is refused.
MAX_INT = 2**63 - 1


def encode_cursor(*parts: int | str) -> str:
    """An opaque page cursor holding the sort key of the last item of a page."""
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _cursor_part(value: object, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    return not isinstance(value, int) or 0 <= value <= MAX_INT


def decode_cursor(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The sort key in a cursor made by :func:`encode_cursor`; InvalidField otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidField("not a cursor of this list", "cursor") from None
    if (
        not isinstance(parts, list)
        or len(parts) != len(types)
        or not all(_cursor_part(p, t) for p, t in zip(parts, types, strict=True))
    ):
        raise InvalidField("not a cursor of this list", "cursor")
    return parts
