"""Dispatch benchmark: ``request.create`` to ``accepted``, with N connected experts.

Run it from the repository root, in the project's venv (``. .venv/bin/activate``)::

    python bench/dispatch.py --experts 100,1000,5000
    python bench/dispatch.py --experts 100,1000,5000 --redis
    python bench/dispatch.py --help            # every knob, with its default

For each N it starts a fresh server (``python -m rtserver serve`` as a
subprocess, embedded hub; with ``--redis``, two node processes sharing one
private redis-server and one data dir, experts and customers spread over
both) on free ports of 127.0.0.1, with a private data dir in a temporary
directory, the cheap KDF flags (``--kdf-memory-kib 1024 --kdf-time-cost 1``)
and ``--offer-batch 5``. It registers the customers and N experts (plus
spares) concurrently over HTTP, then measures:

1. **memory per idle connection**: the server's VmRSS (``/proc/<pid>/status``)
   before and after the N experts' sockets are connected and authenticated
   (``hello``, nothing else): ``(after - before) / N``, summed over the nodes;
2. **latency**: ``--requests`` instant requests sent one after another, each
   timed from sending ``request.create`` to receiving its ``request.update``
   with status ``accepted``, while every expert answers each ``offer.new`` with
   ``offer.accept`` at once; the lost accepts (``offer_taken``) of each request
   are counted, and so is the rest of the contract's rule 1 (one ``ok``);
3. **throughput**: ``--customers`` customers each keep one request in flight
   until ``--throughput-requests`` have been sent or ``--throughput-seconds``
   have passed; accepted requests per second, from the start to the last
   accept. A request not accepted within ``--request-timeout`` is cancelled by
   its customer and counted as *stalled*.

Every winner gets an active session and would never be offered work again. So
each winner's client sets itself ``away`` and disconnects, and a spare expert
(registered up front) connects and becomes available in its place: N experts
stay connected and available throughout. In the latency phase the next request
is sent only once the replacement is available (not timed). With
``--winners-end`` a winner instead ends his session at once and stays
available (the shared bench's W4); the next request waits for that end.

Experts run in ``--workers`` separate processes (asyncio, one socket each),
customers in this process, so that the timing side is not slowed by thousands
of expert sockets; the workers freeze their heap after connecting so that their
own GC pauses stay out of the figures. The CPU time of every process (server
nodes, redis-server, expert workers, this one, and the rest of the machine) is
sampled from ``/proc`` during each phase, to show which side is the bottleneck
and whether anything else was running.

Everything targets 127.0.0.1 only, every phase is bounded in count and time,
and every process started is stopped at the end. Results are printed as
Markdown tables and written as JSON to ``bench/results/`` (with the nodes' logs
beside it when they hold warnings or errors).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import gc
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
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
SKILL = "python"

# Per-request counters kept by the expert workers: "offer.new", "revoked:<reason>",
# and each accept's outcome: "ok", "offer_taken", any other error code, "no_reply",
# "socket_closed".
Counts = collections.Counter[str]


# -- small helpers -------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """VmRSS of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class CpuMeter:
    """CPU use of some processes, in % of one core, sampled every ``period`` seconds."""

    def __init__(self, pids: dict[str, int], period: float = 0.25) -> None:
        self.pids = pids
        self.period = period
        self.samples: list[tuple[float, dict[str, float]]] = [(time.perf_counter(), self.now())]

    def now(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        # The whole machine too, to see any load that is not ours ("others").
        used["machine"] = machine_busy_seconds()
        return used

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await asyncio.sleep(self.period)
            self.samples.append((time.perf_counter(), self.now()))

    def between(self, start: float, end: float) -> dict[str, float]:
        """{process: percent of one core} between two ``perf_counter`` times."""
        self.samples.append((time.perf_counter(), self.now()))
        t0, first = max((s for s in self.samples if s[0] <= start), default=self.samples[0])
        t1, last = min((s for s in self.samples if s[0] >= end), default=self.samples[-1])
        elapsed = max(t1 - t0, 1e-9)
        use = {name: round(100 * (last[name] - first[name]) / elapsed, 1) for name in last}
        ours = sum(v for k, v in use.items() if k != "machine")
        use["others"] = round(max(use["machine"] - ours, 0.0), 1)
        return use


def other_answers(counts: Counts) -> int:
    """Accepts answered neither ``ok`` nor ``offer_taken`` (or not answered)."""
    usual = ("offer.new", "ok", "offer_taken")
    return sum(v for k, v in counts.items() if k not in usual and not k.startswith("revoked:"))


async def gather_bounded(
    factories: Sequence[Callable[[], Coroutine[Any, Any, Any]]], limit: int
) -> list[Any]:
    """Run coroutines with at most ``limit`` at once; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        async with gate:
            return await factory()

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(one(f)) for f in factories]
    return [t.result() for t in tasks]


# -- the expert side: worker processes -----------------------------------------


class ExpertPool:
    """The experts of one worker process: each accepts every offer at once.

    The winner sets itself ``away``, disconnects, and a spare takes its place.
    """

    def __init__(
        self,
        urls: list[str],
        tokens: list[str],
        spares: list[str],
        notices: Any,
        decline_refused: bool,
        winners_end: bool = False,
    ) -> None:
        self.urls = urls
        self.decline_refused = decline_refused
        self.winners_end = winners_end
        self.inflight: collections.Counter[int] = collections.Counter()
        self.tokens = tokens
        self.spares = collections.deque(spares)
        self.notices = notices
        self.clients: list[Client] = []
        self.retired: set[int] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.per_request: dict[str, Counts] = collections.defaultdict(collections.Counter)
        self.codes: collections.Counter[str] = collections.Counter()
        self.replaced = 0
        self.no_spare = 0
        self.joined = 0
        self.tg: asyncio.TaskGroup | None = None

    def url(self) -> str:
        self.joined += 1
        return self.urls[self.joined % len(self.urls)]

    async def run(self, conn: Connection) -> None:
        """Serve the main process's commands until ``stop``."""
        loop = asyncio.get_running_loop()
        parent = os.getppid()

        def next_command() -> dict[str, Any] | None:
            # Poll, not block, so that this thread never outlives the process.
            while not conn.poll(0.5):
                if os.getppid() != parent:
                    return None
            command: dict[str, Any] = conn.recv()
            return command

        async with asyncio.TaskGroup() as tg:
            self.tg = tg
            while True:
                command = await loop.run_in_executor(None, next_command)
                if command is None or command["op"] == "stop":
                    break
                conn.send(await getattr(self, "op_" + command["op"])())
            # Close first, so that no pending command is left with an unread error.
            await asyncio.gather(
                *(asyncio.wait_for(c.close(), 5) for c in self.clients), return_exceptions=True
            )
            for task in list(self.tasks):
                task.cancel()
        conn.send({"stopped": True})

    async def op_connect(self) -> dict[str, Any]:
        """Connect and authenticate every expert (``hello`` only: idle sockets)."""
        started = time.monotonic()

        async def connect(token: str) -> Client:
            return await Client.connect(self.url(), token)

        clients = await gather_bounded([lambda t=t: connect(t) for t in self.tokens], 200)
        self.clients.extend(clients)
        for c in clients:
            self.start_serving(c)
        # Keep the load generator's own GC pauses (hundreds of ms with 5000 sockets'
        # objects) out of the figures: what is alive now is never collected.
        gc.collect()
        gc.freeze()
        return {"connected": len(clients), "seconds": time.monotonic() - started}

    async def op_available(self) -> dict[str, Any]:
        """Every expert sets ``available``."""

        async def available(c: Client) -> None:
            await c.call("presence", status="available")

        await gather_bounded([lambda c=c: available(c) for c in self.clients], 200)
        return {"available": len(self.clients)}

    async def op_stats(self) -> dict[str, Any]:
        """Counters since the last call (per request), and totals."""
        per_request, self.per_request = (
            self.per_request,
            collections.defaultdict(collections.Counter),
        )
        codes, self.codes = self.codes, collections.Counter()
        unexpected = [
            c.close_code
            for c in self.clients
            if id(c) not in self.retired and c._reader is not None and c._reader.done()
        ]
        return {
            "per_request": dict(per_request),
            "codes": dict(codes),
            "replaced": self.replaced,
            "no_spare": self.no_spare,
            "spares_left": len(self.spares),
            "unexpected_closes": collections.Counter(str(c) for c in unexpected),
        }

    def start_serving(self, c: Client) -> None:
        self.spawn(self.serve(c))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A task in the pool's task group, forgotten when done."""
        assert self.tg is not None
        task = self.tg.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def serve(self, c: Client) -> None:
        """Accept every offer at once; count revokes."""
        while True:
            ev = await c.events.get()
            kind = ev.get("type")
            if kind == "offer.new":
                rid = ev["offer"]["request_id"]
                self.per_request[rid]["offer.new"] += 1
                self.spawn(self.accept(c, rid))
            elif kind == "offer.revoked":
                self.per_request[ev["request_id"]][f"revoked:{ev.get('reason')}"] += 1

    async def accept(self, c: Client, rid: str) -> None:
        """Accept at once; the winner retires. With ``decline_refused``, an accept
        refused because the expert is now busy is followed by ``offer.decline``."""
        self.inflight[id(c)] += 1
        session_id = None
        try:
            outcome, reply = await self.reply(c, "offer.accept", rid)
            if outcome == "ok":
                session_id = reply["session"]["id"]
            self.per_request[rid][outcome] += 1
            if outcome not in ("ok", "offer_taken"):
                self.codes[outcome] += 1
            if outcome == "invalid_state" and self.decline_refused:
                self.per_request[rid]["decline:" + await self.command(c, "offer.decline", rid)] += 1
        finally:
            self.inflight[id(c)] -= 1
        if outcome == "ok" and self.winners_end:
            await self.end(c, rid, session_id)
        elif outcome == "ok":
            await self.retire(c, rid)

    async def command(self, c: Client, kind: str, rid: str) -> str:
        """``ok``, the error code, ``no_reply`` or ``socket_closed``."""
        return (await self.reply(c, kind, rid))[0]

    async def reply(self, c: Client, kind: str, rid: str) -> tuple[str, dict[str, Any]]:
        """The outcome as :meth:`command` names it, and the reply frame ({} if none)."""
        try:
            reply = await c.request(kind, request_id=rid, timeout=30)
        except TimeoutError:
            return "no_reply", {}
        except (ConnectionError, websockets.ConnectionClosed):
            return "socket_closed", {}
        return ("ok" if reply["type"] == "ok" else str(reply.get("code"))), reply

    async def end(self, c: Client, rid: str, session_id: str | None) -> None:
        """``--winners-end``: the winner ends his session at once and stays, free again."""
        try:
            await c.call("session.end", session_id=session_id, timeout=30)
        except Exception as exc:
            self.codes[f"end_failed:{type(exc).__name__}"] += 1
        self.notices.put(rid)

    async def retire(self, c: Client, rid: str) -> None:
        """The winner leaves (away, disconnect); a spare connects and is available."""
        self.retired.add(id(c))
        with contextlib.suppress(Exception):
            await c.call("presence", status="away", timeout=30)
        # Let the answers to his other offers arrive before he goes (at most 5 s).
        for _ in range(500):
            if not self.inflight[id(c)]:
                break
            await asyncio.sleep(0.01)
        self.inflight.pop(id(c), None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 10)
        if not self.spares:
            self.no_spare += 1
            self.notices.put(rid)
            return
        try:
            spare = await Client.connect(self.url(), self.spares.popleft())
            await spare.call("presence", status="available", timeout=30)
        except Exception as exc:
            self.codes[f"spare_failed:{type(exc).__name__}"] += 1
        else:
            self.clients.append(spare)
            self.start_serving(spare)
            self.replaced += 1
        self.notices.put(rid)


def expert_worker(conn: Connection, notices: Any, pool: dict[str, Any]) -> None:
    """Entry point of an expert worker process: ``pool`` is ExpertPool's arguments."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(ExpertPool(notices=notices, **pool).run(conn))


class Worker:
    """The main process's handle on one expert worker process."""

    def __init__(self, ctx: Any, notices: Any, **pool: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=expert_worker, args=(child, notices, pool), daemon=True)
        self.proc.start()
        child.close()

    async def call(self, op: str, timeout: float) -> dict[str, Any]:
        """Send a command and wait (bounded) for its answer."""
        self.conn.send({"op": op})

        def answer() -> dict[str, Any]:
            if not self.conn.poll(timeout):
                raise TimeoutError(f"worker {self.proc.pid}: no answer to {op} in {timeout}s")
            reply: dict[str, Any] = self.conn.recv()
            return reply

        return await asyncio.get_running_loop().run_in_executor(None, answer)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("stop", 20)
        await asyncio.to_thread(self.proc.join, 5)
        if self.proc.is_alive():
            self.proc.kill()
            await asyncio.to_thread(self.proc.join, 5)


class Notices:
    """Winners replaced, as the workers report them (request ids)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.seen: set[str] = set()

    async def wait_for(self, rid: str, timeout: float) -> bool:
        """True once the winner of ``rid`` has been replaced; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        while rid not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(Exception):
                self.seen.add(await loop.run_in_executor(None, self.queue.get, True, min(left, 1)))
        return True

    def drain(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                self.seen.add(self.queue.get_nowait())


# -- the customer side: this process -------------------------------------------


class Customer:
    """A customer socket whose final ``request.update`` events are timestamped."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.finals: dict[str, tuple[float, dict[str, Any]]] = {}
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.duplicates = 0

    async def listen(self) -> None:
        while True:
            ev = await self.client.events.get()
            if ev.get("type") != "request.update" or ev.get("status") == "open":
                continue
            rid = ev["request_id"]
            if rid in self.finals:
                self.duplicates += 1
                continue
            self.finals[rid] = (time.perf_counter(), ev)
            waiter = self.waiters.pop(rid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def one_request(self, n: int, timeout: float) -> dict[str, Any]:
        """Create one instant request and wait for its final update."""
        sent_at = time.time()
        sent = time.perf_counter()
        reply = await self.client.call(
            "request.create",
            kind="instant",
            title=f"bench {n}",
            description="dispatch benchmark",
            skills=[SKILL],
            language="en",
        )
        created = time.perf_counter()
        rid = reply["request"]["id"]
        if rid not in self.finals:
            waiter = self.waiters[rid] = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                self.waiters.pop(rid, None)
                with contextlib.suppress(Exception):
                    await self.client.call("request.cancel", request_id=rid)
                return {"id": rid, "status": "timeout", "create_ms": (created - sent) * 1000}
        at, ev = self.finals[rid]
        return {
            "id": rid,
            "status": ev["status"],
            "create_ms": (created - sent) * 1000,
            "accepted_ms": (at - sent) * 1000,
            "sent_at": round(sent_at, 3),
            "done_at": at,
            "notified": ev.get("notified"),
        }


# -- one size N --------------------------------------------------------------------


class Bench:
    """Servers, accounts, clients and phases for one number of experts."""

    def __init__(self, args: argparse.Namespace, n: int, tmp: Path) -> None:
        self.args = args
        self.n = n
        self.tmp = tmp
        self.redis: RedisServer | None = None
        self.nodes: list[ProcessNode] = []
        self.workers: list[Worker] = []
        self.customers: list[Customer] = []
        self.apis: list[Api] = []

    def pids(self) -> dict[str, int]:
        pids = {f"node{i}": n.proc.pid for i, n in enumerate(self.nodes) if n.proc}
        if self.redis and self.redis.proc:
            pids["redis"] = self.redis.proc.pid
        pids |= {f"worker{i}": w.proc.pid for i, w in enumerate(self.workers) if w.proc.pid}
        pids["bench"] = os.getpid()
        return pids

    def rss(self) -> list[int]:
        return [rss_kib(n.proc.pid) for n in self.nodes if n.proc]

    async def start_servers(self) -> None:
        data = self.tmp / "data"
        # A bench customer sends hundreds of requests a minute: far past a person's
        # --create-limit, which would then be what is measured.
        common: dict[str, Any] = {
            "offer_batch": self.args.offer_batch,
            "create_limit": "1000000/1s",
            "log_level": self.args.log_level,
        }
        count = 1
        if self.args.redis:
            self.redis = RedisServer()
            await asyncio.to_thread(self.redis.start)
            common |= {"redis_url": self.redis.url}
            count = 2
        for i in range(count):
            settings = node_settings(data, node_id=f"n{i}", **common)
            node = ProcessNode(settings, self.tmp / f"n{i}.log")
            await asyncio.to_thread(node.start)
            self.nodes.append(node)
        self.apis = [Api(n.http) for n in self.nodes]

    async def register(self, role: str, count: int) -> list[str]:
        """``count`` new accounts over HTTP, spread over the nodes; their tokens."""

        async def one(i: int) -> str:
            api = self.apis[i % len(self.apis)]
            _, token = await api.register(
                f"{role}-{self.n}-{i}@bench.example", PASSWORD, f"{role} {i}", role
            )
            if role == "expert":
                await api.preferences(token, skills=[SKILL], languages=["en"])
            return token

        return await gather_bounded([lambda i=i: one(i) for i in range(count)], 32)

    async def run(self) -> dict[str, Any]:
        args, n = self.args, self.n
        result: dict[str, Any] = {"experts": n, "nodes": 1 + bool(args.redis)}
        await self.start_servers()
        spares_needed = args.requests + args.throughput_requests + 10
        if args.winners_end:
            spares_needed = 0  # winners stay: nobody replaces them
        t0 = time.monotonic()
        customer_tokens = await self.register("customer", len(self.nodes) + args.customers)
        expert_tokens = await self.register("expert", n + spares_needed)
        result["register"] = {
            "accounts": len(customer_tokens) + len(expert_tokens),
            "seconds": round(time.monotonic() - t0, 1),
        }
        print(f"  registered {result['register']['accounts']} accounts", flush=True)
        urls = [node.ws for node in self.nodes]
        for i, token in enumerate(customer_tokens):
            customer = Customer(await Client.connect(urls[i % len(urls)], token))
            self.customers.append(customer)
        async with asyncio.TaskGroup() as tg:
            listeners = [tg.create_task(c.listen()) for c in self.customers]
            try:
                await self.measure(result, urls, expert_tokens)
            finally:
                for task in listeners:
                    task.cancel()
        return result

    async def measure(self, result: dict[str, Any], urls: list[str], tokens: list[str]) -> None:
        args, n = self.args, self.n
        ctx = multiprocessing.get_context("spawn")
        notices = Notices(ctx.Queue())
        initial, spare = tokens[:n], tokens[n:]
        k = args.workers
        for i in range(k):
            worker = Worker(
                ctx,
                notices.queue,
                urls=urls,
                tokens=initial[i::k],
                spares=spare[i::k],
                decline_refused=args.decline_refused,
                winners_end=args.winners_end,
            )
            self.workers.append(worker)
        await self.measure_memory(result)
        await asyncio.gather(*(w.call("available", 600) for w in self.workers))
        for w in self.workers:
            await w.call("stats", 30)  # start counting from zero
        meter = CpuMeter(self.pids())
        async with asyncio.TaskGroup() as tg:
            sampler = tg.create_task(meter.run())
            try:
                result["latency"] = await self.measure_latency(notices, meter)
                print(f"  latency: {result['latency']['accepted_ms']}", flush=True)
                notices.drain()
                result["throughput"] = thr = await self.measure_throughput(meter)
                print(
                    f"  throughput: {thr['accepted_per_second']} accepted/s, "
                    f"{thr['statuses']}, cpu {thr['cpu_percent']}",
                    flush=True,
                )
            finally:
                sampler.cancel()
        result["rss_end_kib"] = self.rss()
        result["duplicate_finals"] = sum(c.duplicates for c in self.customers)

    async def measure_memory(self, result: dict[str, Any]) -> None:
        """Server RSS before and after the N experts' sockets authenticate."""
        await asyncio.sleep(1)
        before = self.rss()
        t0 = time.monotonic()
        answers = await asyncio.gather(*(w.call("connect", 600) for w in self.workers))
        connect_s = time.monotonic() - t0
        await asyncio.sleep(2)
        after = self.rss()
        connected = sum(a["connected"] for a in answers)
        result["memory"] = {
            "rss_before_kib": before,
            "rss_after_kib": after,
            "sockets": connected,
            "kib_per_socket": round((sum(after) - sum(before)) / connected, 1),
        }
        result["connect"] = {
            "sockets": connected,
            "seconds": round(connect_s, 2),
            "per_second": round(connected / connect_s),
        }
        print(
            f"  {connected} experts connected in {connect_s:.1f}s, "
            f"{result['memory']['kib_per_socket']} KiB/socket",
            flush=True,
        )

    async def measure_latency(self, notices: Notices, meter: CpuMeter) -> dict[str, Any]:
        """One request after another; the next once the last winner is replaced."""
        args = self.args
        outcomes = []
        start = time.perf_counter()
        deadline = time.monotonic() + args.phase_seconds
        not_replaced = 0
        for i in range(args.requests):
            if time.monotonic() > deadline:
                break
            customer = self.customers[i % len(self.nodes)]
            outcome = await customer.one_request(i, args.request_timeout)
            outcomes.append(outcome)
            if outcome["status"] == "accepted" and not await notices.wait_for(outcome["id"], 30):
                not_replaced += 1
        cpu = meter.between(start, time.perf_counter())
        phase = self.phase_result(outcomes, await self.worker_stats(), cpu)
        phase["not_replaced"] = not_replaced
        return phase

    async def measure_throughput(self, meter: CpuMeter) -> dict[str, Any]:
        """``--customers`` customers with one request in flight each, bounded in count
        and time; accepted per second over the span from the start to the last accept."""
        args = self.args
        issued = 0
        done: list[dict[str, Any]] = []
        stop_at = time.monotonic() + args.throughput_seconds
        start = time.perf_counter()

        async def customer_loop(customer: Customer) -> None:
            nonlocal issued
            while issued < args.throughput_requests and time.monotonic() < stop_at:
                issued += 1
                done.append(await customer.one_request(issued, args.request_timeout))

        async with asyncio.TaskGroup() as tg:
            for c in self.customers[len(self.nodes) :]:
                tg.create_task(customer_loop(c))
        finished = [o["done_at"] for o in done if o["status"] == "accepted"]
        end = max(finished, default=time.perf_counter())
        span = max(end - start, 1e-9)
        phase = self.phase_result(done, await self.worker_stats(), meter.between(start, end))
        server = sum(v for k, v in phase["cpu_percent"].items() if k.startswith(("node", "redis")))
        phase |= {
            "server_cpu_ms_per_accepted": round(server * 10 * span / max(len(finished), 1), 1),
            "customers": args.customers,
            "seconds": round(span, 2),
            "seconds_with_stalls": round(time.perf_counter() - start, 2),
            "accepted_per_second": round(len(finished) / span, 1),
        }
        return phase

    async def worker_stats(self) -> dict[str, Any]:
        """Per-request counters and totals, merged over the workers."""
        per_request: dict[str, Counts] = collections.defaultdict(collections.Counter)
        merged: dict[str, Any] = {
            "per_request": per_request,
            "codes": collections.Counter(),
            "unexpected_closes": collections.Counter(),
            "replaced": 0,
            "no_spare": 0,
            "spares_left": 0,
        }
        for w in self.workers:
            s = await w.call("stats", 60)
            for rid, counts in s["per_request"].items():
                per_request[rid].update(counts)
            merged["codes"].update(s["codes"])
            merged["unexpected_closes"].update(s["unexpected_closes"])
            for key in ("replaced", "no_spare", "spares_left"):
                merged[key] += s[key]
        return merged

    def phase_result(
        self, outcomes: list[dict[str, Any]], stats: dict[str, Any], cpu: dict[str, float]
    ) -> dict[str, Any]:
        """Latencies, per-request accept outcomes, CPU, and every anomaly seen."""
        per_request: dict[str, Counts] = stats["per_request"]
        accepted = [o for o in outcomes if o["status"] == "accepted"]
        rows = [per_request.get(o["id"], collections.Counter()) for o in accepted]
        # Rule 1 as the experts saw it: exactly one ok per accepted request.
        anomalies = [
            {"id": o["id"], "counts": dict(r)}
            for o, r in zip(accepted, rows, strict=True)
            if r["ok"] != 1
        ]
        answers: Counts = collections.Counter()
        for r in per_request.values():
            answers.update({k: v for k, v in r.items() if k != "offer.new"})
        stalled = [
            {"id": o["id"], "status": o["status"], "counts": dict(per_request.get(o["id"], {}))}
            for o in outcomes
            if o["status"] != "accepted"
        ]
        return {
            "requests": len(outcomes),
            "statuses": dict(collections.Counter(o["status"] for o in outcomes)),
            "create_ms": summarize([o["create_ms"] for o in outcomes]),
            "accepted_ms": summarize([o["accepted_ms"] for o in accepted]),
            "accepted_ms_in_order": [round(o["accepted_ms"], 1) for o in accepted],
            "slowest": [
                {k: o[k] for k in ("id", "sent_at", "create_ms", "accepted_ms")}
                for o in sorted(accepted, key=lambda o: -o["accepted_ms"])[:5]
            ],
            "offers_per_request": summarize([r["offer.new"] for r in rows]),
            "lost_per_request": summarize([r["offer_taken"] for r in rows]),
            "other_answers_per_request": summarize([other_answers(r) for r in rows]),
            "revoked_taken_per_request": summarize([r["revoked:taken"] for r in rows]),
            "answers": dict(answers),
            "winner_not_one": anomalies[:20],
            "winner_not_one_count": len(anomalies),
            "not_accepted": stalled[:20],
            "error_codes": dict(stats["codes"]),
            "unexpected_closes": dict(stats["unexpected_closes"]),
            "experts_consumed": stats["replaced"] + stats["no_spare"],
            "spares_left": stats["spares_left"],
            "cpu_percent": cpu,
        }

    async def aclose(self) -> None:
        for c in self.customers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.client.close(), 5)
        for w in self.workers:
            await w.stop()
        for api in self.apis:
            await api.aclose()
        for node in self.nodes:
            await asyncio.to_thread(node.stop)
        if self.redis:
            await asyncio.to_thread(self.redis.stop)


# -- the command ------------------------------------------------------------------


def git_revision() -> str:
    """The commit measured, with ``+dirty`` when the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "")


def table(mode: str, results: list[dict[str, Any]]) -> str:
    """The figures as Markdown tables: latency and memory, then throughput."""

    def row(*cells: Any) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    def cpu(phase: dict[str, Any], prefixes: tuple[str, ...]) -> str:
        used = phase["cpu_percent"]
        return " + ".join(f"{v:.0f}" for k, v in used.items() if k.startswith(prefixes))

    lat_head = (
        "mode",
        "experts",
        "KiB/socket",
        "connects/s",
        "requests",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "max ms",
        "create ok p50 ms",
        "lost/req",
        "server CPU %",
        "others CPU %",
    )
    thr_head = (
        "mode",
        "experts",
        "customers",
        "accepted",
        "stalled",
        "accepted/s",
        "p50 ms",
        "p99 ms",
        "busy refusals",
        "server CPU %",
        "server CPU ms/accepted",
        "clients CPU %",
        "others CPU %",
    )
    lines = [row(*lat_head), row(*["---"] * len(lat_head))]
    for r in results:
        lat = r["latency"]
        ms = lat["accepted_ms"]
        lines.append(
            row(
                mode,
                r["experts"],
                r["memory"]["kib_per_socket"],
                r["connect"]["per_second"],
                lat["requests"],
                ms.get("p50"),
                ms.get("p99"),
                ms.get("mean"),
                ms.get("max"),
                lat["create_ms"].get("p50"),
                lat["lost_per_request"].get("mean"),
                cpu(lat, ("node", "redis")),
                cpu(lat, ("others",)),
            )
        )
    lines += ["", row(*thr_head), row(*["---"] * len(thr_head))]
    for r in results:
        thr = r["throughput"]
        accepted = thr["statuses"].get("accepted", 0)
        lines.append(
            row(
                mode,
                r["experts"],
                thr["customers"],
                accepted,
                thr["requests"] - accepted,
                thr["accepted_per_second"],
                thr["accepted_ms"].get("p50"),
                thr["accepted_ms"].get("p99"),
                thr["answers"].get("invalid_state", 0),
                cpu(thr, ("node", "redis")),
                thr["server_cpu_ms_per_accepted"],
                cpu(thr, ("worker", "bench")),
                cpu(thr, ("others",)),
            )
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--experts",
        default="100,1000,5000",
        help="comma-separated numbers of connected experts [100,1000,5000]",
    )
    p.add_argument("--redis", action="store_true", help="two nodes sharing a private Redis")
    p.add_argument("--requests", type=int, default=200, help="latency requests, in turn [200]")
    p.add_argument(
        "--customers", type=int, default=20, help="throughput: customers in parallel [20]"
    )
    p.add_argument(
        "--throughput-requests", type=int, default=1000, help="throughput: at most [1000]"
    )
    p.add_argument("--throughput-seconds", type=float, default=60, help="throughput: at most [60]")
    p.add_argument("--offer-batch", type=int, default=5, help="server --offer-batch [5]")
    p.add_argument(
        "--decline-refused",
        action="store_true",
        help="an expert whose accept is refused as busy (invalid_state) then declines",
    )
    p.add_argument(
        "--winners-end",
        action="store_true",
        help="a winner ends his session at once and stays available (no spare replaces him)",
    )
    p.add_argument("--log-level", default="info", help="the nodes' --log-level [info]")
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the nodes' logs in bench/results/ even when they hold no warning",
    )
    p.add_argument("--workers", type=int, default=1, help="expert worker processes [1]")
    p.add_argument(
        "--request-timeout",
        type=float,
        default=5,
        help="a customer cancels a request not accepted after this; counted as stalled [5s]",
    )
    p.add_argument("--phase-seconds", type=float, default=600, help="latency phase at most [600s]")
    p.add_argument("--out", type=Path, default=None, help="JSON file [bench/results/...]")
    args = p.parse_args(argv)
    args.sizes = [int(x) for x in args.experts.split(",") if x.strip()]
    return args


async def main(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    mode = "redis (2 nodes)" if args.redis else "embedded"
    if args.decline_refused:
        mode += ", decline refused"
    if args.winners_end:
        mode += ", winners end"
    report: dict[str, Any] = {
        "benchmark": "dispatch",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "argv": sys.argv[1:],
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"sizes": args.sizes},
        "machine": machine(),
        "git": git_revision(),
        "results": [],
    }
    for n in args.sizes:
        print(f"{mode}: {n} experts", flush=True)
        with tempfile.TemporaryDirectory(prefix="rt-bench-") as tmp:
            bench = Bench(args, n, Path(tmp))
            try:
                result = await bench.run()
            finally:
                await bench.aclose()
                problems = server_log_problems(Path(tmp), stamp, n, args.keep_logs)
            result["server_log"] = problems
            report["results"].append(result)
    return report


def server_log_problems(tmp: Path, stamp: str, n: int, keep: bool = False) -> dict[str, Any]:
    """Warnings and errors in the nodes' logs; the logs are kept when there are any
    (or always, with ``keep``)."""
    counts: collections.Counter[str] = collections.Counter()
    first: list[str] = []
    logs = sorted(tmp.glob("n*.log"))
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            level = line.split(" ", 2)[1] if line[:1].isdigit() and " " in line else ""
            if level in ("WARNING", "ERROR", "CRITICAL") or line.startswith("Traceback"):
                counts[level or "Traceback"] += 1
                if len(first) < 20:
                    first.append(f"{log.stem}: {line[:300]}")
    kept = None
    if counts or keep:
        kept = RESULTS_DIR / f"dispatch-{stamp}-logs-{n}"
        kept.mkdir(parents=True, exist_ok=True)
        for log in logs:
            shutil.copy(log, kept / log.name)
    return {"counts": dict(counts), "first": first, "kept": str(kept) if kept else None}


def cli(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with asyncio.Runner(loop_factory=new_loop) as runner:
        report = runner.run(main(args, stamp))
    print()
    print(table(report["mode"], report["results"]))
    out = args.out
    if out is None:
        out = RESULTS_DIR / f"dispatch-{'redis' if args.redis else 'embedded'}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    cli()
