"""Prometheus metrics of one node, in a registry of its own (no globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Every metric the node exports, labelled with its node id."""

    def __init__(self, node_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"node": node_id}
        r = self.registry
        self.connections = Gauge(
            "rt_connections", "Open authenticated WebSocket connections", ["node"], registry=r
        ).labels(**labels)
        self.frames_in = Counter(
            "rt_frames_in", "Frames received, by command type", ["node", "type"], registry=r
        )
        self.errors = Counter(
            "rt_errors", "Error replies sent, by code", ["node", "code"], registry=r
        )
        self.requests_created = Counter(
            "rt_requests_created", "Requests created", ["node", "kind"], registry=r
        )
        self.offers_sent = Counter(
            "rt_offers_sent", "Offers made to experts", ["node"], registry=r
        ).labels(**labels)
        self.accepts = Counter(
            "rt_accepts_won", "Accepts that won their request", ["node"], registry=r
        ).labels(**labels)
        self.races_lost = Counter(
            "rt_accept_races_lost", "Accepts that lost to another expert", ["node"], registry=r
        ).labels(**labels)
        self.accept_latency = Histogram(
            "rt_accept_latency_seconds",
            "Time from request.create to its accept",
            ["node"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600),
            registry=r,
        ).labels(**labels)
        self.slow_closes = Counter(
            "rt_slow_reader_closes",
            "Sockets closed 4408 for a full send queue",
            ["node"],
            registry=r,
        ).labels(**labels)
        self.bus_errors = Counter(
            "rt_bus_errors", "Failures talking to the bus (Redis)", ["node", "op"], registry=r
        )
        self.resyncs = Counter(
            "rt_bus_resyncs",
            "Times this node re-sent state after missing bus events",
            ["node"],
            registry=r,
        ).labels(**labels)
        self.timers_fired = Counter(
            "rt_timers_fired", "Durable timers run, by kind", ["node", "kind"], registry=r
        )
        self.timers_failed = Counter(
            "rt_timers_failed",
            "Durable timers whose handler failed and that will be tried again, by kind",
            ["node", "kind"],
            registry=r,
        )
        self.timers_retired = Counter(
            "rt_timers_retired",
            "Durable timers retired into a dead letter after their last try, by kind",
            ["node", "kind"],
            registry=r,
        )
        self.loop_errors = Counter(
            "rt_loop_errors",
            "Errors a background loop survived (it backs off and tries again), by loop",
            ["node", "loop"],
            registry=r,
        )
        self.failing = Gauge(
            "rt_part_failing",
            "1 while a part of the node (a loop, a kind of Redis call) is failing",
            ["node", "part"],
            registry=r,
        )
        self.lock_waits = Histogram(
            "rt_db_lock_wait_seconds",
            "Write transactions that waited for the database write lock held by another"
            " process (past one busy-timeout round), by how long",
            ["node", "outcome"],
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60),
            registry=r,
        )
        self._node = node_id
        self._frames_in_by_type: dict[str, Any] = {}

    def frame_in(self, ftype: str) -> None:
        """Count one received command."""
        child = self._frames_in_by_type.get(ftype)
        if child is None:
            # labels() hashes and locks on every call: once per command type is enough.
            child = self._frames_in_by_type[ftype] = self.frames_in.labels(
                node=self._node, type=ftype
            )
        child.inc()

    def error(self, code: str) -> None:
        """Count one error reply."""
        self.errors.labels(node=self._node, code=code).inc()

    def request_created(self, kind: str) -> None:
        """Count one new request."""
        self.requests_created.labels(node=self._node, kind=kind).inc()

    def bus_error(self, op: str) -> None:
        """Count one failed bus operation."""
        self.bus_errors.labels(node=self._node, op=op).inc()

    def loop_error(self, loop: str) -> None:
        """Count one error a background loop survived."""
        self.loop_errors.labels(node=self._node, loop=loop).inc()

    def part_failing(self, part: str, failing: bool) -> None:
        """A part started (True) or stopped (False) failing."""
        self.failing.labels(node=self._node, part=part).set(1 if failing else 0)

    def timer_fired(self, kind: str) -> None:
        """Count one timer run."""
        self.timers_fired.labels(node=self._node, kind=kind).inc()

    def timer_failed(self, kind: str) -> None:
        """Count one failed timer run that will be tried again."""
        self.timers_failed.labels(node=self._node, kind=kind).inc()

    def timer_retired(self, kind: str) -> None:
        """Count one timer retired into a dead letter."""
        self.timers_retired.labels(node=self._node, kind=kind).inc()

    def lock_wait(self, seconds: float, acquired: bool) -> None:
        """Count one long wait for the database write lock (``acquired``: or given up)."""
        outcome = "acquired" if acquired else "gave_up"
        self.lock_waits.labels(node=self._node, outcome=outcome).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
