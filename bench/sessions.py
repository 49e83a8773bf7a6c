"""Session chat benchmark: K concurrent two-person sessions, one message in flight each.

Run it from the repository root, in the project's venv::

    python bench/sessions.py --sessions 100,1000
    python bench/sessions.py --sessions 100 --configs a --duration 10
    python bench/sessions.py --sessions 1000 --configs c --workers 2 --pattern alternate
    python bench/sessions.py --sessions 100,1000 --configs d,e        # with --fsync
    python bench/sessions.py --sessions 1000 --configs a --profile    # py-spy the node

Configurations (``--configs``, comma-separated, default ``a,b,c``):

- ``a``: one node, embedded hub, default group commit (``--commit-batch 256``);
- ``b``: one node, embedded hub, ``--commit-batch 1`` (group commit off: one
  SQLite transaction per message);
- ``c``: two node processes sharing one private redis-server and one data dir;
  each session's customer is connected to node 0 and its expert to node 1, so
  every message crosses Redis;
- ``d`` and ``e`` (not run by default): ``a`` and ``b`` with ``--fsync``
  (``synchronous=FULL``: an fsync per commit), where group commit matters most.

For each configuration and each K it starts fresh servers (``python -m rtserver
serve`` as subprocesses) on free ports of 127.0.0.1, with a temporary data dir,
the cheap KDF flags (``--kdf-memory-kib 1024 --kdf-time-cost 1``),
``--offer-batch 1`` and the per-socket message rate limit raised out of the way
(``--message-rate 100000 --message-burst 100000``). Setup: K customers and K
experts are registered concurrently over HTTP; expert ``i`` has the single skill
``s<i>`` and customer ``i`` asks for ``s<i>``, so each instant request is offered
to exactly its expert, who accepts it; both sides then ``session.join``.

The load: in each session exactly one message is in flight. With ``--pattern
one-way`` (the default) the customer sends every message; with ``alternate``
customer and expert take turns. A message is a ``message.send`` of kind ``text``
with ``--text-size`` characters (100) and a unique ``cid``; the next one is sent
only when the previous one's ``message`` event has reached the other participant
**and** its sender has the ``ok`` (the durable ack). Two latencies are measured
per message, from just before ``message.send`` is written to the socket:

- **delivery**: until the other participant's socket has the ``message`` event;
- **ack**: until the sender has its ``ok`` (the message is committed to SQLite).

Sessions send during ``--warmup`` seconds (not measured), then during
``--duration`` seconds (measured: every message *sent* in this window counts),
then stop by themselves. Throughput is the measured messages divided by
``--duration``, all sessions together. A message whose event or ``ok`` does not
come within ``--timeout`` seconds stops its session and is reported.

The sessions are split over ``--workers`` client processes (default: one per
500 sessions; asyncio with uvloop; both sides of a session are in the same
process, so one clock times both ends). The CPU time of every process (server
nodes, redis-server, client workers) is read from ``/proc/<pid>/stat`` (utime +
stime, all threads) at the start and the end of the measured window and
reported as percent of one core, to show which side was saturated; "others" is
what every other process on the machine used meanwhile (from ``/proc/stat``).

Checks: every ``ok`` must carry ``seq`` = previous + 1 in its session (no gap,
no duplicate), the event must carry the same ``seq`` and ``cid``, and nothing
unexpected may arrive. After the run the clients close, the node processes are
killed with SIGKILL (so only what was committed remains) and the ``messages``
table is read directly: every acknowledged message must be stored, with seqs
1..n per session.

Everything runs on 127.0.0.1, every loop is bounded in count and time, and every
process started is stopped at the end. Results are printed as a table and
written as JSON to ``bench/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import json
import math
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402

from bench.common import (  # noqa: E402
    cpu_seconds,
    machine,
    machine_busy_seconds,
    new_loop,
    summarize,
)
from clients.rtclient import Api, Client  # noqa: E402
from tests.servers import ProcessNode, RedisServer, node_settings  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
PASSWORD = "password-123"
CONFIGS = {
    "a": "one node, embedded hub, group commit (--commit-batch 256)",
    "b": "one node, embedded hub, no group commit (--commit-batch 1)",
    "c": "two nodes + Redis, customer on node 0, expert on node 1",
    "d": "one node, embedded hub, --fsync (synchronous=FULL), group commit",
    "e": "one node, embedded hub, --fsync, no group commit (--commit-batch 1)",
}
FILLER = (
    "The quick brown fox jumps over the lazy dog while the expert explains "
    "the traceback line by line. "
) * 20


# -- small helpers -------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """VmRSS of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def message_text(index: int, n: int, size: int) -> str:
    """A text of exactly ``size`` characters naming its session and number."""
    return (f"session {index} message {n}: " + FILLER)[:size]


