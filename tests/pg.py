"""A private PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` on a free port.

Nothing is shared with a PostgreSQL the machine may run: the cluster lives in
a temporary directory, listens on 127.0.0.1 on a free port (and on a socket
in its own directory), and is stopped and removed at the end. ``initdb``
refuses to run as root, so as root the cluster is made and run as the
unprivileged ``postgres`` user (Debian's ``postgresql`` package creates it;
``scripts/test`` installs the package when ``initdb`` is missing).

Each test gets a database of its own (:meth:`PgCluster.new_database`), so
that tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.servers import free_port

SUPERUSER = "rt"


def pg_bin(name: str) -> str:
    """A PostgreSQL server program (``initdb``, ``pg_ctl``): from PATH, else the
    newest of Debian's ``/usr/lib/postgresql/<version>/bin``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            f"no {name}: install PostgreSQL's server (Debian: apt-get install postgresql);"
            " scripts/test does it as root"
        )
    return candidates[-1]


class PgCluster:
    """A private PostgreSQL cluster on a free port, in a temporary directory.

    By default it listens on 127.0.0.1 alone and trusts local connections only.
    A test that serves other hosts adds addresses to ``listen`` (a bridge's) and
    networks to ``trust`` (``host all all <cidr> trust`` lines of pg_hba.conf).
    """

    def __init__(
        self,
        listen: Sequence[str] = (),
        trust: Sequence[str] = (),
        *,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        # Tests trade crash safety for speed; a benchmark's cluster (durable) does not.
        self.durable = durable
        self.settings = dict(settings or {})
        self.listen = ["127.0.0.1", *listen]
        self.trust = list(trust)
        self.root = Path(tempfile.mkdtemp(prefix="rt-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self._as: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses root: the cluster is the postgres user's.
            pwd.getpwnam("postgres")
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o755)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("mkdir", "-p", str(self.sockets))
        self._run(
            pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if self.trust:
            # The file is the postgres user's; appending keeps its owner and mode.
            with open(self.data / "pg_hba.conf", "a") as hba:
                for network in self.trust:
                    hba.write(f"host all all {network} trust\n")
        options = (
            f"-c port={self.port} -c listen_addresses={','.join(self.listen)}"
            f" -c unix_socket_directories={self.sockets}"
            " -c max_connections=400 -c shared_buffers=64MB"
        )
        if not self.durable:
            # A test cluster: speed over crash safety (the tests' own crash tests
            # kill rtserver, not PostgreSQL).
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += "".join(f" -c {k}={v}" for k, v in self.settings.items())
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        stopped = (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError)
        with contextlib.suppress(*stopped):
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        """``postgresql://rt@<host>:<port>/<database>`` (host: one of ``listen``)."""
        return f"postgresql://{SUPERUSER}@{host}:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t_{secrets.token_hex(6)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its output (unaligned, tuples only)."""
        psql = pg_bin("psql")
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.url(database)],
                input=statement,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0:
                return done.stdout
            if time.monotonic() > deadline or "starting up" not in done.stderr:
                raise RuntimeError(f"psql failed: {done.stderr.strip()}")
            time.sleep(0.2)
