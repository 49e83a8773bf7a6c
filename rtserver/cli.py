"""The ``rtserver`` command: ``serve``, ``migrate``, ``user create``, ``payouts run``.

Every ``serve`` flag can also be set as ``RT_<FLAG>`` in the environment; a
flag on the command line wins over the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from rtserver import __version__
from rtserver.config import Settings

_SERVE_FLAGS: list[tuple[str, str]] = [
    ("host", "listen address [127.0.0.1]"),
    ("port", "listen port [8000]"),
    ("data-dir", "SQLite database, attachments, generated secret [./rtserver-data]"),
    ("redis-url", "Redis for many nodes; none: one node, embedded hub"),
    ("database-url", "PostgreSQL for nodes on many hosts; none: SQLite in the data dir"),
    ("offer-batch", "experts offered an instant request at once [5]"),
    ("offer-ttl", "how long one wave of offers stays open [60s]"),
    ("request-ttl", "how long an instant request searches [10m]"),
    ("reminders", "reminders before a scheduled session [30m,10m]"),
    ("early-start", "how early a scheduled session may start [10m]"),
    ("no-show", "cancel a scheduled session not joined by both after [10m]"),
    ("cancellation-fee", "cents charged to the side that did not show [500]"),
    ("platform-fee", "percent of each charge kept by the platform [20]"),
    ("max-frame", "largest accepted WebSocket frame, bytes [65536]"),
    ("max-attachment", "largest attachment, bytes [26214400]"),
    ("hello-timeout", "time a new socket has to authenticate [10s]"),
    ("heartbeat", "seconds between protocol pings; two missed close the socket [25s]"),
    ("send-queue", "frames queued per socket before it is closed 4408 [256]"),
    ("token-ttl", "how long a login token is valid [7d as 168h]"),
    ("presence-ttl", "with Redis: how soon a dead node's experts stop being offered [6s]"),
    ("node-id", "this node's name in logs and metrics [random]"),
    ("log-level", "debug, info, warning, error [info]"),
    ("kdf-memory-kib", "Argon2id memory cost in KiB [65536]"),
    ("kdf-time-cost", "Argon2id iterations [3]"),
    ("redis-prefix", "prefix of every Redis key [rt:]"),
    ("fsync", "fsync every commit (survive power loss) [false]"),
    ("disconnect-grace", "billing pauses when a participant is gone this long [60s]"),
    ("billing-check", "how often running billing is vouched for [5s]"),
    ("message-rate", "chat messages and typing per second per user [10]"),
    ("message-burst", "chat messages and typing a user may send at once [30]"),
    ("session-length", "a scheduled session's length, for overlaps [1h]"),
    ("late-cancel", "cancelling a scheduled session this close to its start costs the fee [1h]"),
    ("refund-window", "how long after a session's end a refund may be claimed [14d]"),
    ("commit-batch", "most chat messages per transcript commit; 1 turns group commit off [256]"),
    ("redis-timeout", "with Redis: the longest one Redis call of a command may take [2s]"),
    ("command-deadline", "the longest one WebSocket command may run; past it `internal` [60s]"),
    ("health-grace", "how long a background loop may fail before /healthz answers 503 [5s]"),
    ("request-timeout", "headers complete within, a body stalled no longer than [20s]"),
    ("max-connections", "connections at once, WebSockets included; past it 503 [20000]"),
    ("login-limit", "failed logins per client address, count/period [20/2m]"),
    ("login-account-limit", "failed logins per account, count/period [10/10m]"),
    ("register-limit", "accounts registered per client address, count/period [30/1h]"),
    ("create-limit", "requests not accepted per customer, count/period [30/1m]"),
    ("request-message-limit", "request.message per user, count/period [60/1m]"),
    ("presence-limit", "presence changes per user, count/period [30/1m]"),
    ("sockets-per-user", "sockets one user may hold on a node; more close 4429 [10]"),
    ("kdf-memory-budget-kib", "memory Argon2 hashes may use at once, KiB [524288]"),
    ("lock-wait", "how long a write waits for a database lock held elsewhere [30s]"),
    ("trusted-proxies", "proxies whose X-Forwarded-For is believed, comma-separated [none]"),
    ("limit-loopback", "count loopback peers in the limits per client address [false]"),
    ("timer-lease", "a durable timer's lease, renewed every third while it runs [30s]"),
    ("timer-retry", "a failed timer is tried again after this, doubling [2s]"),
    ("timer-retry-max", "the longest wait between two tries of a failed timer [1h]"),
    ("timer-attempts", "tries of a failing timer before it becomes a dead letter [12]"),
]


def _env_name(flag: str) -> str:
    return "RT_" + flag.upper().replace("-", "_")


def _serve_options(f: Any) -> Any:
    for flag, help_text in reversed(_SERVE_FLAGS):
        f = click.option(f"--{flag}", envvar=_env_name(flag), default=None, help=help_text)(f)
    return f


def _without_password(url: str) -> str:
    """A database URL fit for a log: its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _storage_options(f: Any) -> Any:
    """``--data-dir`` and ``--database-url``, as ``serve`` reads them."""
    f = click.option(
        "--database-url",
        envvar="RT_DATABASE_URL",
        default=None,
        help="PostgreSQL database (postgresql://...); none: SQLite in the data dir",
    )(f)
    return click.option(
        "--data-dir", envvar="RT_DATA_DIR", default=None, help="data directory [./rtserver-data]"
    )(f)


