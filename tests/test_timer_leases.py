"""Durable timers under slow and failing handlers: leases, backoff, dead letters.

Real databases (SQLite files, PostgreSQL), real nodes: two timer loops (or two
whole nodes) on one database, as two processes sharing a data dir or a
PostgreSQL database are; an HTTP node for the managers' routes. The senders
are test implementations of our own ``Sender`` interface: one that takes
longer than a lease, one that fails for some addresses. Leases and backoff
are short (seconds, tenths of one) so that each test takes seconds; nothing
here asserts on how long anything took.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from clients.rtclient import Api
from rtserver.app import Node as AppNode
from rtserver.clock import SystemClock, to_ms
from rtserver.core.retry import RetryPolicy
from rtserver.core.text import email_key
from rtserver.hub.timers import TimerLoop
from rtserver.metrics import Metrics
from rtserver.notify import Outgoing
from rtserver.storage.db import MIGRATIONS, _statements
from rtserver.storage.timers import TimerStore
from rtserver.storage.users import User
from tests.portal import auth, new_manager
from tests.servers import new_customer, node_settings, run_node, unique
from tests.storage import opened, query

pytestmark = pytest.mark.both_backends

# A lease of two seconds (renewed every 0.67 s: a loaded machine may stall the
# loop a while without losing it); every slow handler below holds its timer
# for two and a half leases.
LEASE = 2.0
HOLD = 2.5 * LEASE


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something true; its value. Fails after ``timeout``."""
    with anyio.move_on_after(timeout):
        while True:
            value = check()
            if value:
                return value
            await anyio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


class SlowSender:
    """Takes ``HOLD`` seconds per message: longer than a timer's lease."""

    def __init__(self, name: str, tries: list[tuple[str, str]], started: anyio.Event) -> None:
        self.name = name
        self.tries = tries
        self.started = started

    async def send(self, message: Outgoing) -> None:
        self.tries.append((self.name, message.subject))
        self.started.set()
        await anyio.sleep(HOLD)


class FailingSender:
    """Fails for addresses starting ``bad-`` (and for every address while ``down``)."""

    def __init__(self) -> None:
        self.tries: list[str] = []
        self.sent: list[str] = []
        self.down = False

    async def send(self, message: Outgoing) -> None:
        self.tries.append(message.address)
        if self.down or message.address.startswith("bad-"):
            raise ConnectionRefusedError(f"provider down for {message.address}")
        self.sent.append(message.address)


@asynccontextmanager
async def app_node(settings: Any, sender: Any) -> AsyncIterator[AppNode]:
    """A whole node (storage, bus, timer loop) without its HTTP server."""
    node = AppNode(settings, sender=sender)
    async with node.running():
        yield node


async def make_user(node: AppNode, local: str) -> User:
    now_ms = to_ms(SystemClock().now())
    return await node.hub.users.create(
        f"{unique(local)}@example.com", "x", "Someone", "customer", now_ms
    )


async def notify(node: AppNode, users: list[User], key: str) -> None:
    """One notice (and so one e-mail) to each user, in one transaction, then a kick."""
    now = node.clock.now()
    async with node.db.transaction() as conn:
        for user in users:
            await node.notices.add(conn, user, "test", key, None, {}, key, "body", now)
    node.notices.kick()


# -- leases ------------------------------------------------------------------------------------


async def test_a_lease_is_renewed_while_its_handler_runs(data_dir: Path) -> None:
    """Two loops on one database; the handler holds its timer for 2.5 leases."""
    runs: list[str] = []

    def slow(name: str) -> Callable[[str], Any]:
        async def handler(ref: str) -> None:
            runs.append(name)
            await anyio.sleep(HOLD)

        return handler

    async with opened(data_dir) as db_a, opened(data_dir) as db_b:
        store = TimerStore(db_a)
        loops = [
            TimerLoop(TimerStore(db), SystemClock(), name, Metrics(name), poll=0.1, lease=LEASE)
            for name, db in (("a", db_a), ("b", db_b))
        ]
        for loop in loops:
            loop.register("slow", slow(loop.owner))
        async with anyio.create_task_group() as tg:
            for loop in loops:
                tg.start_soon(loop.run)
            async with db_a.transaction() as conn:
                await store.schedule(conn, "slow", "x", to_ms(SystemClock().now()))
            await until(lambda: runs, "the handler to start")
            # Done when the timer completed, or as soon as it ran a second time.
            await until(
                lambda: len(runs) > 1 or not query(data_dir, "SELECT 1 FROM timers"),
                "the timer to complete",
            )
            tg.cancel_scope.cancel()
    assert len(runs) == 1, runs


