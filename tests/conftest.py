"""Fixtures: a private redis-server for the session, nodes per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.rtclient import Api
from rtserver.notify import LogPayer, LogSender
from tests.pg import PgCluster
from tests.servers import (
    DATABASES,
    Clients,
    Node,
    RedisServer,
    ShiftClock,
    node_settings,
    run_node,
)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run, on a free port; never skipped."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so that tests never see each other's keys."""
    return f"t{secrets.token_hex(4)}:"


# Which storage the tests run on. A test marked ``both_backends`` (the storage
# tests) runs on each; the others on SQLite, the embedded default, unless
# RT_TEST_DATABASE=postgres runs every one of them on PostgreSQL. A test marked
# ``sqlite_only`` is about SQLite itself (its file, its write lock, an old
# embedded schema): it runs on SQLite alone, even in a ``both_backends`` module,
# and a run on PostgreSQL deselects it.
BACKENDS = ("sqlite", "postgres")


def on_postgres_only() -> bool:
    """RT_TEST_DATABASE=postgres: every test on PostgreSQL."""
    return os.environ.get("RT_TEST_DATABASE") == "postgres"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_backends: run the test on SQLite and on PostgreSQL (the storage tests)"
    )
    config.addinivalue_line(
        "markers",
        "sqlite_only: the test is about SQLite itself: run on SQLite alone, deselected"
        " when RT_TEST_DATABASE=postgres",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        if metafunc.definition.get_closest_marker("both_backends") is not None:
            metafunc.parametrize("backend", ["sqlite"], indirect=True)
        # Otherwise the default, SQLite (and a run on PostgreSQL deselects it).
    elif on_postgres_only():
        metafunc.parametrize("backend", ["postgres"], indirect=True)
    elif metafunc.definition.get_closest_marker("both_backends") is not None:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL (RT_TEST_DATABASE=postgres), deselect the ``sqlite_only`` tests."""
    if not on_postgres_only():
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("sqlite_only") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One real PostgreSQL cluster for the whole run, on a free port; never skipped."""
    cluster = PgCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgres``: the storage this test runs on."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def data_dir(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh data dir (a real SQLite file inside); on PostgreSQL, also a fresh
    database of the session's cluster, which every node made on this dir shares."""
    d = tmp_path / "data"
    d.mkdir()
    if backend == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        DATABASES[str(d)] = cluster.new_database()
    yield d
    DATABASES.pop(str(d), None)


@pytest.fixture
async def node(data_dir: Path) -> AsyncIterator[Node]:
    """One embedded node (no Redis), default settings but a free port."""
    async with run_node(node_settings(data_dir)) as n:
        yield n


@pytest.fixture
async def api(node: Node) -> AsyncIterator[Api]:
    """HTTP client of :func:`node`."""
    a = Api(node.http)
    yield a
    await a.aclose()


@pytest.fixture
def settings_for(data_dir: Path) -> Callable[..., Any]:
    """Build test settings on this test's data dir."""

    def make(**overrides: Any) -> Any:
        return node_settings(data_dir, **overrides)

    return make


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Clients a test opens, all closed at its end."""
    cs = Clients()
    yield cs
    await cs.close()


# -- the portal tests' node: a clock they can move, and senders they can read ------------------


@pytest.fixture
def clock() -> ShiftClock:
    """The wall clock, which a test may move forward (windows, month ends)."""
    return ShiftClock()


@pytest.fixture
def mail() -> LogSender:
    """The e-mails the portal node sent."""
    return LogSender()


@pytest.fixture
def texts() -> LogSender:
    """The texts the portal node sent."""
    return LogSender()


@pytest.fixture
def payer() -> LogPayer:
    """The transfers the portal node made."""
    return LogPayer()


@pytest.fixture
def portal_settings() -> dict[str, Any]:
    """Settings of the portal node; a test module overrides this fixture to add its own."""
    return {}


@pytest.fixture
async def pnode(
    data_dir: Path,
    clock: ShiftClock,
    mail: LogSender,
    texts: LogSender,
    payer: LogPayer,
    portal_settings: dict[str, Any],
) -> AsyncIterator[Node]:
    """A node for portal tests: billing checked every 200ms, so sessions charge fast."""
    settings = node_settings(data_dir, **{"billing_check": "200ms", **portal_settings})
    async with run_node(settings, clock=clock, sender=mail, text_sender=texts, payer=payer) as n:
        yield n


@pytest.fixture
async def papi(pnode: Node) -> AsyncIterator[Api]:
    """HTTP client of :func:`pnode`."""
    a = Api(pnode.http)
    yield a
    await a.aclose()