def _storage_settings(data_dir: str | None, database_url: str | None) -> Settings:
    """The settings of a command that only opens storage: the environment's ``RT_*``,
    with the storage flags given on the command line."""
    env: dict[str, Any] = {k[3:].lower(): v for k, v in os.environ.items() if k.startswith("RT_")}
    given = {"data_dir": data_dir, "database_url": database_url}
    try:
        return Settings.from_mapping(env | {k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
@click.version_option(__version__)
def main() -> None:
    """rtserver: a real-time server for live-help marketplaces."""


@main.command()
@_serve_options
def serve(**flags: Any) -> None:
    """Start one server node."""
    from rtserver import logs
    from rtserver.app import create_app
    from rtserver.server import run

    try:
        settings = Settings.from_mapping(flags)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    logs.configure(settings.log_level)
    app = create_app(settings)
    click.echo(
        f"rtserver {__version__} node {settings.node_id}: "
        f"http://{settings.host}:{settings.port}/ (browser client), "
        f"ws://{settings.host}:{settings.port}/ws (WebSocket), data in {settings.data_dir}"
        + (f", redis {settings.redis_url}" if settings.redis_url else ", embedded hub")
        + (
            f", database {_without_password(settings.database_url)}"
            if settings.database_url
            else ""
        ),
        err=True,
    )
    run(app, settings)


@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["customer", "expert", "manager"]))
@_storage_options
def create_user(
    email: str, password: str, name: str, role: str, data_dir: str | None, database_url: str | None
) -> None:
    """Create a user in the node's database (the only way to make a manager)."""
    import msgspec

    from rtserver.auth import Auth
    from rtserver.clock import SystemClock, to_ms
    from rtserver.core.text import clean_name
    from rtserver.errors import RtError
    from rtserver.schemas import RegisterBody
    from rtserver.storage import backend
    from rtserver.storage.users import UserStore

    settings = _storage_settings(data_dir, database_url)
    try:
        msgspec.convert(
            {"email": email, "password": password, "name": name, "role": role}, RegisterBody
        )
        name = clean_name(name)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from None
    except RtError as exc:
        raise click.BadParameter(exc.message, param_hint="--name") from None

    async def go() -> dict[str, Any]:
        clock = SystemClock()
        async with backend.database(settings) as db:
            auth = Auth(
                await db.shared_secret("token"),
                clock,
                settings.token_ttl,
                kdf_memory_kib=settings.kdf_memory_kib,
                kdf_time_cost=settings.kdf_time_cost,
            )
            u = await UserStore(db).create(
                email,
                await auth.hash_password(password),
                name,
                role,  # type: ignore[arg-type]
                to_ms(clock.now()),
            )
            return u.public()

    try:
        created = asyncio.run(go())
    except RtError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(f"created {created['role']} {created['email']} id={created['id']}")


@main.command()
@_storage_options
@click.option(
    "--from-sqlite",
    "from_sqlite",
    default=None,
    metavar="DIR",
    help="copy the embedded deployment in this data dir into --database-url",
)
def migrate(data_dir: str | None, database_url: str | None, from_sqlite: str | None) -> None:
    """Bring the database's schema up to date (start-up does too), or copy an
    embedded deployment into PostgreSQL (--from-sqlite DIR): rows, attachments and
    the signing key, checked by row counts and ledger sums before the commit."""
    from rtserver.storage import backend
    from rtserver.storage.copy import CopyError, copy_sqlite
    from rtserver.storage.pg import PgDatabase

    settings = _storage_settings(data_dir, database_url)

    async def go() -> list[str]:
        db = backend.database(settings)
        async with db:
            if from_sqlite is None:
                return [f"schema up to date: {await db.schema_version()}"]
            if not isinstance(db, PgDatabase):
                raise click.UsageError("--from-sqlite copies into PostgreSQL: give --database-url")
            report = await copy_sqlite(Path(from_sqlite), db.pool)
            return [*report.lines(), "copied and checked"]

    try:
        lines = asyncio.run(go())
    except CopyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for line in lines:
        click.echo(line)


@main.group()
def payouts() -> None:
    """Pay experts."""


@payouts.command("run")
@click.option("--month", required=True, help="the month to pay, YYYY-MM (UTC); it must have ended")
@_storage_options
def run_payouts(month: str, data_dir: str | None, database_url: str | None) -> None:
    """Pay every expert with a complete payout profile and a positive balance for MONTH.

    Safe to run again: each expert is paid once per month. Notifications,
    e-mails and the transfers are queued in the data dir's outbox, which the
    running server sends.
    """
    import json

    from rtserver.app import Node
    from rtserver.errors import RtError

    settings = _storage_settings(data_dir, database_url).replace(redis_url=None)

    async def go() -> dict[str, Any]:
        node = Node(settings)
        await node.db.open()
        try:
            done = await node.money.run(None, month, None)
        finally:
            node.rooms.transcript.close()
            await node.db.aclose()
        return done.body

    try:
        result = asyncio.run(go())
    except RtError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
