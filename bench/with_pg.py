"""Run a command with a private PostgreSQL for rtserver: ``RT_DATABASE_URL`` set.

For the benchmarks on PostgreSQL (``docs/benchmarks.md``): starts a cluster of
its own on a free port (``initdb`` and ``pg_ctl``, as the ``postgres`` user when
run as root: ``tests/pg.py``), with a fresh database, runs the command with
``RT_DATABASE_URL`` pointing at it (every rtserver node the command starts
uses it), then stops and removes the cluster. The first example runs the
side-by-side benchmark harness, which is kept outside this repository and is
found at ``../shared/bench`` when it sits beside the checkout (see
``docs/benchmarks.md``)::

    python bench/with_pg.py -- bash ../shared/bench/run.sh --peers rtserver --workloads w2
    python bench/with_pg.py --synchronous-commit off -- python bench/dispatch.py --experts 1000

Unlike the test cluster, this one is durable by default, as a production
server is: ``fsync`` on, ``synchronous_commit`` as given (``on``: each commit
waits for the WAL on disk; ``off``: a crash of PostgreSQL itself may lose the
last few hundred milliseconds, as ``synchronous=NORMAL`` lets SQLite lose the
last transactions to a power cut).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pg import PgCluster  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    cluster = PgCluster(
        durable=True,
        settings={"synchronous_commit": args.synchronous_commit, "max_connections": "200"},
    )
    cluster.start()
    try:
        url = cluster.new_database()
        print(f"with_pg: {url} (synchronous_commit={args.synchronous_commit})", flush=True)
        env = os.environ | {"RT_DATABASE_URL": url}
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