# -- the client side: worker processes -----------------------------------------


class Pair:
    """One session: its customer's and its expert's sockets, and what was seen."""

    __slots__ = ("customer", "error", "expert", "index", "last_seq", "received", "session_id")

    def __init__(self, index: int) -> None:
        self.index = index
        self.customer: Client | None = None
        self.expert: Client | None = None
        self.session_id = ""
        self.last_seq = 0  # the last seq acknowledged to a sender of this session
        self.received = 0  # message events received by the other side
        self.error: str | None = None


class SessionWorker:
    """The sessions of one client process: set them up, run them, report."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.timeout: float = spec["timeout"]
        self.pattern: str = spec["pattern"]
        self.text_size: int = spec["text_size"]
        self.pairs = [Pair(i) for i, _, _ in spec["pairs"]]
        self.tokens = {i: (c, e) for i, c, e in spec["pairs"]}
        self.delivery: list[float] = []
        self.ack: list[float] = []
        self.sent_total = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.anomalies: list[str] = []
        self.other_events: collections.Counter[str] = collections.Counter()

    def anomaly(self, text: str) -> None:
        """A broken rule (gap, duplicate, mismatch): count it, keep the first few."""
        self.errors["anomaly"] += 1
        if len(self.anomalies) < 20:
            self.anomalies.append(text)

    async def serve(self, conn: Connection) -> None:
        """Set up, say ready, run when told, close, report."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.setup(), self.spec["setup_timeout"])
        except Exception as exc:
            conn.send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
            await self.close()
            return
        conn.send({"ready": True, "setup_seconds": round(time.monotonic() - started, 2)})
        command = await asyncio.get_running_loop().run_in_executor(
            None, self.wait_command, conn, self.spec["setup_timeout"]
        )
        if command is None:
            await self.close()
            return
        await self.run(command["start"], command["measure"], command["end"])
        await self.close()
        conn.send(self.report())

    @staticmethod
    def wait_command(conn: Connection, timeout: float) -> dict[str, Any] | None:
        """The main process's next command, or None when it is gone or silent."""
        parent = os.getppid()
        deadline = time.monotonic() + timeout
        while not conn.poll(0.5):
            if os.getppid() != parent or time.monotonic() > deadline:
                return None
        command: dict[str, Any] = conn.recv()
        return command

    async def setup(self) -> None:
        """Connect both sides, create each request, accept it, join both sides."""
        gate = asyncio.Semaphore(self.spec["setup_concurrency"])

        async def one(p: Pair) -> None:
            ctoken, etoken = self.tokens[p.index]
            async with gate:
                p.expert = await Client.connect(self.spec["expert_url"], etoken)
                await p.expert.call("presence", status="available", timeout=60)
                p.customer = await Client.connect(self.spec["customer_url"], ctoken)
                reply = await p.customer.call(
                    "request.create",
                    timeout=60,
                    kind="instant",
                    title=f"Bench session {p.index}",
                    skills=[f"s{p.index}"],
                    language="en",
                )
                rid = reply["request"]["id"]
                await p.expert.wait_event(
                    "offer.new", lambda e: e["offer"]["request_id"] == rid, timeout=60
                )
                session = (await p.expert.call("offer.accept", timeout=60, request_id=rid))[
                    "session"
                ]
                p.session_id = session["id"]
                await p.customer.call("session.join", timeout=60, session_id=p.session_id)
                await p.expert.call("session.join", timeout=60, session_id=p.session_id)

        async with asyncio.TaskGroup() as tg:
            for p in self.pairs:
                tg.create_task(one(p))
        await asyncio.sleep(0.5)  # let the join's presence events arrive, then forget them
        for p in self.pairs:
            assert p.customer is not None and p.expert is not None
            p.customer.drain()
            p.expert.drain()

    async def run(self, start: float, measure: float, end: float) -> None:
        """Every session sends from ``start`` to ``end`` (wall clock); record from ``measure``."""
        offset = time.perf_counter() - time.time()
        await asyncio.sleep(max(start - time.time(), 0))
        perf_measure, perf_end = measure + offset, end + offset
        bound = end - time.time() + self.timeout + 30
        try:
            async with asyncio.timeout(bound), asyncio.TaskGroup() as tg:
                for p in self.pairs:
                    tg.create_task(self.run_pair(p, perf_measure, perf_end))
        except TimeoutError:
            self.errors["worker_deadline"] += 1

    async def next_message(self, receiver: Client) -> dict[str, Any]:
        """The receiver's next ``message`` event (other events are counted and skipped)."""
        while True:
            ev = await receiver.events.get()
            kind = ev.get("type")
            if kind == "message":
                return ev
            self.other_events[str(kind)] += 1

    @staticmethod
    async def timed(sender: Client, timeout: float, **fields: Any) -> tuple[dict[str, Any], float]:
        """``message.send`` and the perf_counter time its reply arrived."""
        reply = await sender.request("message.send", timeout, **fields)
        return reply, time.perf_counter()

    async def run_pair(self, p: Pair, perf_measure: float, perf_end: float) -> None:
        """One session's loop: one message in flight until ``perf_end``."""
        assert p.customer is not None and p.expert is not None
        n = 0
        while time.perf_counter() < perf_end:
            if self.pattern == "alternate" and n % 2:
                sender, receiver = p.expert, p.customer
            else:
                sender, receiver = p.customer, p.expert
            cid = f"b{p.index}-{n}"
            t0 = time.perf_counter()
            ack_task = asyncio.create_task(
                self.timed(
                    sender,
                    self.timeout,
                    session_id=p.session_id,
                    cid=cid,
                    kind="text",
                    text=message_text(p.index, n, self.text_size),
                )
            )
            self.sent_total += 1
            try:
                async with asyncio.timeout(self.timeout):
                    ev = await self.next_message(receiver)
                delivered = time.perf_counter()
            except TimeoutError:
                p.error = f"no message event in {self.timeout}s for {cid}"
                self.errors["no_delivery"] += 1
                with contextlib.suppress(Exception):
                    await ack_task
                return
            try:
                reply, acked = await ack_task
            except TimeoutError:
                p.error = f"no ok in {self.timeout}s for {cid}"
                self.errors["no_ack"] += 1
                return
            except (ConnectionError, websockets.ConnectionClosed) as exc:
                p.error = f"socket closed: {exc}"
                self.errors["socket_closed"] += 1
                return
            if reply.get("type") != "ok":
                p.error = f"error reply {reply.get('code')}: {reply.get('message')}"
                self.errors[f"error:{reply.get('code')}"] += 1
                return
            seq = reply.get("seq")
            if reply.get("duplicate"):
                self.anomaly(f"{p.session_id} {cid}: ok says duplicate (seq {seq})")
            if seq != p.last_seq + 1:
                self.anomaly(f"{p.session_id} {cid}: seq {seq} after {p.last_seq}")
            if ev.get("seq") != seq or ev.get("cid") != cid or ev.get("session_id") != p.session_id:
                self.anomaly(
                    f"{p.session_id} {cid}: event {ev.get('session_id')} "
                    f"seq {ev.get('seq')} cid {ev.get('cid')}, ok seq {seq}"
                )
            if isinstance(seq, int):
                p.last_seq = max(p.last_seq, seq)
            p.received += 1
            if t0 >= perf_measure:
                self.delivery.append((delivered - t0) * 1000)
                self.ack.append((acked - t0) * 1000)
            n += 1
        # Nothing more may arrive: no stray events for a message already counted.
        await asyncio.sleep(0)
        for side in (p.customer, p.expert):
            for ev in side.drain():
                if ev.get("type") == "message":
                    self.anomaly(f"{p.session_id}: unexpected extra event seq {ev.get('seq')}")
                else:
                    self.other_events[str(ev.get("type"))] += 1

    async def close(self) -> None:
        """Close every socket (bounded)."""
        clients = [c for p in self.pairs for c in (p.customer, p.expert) if c is not None]
        gate = asyncio.Semaphore(200)

        async def one(c: Client) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.close(), 10)

        await asyncio.gather(*(one(c) for c in clients))

    def report(self) -> dict[str, Any]:
        """What the main process aggregates."""
        return {
            "delivery_ms": self.delivery,
            "ack_ms": self.ack,
            "sent_total": self.sent_total,
            "errors": dict(self.errors),
            "anomalies": self.anomalies,
            "other_events": dict(self.other_events),
            "sessions": {
                p.session_id: {"acked": p.last_seq, "received": p.received, "error": p.error}
                for p in self.pairs
            },
        }


