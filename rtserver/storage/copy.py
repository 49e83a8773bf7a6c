"""``rtserver migrate --from-sqlite DIR``: an embedded deployment copied into PostgreSQL.

The source is a data dir (``rtserver.sqlite3``, ``attachments/``,
``secret.key``); the target a PostgreSQL database at the current schema with
no account in it yet. Everything is copied in one transaction, in the order
of the foreign keys, table by table with ``COPY``; the identity counters are
moved past the copied ids; the attachment files go into the ``blobs`` table
and the signing key into ``shared_state`` (tokens issued before the move stay
valid). Then the copy is checked before it is committed: the row count of
every table, and the ledger's sum per account, must be the source's. A
failed check rolls everything back.

Stop every node before copying (the source must not change meanwhile): the
source is opened read-only, after its own schema is brought up to date.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from rtserver.auth import SECRET_FILE
from rtserver.storage.blobs import CHUNK
from rtserver.storage.db import Database

# In the order of their foreign keys.
TABLES = [
    "users",
    "expert_profiles",
    "expert_skills",
    "expert_languages",
    "requests",
    "offers",
    "request_messages",
    "sessions",
    "timers",
    "messages",
    "attachments",
    "ledger",
    "notifications",
    "outbox",
    "refund_claims",
    "reviews",
    "payout_profiles",
    "payouts",
    "idempotency_keys",
    "audit_log",
    "dead_letters",
]
# Tables whose id is an identity column on PostgreSQL (AUTOINCREMENT on SQLite).
IDENTITIES = ["request_messages", "ledger", "notifications", "outbox", "audit_log", "dead_letters"]
ROWS_PER_COPY = 5000


class CopyError(Exception):
    """The copy cannot be made, or did not check out (nothing was committed)."""


@dataclass
class Report:
    """What was copied: rows per table, blobs, and the ledger sums checked."""

    rows: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blob_bytes: int = 0
    ledger_sums: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{table}: {n} rows" for table, n in self.rows.items()]
        out.append(f"attachments' bytes: {self.blobs} blobs, {self.blob_bytes} bytes")
        out += [f"ledger sum {acc}: {cents} cents" for acc, cents in self.ledger_sums.items()]
        return out


async def copy_sqlite(data_dir: Path, pool: asyncpg.Pool) -> Report:
    """Copy the deployment in ``data_dir`` into the (migrated, empty) PostgreSQL
    database of ``pool``; the report once committed."""
    path = data_dir / "rtserver.sqlite3"
    if not path.exists():
        raise CopyError(f"no rtserver database in {data_dir}")
    # Bring the source's schema up to date (its own migrations), then read it alone.
    async with Database(path):
        pass
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT count(*) FROM users"):
                raise CopyError(
                    "the PostgreSQL database already holds accounts: copy into an empty one"
                )
            report = Report()
            for table in TABLES:
                report.rows[table] = await _copy_table(source, conn, table)
            for table in IDENTITIES:
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
            await _copy_blobs(data_dir / "attachments", conn, report)
            secret = data_dir / SECRET_FILE
            if secret.exists():
                await conn.execute(
                    "INSERT INTO shared_state (name, value) VALUES ('token', $1)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    secret.read_text().strip(),
                )
            await _check(source, conn, report)
    finally:
        source.close()
    return report


async def _copy_table(source: sqlite3.Connection, conn: asyncpg.Connection, table: str) -> int:
    target_columns = [
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
    ]
    source_columns = {r[1] for r in source.execute(f"PRAGMA table_info({table})")}
    columns = [c for c in target_columns if c in source_columns]
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
    copied = 0
    while rows := cursor.fetchmany(ROWS_PER_COPY):
        await conn.copy_records_to_table(table, records=[tuple(r) for r in rows], columns=columns)
        copied += len(rows)
    return copied


def _blob_chunks(root: Path) -> Iterator[tuple[str, int, bytes]]:
    """(sha256, chunk number, bytes) of every attachment file under ``root``.

    Plain file reads: the copy is an offline command, with no event loop to share."""
    if not root.is_dir():
        return
    for path in sorted(root.glob("??/*")):
        if not path.is_file() or len(path.name) != 64:
            continue
        with path.open("rb") as f:
            index = 0
            while True:
                data = f.read(CHUNK)
                if not data and index:
                    break
                yield path.name, index, data
                index += 1
                if len(data) < CHUNK:
                    break


async def _copy_blobs(root: Path, conn: asyncpg.Connection, report: Report) -> None:
    for sha, index, data in _blob_chunks(root):
        await conn.execute(
            "INSERT INTO blobs (sha256, chunk, data) VALUES ($1, $2, $3)"
            " ON CONFLICT (sha256, chunk) DO NOTHING",
            sha,
            index,
            data,
        )
        report.blob_bytes += len(data)
        if index == 0:
            report.blobs += 1


async def _check(source: sqlite3.Connection, conn: asyncpg.Connection, report: Report) -> None:
    """Row counts and ledger sums, source against target, before the commit."""
    wrong: list[str] = []
    for table in TABLES:
        want = source.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        got = await conn.fetchval(f"SELECT count(*) FROM {table}")
        if want != got:
            wrong.append(f"{table}: {want} rows in SQLite, {got} copied")
    want_sums: dict[str, Any] = dict(
        source.execute("SELECT account, sum(amount_cents) FROM ledger GROUP BY account").fetchall()
    )
    got_sums = {
        r["account"]: r["sum"]
        for r in await conn.fetch(
            "SELECT account, sum(amount_cents)::bigint AS sum FROM ledger GROUP BY account"
        )
    }
    if want_sums != got_sums:
        wrong.append(f"ledger sums differ: SQLite {want_sums}, PostgreSQL {got_sums}")
    if wrong:
        raise CopyError("the copy does not check out (nothing committed): " + "; ".join(wrong))
    report.ledger_sums = {str(k): int(v) for k, v in sorted(got_sums.items())}