async def test_a_slow_sender_is_not_run_twice_by_another_node(data_dir: Path) -> None:
    """Both nodes send slowly (2.5 leases per message); one of them takes the first
    message, and the second is queued meanwhile. Each message goes out once: the
    slow one by the node that took it alone. (Which node takes it is a race
    between a's wake and b's poll: either may win.)"""
    settings = node_settings(data_dir, timer_lease=f"{LEASE}s")
    tries: list[tuple[str, str]] = []
    started = anyio.Event()
    a_sender = SlowSender("a", tries, started)
    b_sender = SlowSender("b", tries, started)
    async with (
        app_node(settings.replace(node_id="a"), a_sender) as a,
        app_node(settings.replace(node_id="b"), b_sender) as b,
    ):
        user = await make_user(a, "slow")
        await notify(a, [user], "first")
        with anyio.fail_after(30):
            await started.wait()
        await notify(b, [user], "second")
        await until(
            lambda: len(query(data_dir, "SELECT 1 FROM outbox WHERE sent_at IS NOT NULL")) == 2,
            "both messages to be sent",
        )
        await until(lambda: not query(data_dir, "SELECT 1 FROM timers"), "the timers to end")
    firsts = [name for name, subject in tries if subject == "first"]
    assert len(firsts) == 1, tries
    assert [subject for _, subject in tries].count("second") == 1, tries


# -- failures ------------------------------------------------------------------------------------


async def test_failing_addresses_do_not_hold_up_a_later_message(data_dir: Path) -> None:
    """120 messages to addresses that fail, queued first, then one that works."""
    sender = FailingSender()
    async with app_node(node_settings(data_dir, timer_retry="1m"), sender) as node:
        bad = [await make_user(node, "bad") for _ in range(120)]
        good = await make_user(node, "good")
        await notify(node, bad, "news")
        await notify(node, [good], "news")
        await until(lambda: good.email in sender.sent, "the good message to be sent")
        # Every failing one was tried, and waits for its next try instead of blocking.
        await until(lambda: len(set(sender.tries)) == 121, "every address to be tried")
        await until(
            lambda: all(r["attempts"] == 1 for r in query(data_dir, "SELECT * FROM timers")),
            "every failure to be counted",
        )
        rows = query(
            data_dir,
            "SELECT t.attempts, t.due_at, o.created_at, o.sent_at, o.last_error FROM timers t"
            " JOIN outbox o ON t.kind = 'outbox' AND t.ref = CAST(o.id AS TEXT)",
        )
    assert len(rows) == 120
    assert all(r["sent_at"] is None and "provider down" in r["last_error"] for r in rows)
    # Backed off: due again no sooner than half of --timer-retry after it was queued.
    assert all(r["due_at"] >= r["created_at"] + 30_000 for r in rows)
    assert sender.sent == [good.email]


def test_retry_delays_double_with_jitter_up_to_a_cap_then_the_work_retires() -> None:
    policy = RetryPolicy(base=30.0, cap=3600.0, attempts=8)
    # Each delay is drawn from [step/2, step]; the step doubles from the base.
    lows = [policy.delay(n, lambda lo, hi: lo) for n in range(1, 9)]
    highs = [policy.delay(n, lambda lo, hi: hi) for n in range(1, 9)]
    assert lows == [15.0 * 2**i for i in range(7)] + [None]
    assert highs == [30.0 * 2**i for i in range(7)] + [None]
    capped = RetryPolicy(base=1.0, cap=5.0, attempts=1000)
    assert capped.delay(999, max) == 5.0
    assert capped.delay(999, min) == 2.5
    with pytest.raises(ValueError):
        RetryPolicy(base=2.0, cap=1.0, attempts=3)