def worker_main(conn: Connection, spec: dict[str, Any]) -> None:
    """Entry point of a client worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(SessionWorker(spec).serve(conn))


class WorkerHandle:
    """The main process's handle on one client worker process."""

    def __init__(self, ctx: Any, spec: dict[str, Any]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, spec), daemon=True)
        self.proc.start()
        child.close()

    async def answer(self, timeout: float) -> dict[str, Any]:
        """The worker's next message, waited for at most ``timeout`` seconds."""

        def wait() -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while not self.conn.poll(0.5):
                if not self.proc.is_alive():
                    raise RuntimeError(f"worker {self.proc.pid} died ({self.proc.exitcode})")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker {self.proc.pid}: no answer in {timeout}s")
            reply: dict[str, Any] = self.conn.recv()
            return reply

        return await asyncio.to_thread(wait)

    async def stop(self) -> None:
        """Wait a little for it to exit, then kill it."""
        await asyncio.to_thread(self.proc.join, 15)
        if self.proc.is_alive():
            self.proc.kill()
            await asyncio.to_thread(self.proc.join, 5)


# -- one configuration, one K ----------------------------------------------------


class Run:
    """Fresh servers, K sessions, the measured window, the checks."""

    def __init__(self, args: argparse.Namespace, config: str, k: int, workers: int) -> None:
        self.args = args
        self.config = config
        self.k = k
        self.workers = workers
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rt-bench-sessions-{config}{k}-"))
        self.data_dir = self.tmp / "data"
        self.redis: RedisServer | None = None
        self.nodes: list[ProcessNode] = []
        self.handles: list[WorkerHandle] = []

    def node_flags(self) -> dict[str, Any]:
        flags: dict[str, Any] = {
            "offer_batch": 1,
            "message_rate": 100000,
            "message_burst": 100000,
            "log_level": self.args.log_level,
        }
        if self.config in ("b", "e"):
            flags["commit_batch"] = 1
        if self.config in ("d", "e"):
            flags["fsync"] = True
        return flags

    def start_servers(self) -> None:
        flags = self.node_flags()
        if self.config == "c":
            self.redis = RedisServer()
            self.redis.start()
            for i in range(2):
                settings = node_settings(
                    self.data_dir, redis_url=self.redis.url, node_id=f"n{i}", **flags
                )
                self.nodes.append(ProcessNode(settings, self.tmp / f"node{i}.log"))
        else:
            settings = node_settings(self.data_dir, node_id="n0", **flags)
            self.nodes.append(ProcessNode(settings, self.tmp / "node0.log"))
        for node in self.nodes:
            node.start()

    def start_profilers(self, seconds: float) -> list[subprocess.Popen[bytes]]:
        """With ``--profile``: py-spy samples each node during the measured window."""
        if not self.args.profile or seconds < 1:
            return []
        spy = shutil.which("py-spy")
        if spy is None:
            print("  --profile: py-spy is not on PATH", flush=True)
            return []
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        procs = []
        for i, node in enumerate(self.nodes):
            assert node.proc is not None
            out = RESULTS_DIR / f"sessions-profile-{self.config}{self.k}-node{i}.txt"
            cmd = [spy, "record", "--nonblocking", "-r", "100", "--format", "raw"]
            cmd += ["-d", str(int(seconds)), "-p", str(node.proc.pid), "-o", str(out)]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        return procs

    def pids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            assert node.proc is not None
            out[f"node{i}"] = node.proc.pid
        if self.redis is not None and self.redis.proc is not None:
            out["redis"] = self.redis.proc.pid
        for i, h in enumerate(self.handles):
            assert h.proc.pid is not None
            out[f"client{i}"] = h.proc.pid
        return out

    async def register(self) -> list[tuple[int, str, str]]:
        """K customers and K experts (expert i has skill s<i>): ``[(i, ctoken, etoken)]``."""
        api = Api(self.nodes[0].http)
        gate = asyncio.Semaphore(self.args.register_concurrency)
        tag = f"{self.config}{self.k}-{os.getpid()}-{int(time.time())}"

        async def customer(i: int) -> str:
            async with gate:
                _, token = await api.register(
                    f"bc{i}-{tag}@example.com", PASSWORD, f"Customer {i}", "customer"
                )
                return token

        async def expert(i: int) -> str:
            async with gate:
                _, token = await api.register(
                    f"be{i}-{tag}@example.com", PASSWORD, f"Expert {i}", "expert"
                )
                await api.preferences(token, skills=[f"s{i}"], languages=["en"])
                return token

        try:
            async with asyncio.timeout(self.args.setup_timeout):
                ctokens = await asyncio.gather(*(customer(i) for i in range(self.k)))
                etokens = await asyncio.gather(*(expert(i) for i in range(self.k)))
        finally:
            await api.aclose()
        return [(i, ctokens[i], etokens[i]) for i in range(self.k)]

    async def execute(self) -> dict[str, Any]:
        args = self.args
        result: dict[str, Any] = {
            "config": self.config,
            "description": CONFIGS[self.config],
            "sessions": self.k,
            "workers": self.workers,
            "pattern": args.pattern,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "text_size": args.text_size,
            "node_flags": self.node_flags(),
        }
        t = time.monotonic()
        await asyncio.to_thread(self.start_servers)
        pairs = await self.register()
        result["register_seconds"] = round(time.monotonic() - t, 2)

        customer_url = self.nodes[0].ws
        expert_url = self.nodes[-1].ws
        ctx = multiprocessing.get_context("spawn")
        t = time.monotonic()
        for w in range(self.workers):
            spec = {
                "pairs": pairs[w :: self.workers],
                "customer_url": customer_url,
                "expert_url": expert_url,
                "timeout": args.timeout,
                "pattern": args.pattern,
                "text_size": args.text_size,
                "setup_concurrency": args.setup_concurrency,
                "setup_timeout": args.setup_timeout,
            }
            self.handles.append(WorkerHandle(ctx, spec))
        ready = await asyncio.gather(*(h.answer(args.setup_timeout + 30) for h in self.handles))
        failed = [r["error"] for r in ready if not r.get("ready")]
        if failed:
            raise RuntimeError(f"session setup failed: {failed[:3]}")
        result["setup_seconds"] = round(time.monotonic() - t, 2)

        pids = self.pids()
        start = time.time() + 1.0
        measure = start + args.warmup
        end = measure + args.duration
        for h in self.handles:
            h.conn.send({"start": start, "measure": measure, "end": end})
        await asyncio.sleep(max(measure - time.time(), 0))
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        busy0 = machine_busy_seconds()
        w0 = time.time()
        profilers = self.start_profilers(end - time.time() - 0.5)
        await asyncio.sleep(max(end - time.time(), 0))
        cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        busy1 = machine_busy_seconds()
        window = time.time() - w0
        result["cpu_pct"] = {
            name: round(100 * (cpu1[name] - cpu0[name]) / window, 1) for name in pids
        }
        # Everything else the machine ran meanwhile (other users, this process, the kernel).
        mine = sum(cpu1[name] - cpu0[name] for name in pids)
        result["machine_busy_pct"] = round(100 * (busy1 - busy0) / window, 1)
        result["others_cpu_pct"] = max(round(100 * (busy1 - busy0 - mine) / window, 1), 0.0) + 0.0
        for proc in profilers:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(proc.wait, 30)
        result["rss_mib"] = {
            name: rss_mib(pid) for name, pid in pids.items() if not name.startswith("client")
        }
        reports = await asyncio.gather(
            *(h.answer(args.timeout + 120) for h in self.handles), return_exceptions=True
        )
        for h in self.handles:
            await h.stop()
        self.handles = []

        # Only what was committed survives a SIGKILL.
        for node in self.nodes:
            node.kill()
        self.aggregate(result, reports)
        result["storage"] = self.check_storage(result.pop("_acked"))
        result["server_log"] = self.log_problems()
        return result

    def aggregate(self, result: dict[str, Any], reports: list[Any]) -> None:
        delivery: list[float] = []
        ack: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        other: collections.Counter[str] = collections.Counter()
        anomalies: list[str] = []
        acked: dict[str, int] = {}
        stopped: list[str] = []
        sent = 0
        for r in reports:
            if isinstance(r, BaseException):
                errors[f"worker:{type(r).__name__}"] += 1
                anomalies.append(f"worker failed: {r}")
                continue
            delivery += r["delivery_ms"]
            ack += r["ack_ms"]
            sent += r["sent_total"]
            errors.update(r["errors"])
            other.update(r["other_events"])
            anomalies += r["anomalies"]
            for sid, s in r["sessions"].items():
                acked[sid] = s["acked"]
                if s["error"]:
                    stopped.append(f"{sid}: {s['error']}")
        measured = len(delivery)
        result.update(
            {
                "messages_measured": measured,
                "messages_total": sent,
                "acked_total": sum(acked.values()),
                "throughput_msgs_per_s": round(measured / self.args.duration, 1),
                "delivery_ms": summarize(delivery),
                "ack_ms": summarize(ack),
                "errors": dict(errors),
                "anomalies": anomalies[:20],
                "sessions_stopped": len(stopped),
                "sessions_stopped_examples": stopped[:5],
                "other_events": dict(other),
                "_acked": acked,
            }
        )

    def check_storage(self, acked: dict[str, int]) -> dict[str, Any]:
        """Every acknowledged message stored, seqs 1..n per session, nothing else lost."""
        db = sqlite3.connect(self.data_dir / "rtserver.sqlite3")
        try:
            rows = db.execute(
                "SELECT session_id, COUNT(*), MIN(seq), MAX(seq), COUNT(DISTINCT cid)"
                " FROM messages GROUP BY session_id"
            ).fetchall()
            last_seq = dict(db.execute("SELECT id, last_seq FROM sessions").fetchall())
        finally:
            db.close()
        stored = {sid: (n, lo, hi, cids) for sid, n, lo, hi, cids in rows}
        lost = gaps = extra = 0
        examples: list[str] = []
        for sid, n_acked in acked.items():
            n, lo, hi, cids = stored.get(sid, (0, 0, 0, 0))
            if n < n_acked:
                lost += n_acked - n
                examples.append(f"{sid}: {n_acked} acked, {n} stored")
            if n and (lo != 1 or hi != n or cids != n or last_seq.get(sid) != hi):
                gaps += 1
                examples.append(f"{sid}: {n} rows, seq {lo}..{hi}, {cids} cids")
            if n > n_acked:
                extra += n - n_acked  # stored, but its ok never reached the client
        return {
            "rows": sum(v[0] for v in stored.values()),
            "acked": sum(acked.values()),
            "lost": lost,
            "sessions_with_gaps": gaps,
            "stored_not_acked": extra,
            "examples": examples[:5],
            "ok": lost == 0 and gaps == 0,
        }

    def log_problems(self) -> dict[str, Any]:
        """Warning, error and traceback lines in the node logs."""
        counts: collections.Counter[str] = collections.Counter()
        examples: list[str] = []
        for log in sorted(self.tmp.glob("node*.log")):
            for line in log.read_text(errors="replace").splitlines():
                for word in ("WARNING", "ERROR", "CRITICAL", "Traceback"):
                    if word in line:
                        counts[word] += 1
                        if len(examples) < 5:
                            examples.append(f"{log.name}: {line[:300]}")
        return {"counts": dict(counts), "examples": examples}

    async def cleanup(self) -> None:
        for h in self.handles:
            with contextlib.suppress(Exception):
                h.proc.kill()
                await asyncio.to_thread(h.proc.join, 5)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.kill()
        if self.redis is not None:
            self.redis.stop()
        if self.args.keep:
            print(f"  kept {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- output ------------------------------------------------------------------------


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'cfg':<4}{'K':>6}{'wrk':>4}{'msg/s':>9}"
        f"{'dlv p50':>9}{'p99':>8}{'mean':>8}{'max':>8}"
        f"{'ack p50':>9}{'p99':>8}"
        f"{'srv CPU%':>16}{'redis%':>8}{'client%':>9}{'others%':>9}"
        f"{'errors':>8}{'stored/acked':>16}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['config']:<4}{r['sessions']:>6}  failed: {r['error']}")
            continue
        d, a, cpu = r["delivery_ms"], r["ack_ms"], r["cpu_pct"]
        srv = "+".join(f"{v:.0f}" for k, v in cpu.items() if k.startswith("node"))
        cli = sum(v for k, v in cpu.items() if k.startswith("client"))
        errs = sum(r["errors"].values())
        st = r["storage"]
        check = f"{st['rows']}/{st['acked']}" + ("" if st["ok"] else " BAD")
        lines.append(
            f"{r['config']:<4}{r['sessions']:>6}{r['workers']:>4}"
            f"{r['throughput_msgs_per_s']:>9.0f}"
            f"{d.get('p50', 0):>9.2f}{d.get('p99', 0):>8.2f}{d.get('mean', 0):>8.2f}"
            f"{d.get('max', 0):>8.1f}{a.get('p50', 0):>9.2f}{a.get('p99', 0):>8.2f}"
            f"{srv:>16}{cpu.get('redis', 0):>8.0f}{cli:>9.0f}{r['others_cpu_pct']:>9.0f}"
            f"{errs:>8}{check:>16}"
        )
    lines.append(
        "latencies in ms; dlv = send to the other side's message event, ack = send to"
        " the sender's ok; CPU in % of one core over the measured window (srv: per node;"
        " others: every other process on the machine)"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--sessions", default="100,1000", help="comma-separated K values [100,1000]")
    p.add_argument(
        "--configs", default="a,b,c", help="comma-separated, of a to e (see above) [a,b,c]"
    )
    p.add_argument("--warmup", type=float, default=5.0, help="seconds not measured [5]")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds [20]")
    p.add_argument(
        "--pattern",
        choices=("one-way", "alternate"),
        default="one-way",
        help="one-way: the customer sends every message; alternate: they take turns",
    )
    p.add_argument("--text-size", type=int, default=100, help="characters per message [100]")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="client processes; 0: one per 500 sessions, at least 1 [0]",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="per-message bound, seconds [30]")
    p.add_argument("--setup-timeout", type=float, default=300.0, help="setup bound, seconds")
    p.add_argument("--register-concurrency", type=int, default=50)
    p.add_argument("--setup-concurrency", type=int, default=100)
    p.add_argument("--log-level", default="info", help="the nodes' --log-level [info]")
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the nodes with py-spy (--nonblocking) during the measured window,"
        " into bench/results/sessions-profile-*.txt (collapsed stacks)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary data dirs and logs")
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = p.parse_args(argv)
    args.sessions = [int(x) for x in str(args.sessions).split(",") if x.strip()]
    args.configs = [x.strip() for x in str(args.configs).split(",") if x.strip()]
    for c in args.configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c!r}; choose among {', '.join(CONFIGS)}")
    if any(k < 1 for k in args.sessions):
        p.error("--sessions must be positive")
    return args


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for k in args.sessions:
        for config in args.configs:
            workers = args.workers or max(1, math.ceil(k / 500))
            print(f"== config {config} ({CONFIGS[config]}), K={k}, workers={workers}", flush=True)
            run = Run(args, config, k, workers)
            try:
                result = await run.execute()
            except Exception as exc:
                result = {"config": config, "sessions": k, "error": f"{type(exc).__name__}: {exc}"}
                result["server_log"] = run.log_problems()
            finally:
                await run.cleanup()
            print(json.dumps({x: y for x, y in result.items() if x != "node_flags"}), flush=True)
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    results = asyncio.run(main_async(args))
    print()
    print(table(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = args.out or RESULTS_DIR / f"sessions-{started:%Y%m%d-%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "argv": sys.argv,
                "machine": machine(),
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nwritten {out}")
    bad = [r for r in results if "error" in r or not r.get("storage", {}).get("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