@pytest.mark.sqlite_only  # a SQLite file left by an older version of the embedded schema
async def test_an_outbox_left_by_an_older_version_is_sent_message_by_message(
    data_dir: Path,
) -> None:
    """A database from before per-message timers: one ``outbox/all`` timer, two unsent
    messages and a sent one. After the migration each unsent one is sent, once."""
    version = next(v for v, m in enumerate(MIGRATIONS) if "dead_letters" in m)
    db = sqlite3.connect(data_dir / "rtserver.sqlite3", isolation_level=None)
    try:
        db.create_function("rt_email_key", 1, email_key, deterministic=True)
        for script in MIGRATIONS[:version]:
            for statement in _statements(script):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        for n, sent_at in ((1, None), (2, 5), (3, None)):
            db.execute(
                "INSERT INTO outbox (user_id, channel, address, subject, body, key, created_at,"
                " sent_at) VALUES ('u', 'email', ?, 's', 'b', ?, 1, ?)",
                (f"old-{n}@example.com", f"k{n}", sent_at),
            )
        db.execute("INSERT INTO timers (kind, ref, due_at) VALUES ('outbox', 'all', 1)")
    finally:
        db.close()
    sender = FailingSender()
    async with app_node(node_settings(data_dir), sender):
        await until(lambda: len(sender.sent) == 2, "the two unsent messages to be sent")
        await until(lambda: not query(data_dir, "SELECT 1 FROM timers"), "the timers to end")
    assert sorted(sender.sent) == ["old-1@example.com", "old-3@example.com"]


# -- dead letters ---------------------------------------------------------------------------------


async def test_a_failing_message_is_retired_shown_to_managers_and_retried(
    data_dir: Path,
) -> None:
    settings = node_settings(
        data_dir, timer_attempts=3, timer_retry="100ms", timer_retry_max="400ms"
    )
    flaky = FailingSender()
    flaky.down = True
    async with run_node(settings, sender=flaky) as web:
        api = Api(web.http)
        try:
            node: AppNode = web.app.state.node  # type: ignore[union-attr]
            manager = await new_manager(web, api, data_dir)
            customer, customer_token = await new_customer(api)
            user = await node.hub.users.by_id(customer["id"])
            assert user is not None
            await notify(node, [user], "reminder")

            async def dead_letters(token: str, **params: Any) -> Any:
                r = await api.http.get("/api/dead-letters", headers=auth(token), params=params)
                return r

            async def listed() -> list[dict[str, Any]]:
                r = await dead_letters(manager)
                assert r.status_code == 200, r.text
                found: list[dict[str, Any]] = r.json()["dead_letters"]
                return found

            found: list[dict[str, Any]] = []
            with anyio.fail_after(30):
                while not found:
                    found = await listed()
                    await anyio.sleep(0.05)
            [dead] = found
            assert dead["kind"] == "outbox" and dead["status"] == "dead"
            assert dead["attempts"] == 3
            assert "provider down" in dead["last_error"]
            assert dead["message"]["address"] == user.email
            assert dead["message"]["subject"] == "reminder" and not dead["message"]["sent"]
            # Tried exactly three times, then left alone.
            assert flaky.tries == [user.email] * 3
            assert not query(data_dir, "SELECT 1 FROM timers WHERE kind = 'outbox'")
            metrics = (await api.http.get("/metrics")).text
            assert 'rt_timers_retired_total{kind="outbox"' in metrics

            # Only managers see or retry them.
            assert (await dead_letters(customer_token)).status_code == 403
            path = f"/api/dead-letters/{dead['id']}/retry"
            r = await api.http.post(path, headers=auth(customer_token))
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
            assert (await api.http.get("/api/dead-letters")).status_code == 401
            r = await dead_letters(manager, status="lost")
            assert r.status_code == 422

            # The provider is back: a manager retries it, and it is sent once.
            flaky.down = False
            r = await api.http.post(path, headers=auth(manager))
            assert r.status_code == 200, r.text
            assert r.json()["dead_letter"]["status"] == "retried"
            await until(lambda: flaky.sent == [user.email], "the retried message to be sent")
            r = await api.http.post(path, headers=auth(manager))
            assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state"
            for missing in ("999999", "abc", str(2**64)):
                r = await api.http.post(f"/api/dead-letters/{missing}/retry", headers=auth(manager))
                assert r.status_code == 404, (missing, r.text)
            [retried] = (await dead_letters(manager, status="retried")).json()["dead_letters"]
            assert retried["retried_by"]["id"] and retried["message"]["sent"]
            assert (await dead_letters(manager, status="dead")).json()["dead_letters"] == []
            audit = (await api.http.get("/api/audit", headers=auth(manager))).json()["entries"]
            assert audit[0]["action"] == "dead_letter.retry"
        finally:
            await api.aclose()
