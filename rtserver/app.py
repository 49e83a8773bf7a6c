"""The app factory and the node: every part of one server process, wired once.

``create_app(settings)`` returns a Starlette app whose lifespan owns the task
group of the node's background work (bus reader, presence heartbeat, timer
loop, ...), each loop run under :func:`rtserver.health.supervise`. Nothing is
global: two apps in one process are two nodes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from rtserver.auth import Auth
from rtserver.clock import Clock, SystemClock
from rtserver.config import Settings
from rtserver.errors import Internal, InvalidState, RtError
from rtserver.health import Health, supervise
from rtserver.http import api, attachments, ops, portal, web
from rtserver.http.bodies import BodyLimit
from rtserver.http.common import http_exception
from rtserver.hub.bus import Bus, EmbeddedBus
from rtserver.hub.connections import Connection, Registry
from rtserver.hub.redis_bus import RedisBus
from rtserver.hub.service import Hub
from rtserver.hub.timers import TIMERS_PART
from rtserver.limits import Limits
from rtserver.metrics import Metrics
from rtserver.notices import Notices
from rtserver.notify import Payer, Sender
from rtserver.portal.accounts import Accounts
from rtserver.portal.claims import Claims
from rtserver.portal.common import Parts
from rtserver.portal.dead_letters import DeadLetters
from rtserver.portal.history import History
from rtserver.portal.money import Money
from rtserver.protocol import FrameError, error, ok, parse_frame
from rtserver.rooms.scheduled import Scheduled
from rtserver.rooms.service import Rooms
from rtserver.schemas import (
    ALL_COMMANDS,
    BillingPause,
    BillingStart,
    Command,
    Hello,
    MessageSend,
    OfferAccept,
    OfferDecline,
    Ping,
    Presence,
    RequestCancel,
    RequestCreate,
    RequestMessage,
    SessionCancel,
    SessionEnd,
    SessionJoin,
    SessionLeave,
    Typing,
    command_types,
)
from rtserver.storage import backend
from rtserver.storage.attachments import AttachmentStore
from rtserver.storage.audit import AuditLog
from rtserver.storage.claims import ClaimStore
from rtserver.storage.idempotency import IdempotencyStore
from rtserver.storage.ledger import Ledger
from rtserver.storage.notifications import NotificationStore
from rtserver.storage.payouts import PayoutStore
from rtserver.storage.watch import DatabaseWatch
from rtserver.ws import Socket, websocket_endpoint

log = logging.getLogger("rtserver.app")

# The commands this node serves; any other type answers unknown_type.
SERVED = command_types(ALL_COMMANDS)
# How often the watchdog looks for a command past --command-deadline (Node.handle).
COMMAND_WATCH_EVERY = 1.0
# How often the database file is checked to be there and answering (DatabaseWatch).
DB_WATCH_EVERY = 1.0


class Node:
    """One server process: storage, bus, hub, sockets, metrics."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        sender: Sender | None = None,
        *,
        text_sender: Sender | None = None,
        payer: Payer | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics(settings.node_id)
        # What of this node is failing (/healthz); a part that dies ends the node.
        self.health = Health(settings.node_id, self.metrics, grace=settings.health_grace)
        self.registry = Registry()
        self.sockets: dict[str, Socket] = {}
        self.db = backend.database(settings, on_lock_wait=self.metrics.lock_wait)
        self.limits = Limits(settings)
        self.bus: Bus
        if settings.redis_url:
            self.bus = RedisBus(
                settings.node_id,
                self.registry,
                settings.redis_url,
                prefix=settings.redis_prefix,
                presence_ttl=settings.presence_ttl,
                metrics=self.metrics,
                timeout=settings.redis_timeout,
                health=self.health,
            )
        else:
            self.bus = EmbeddedBus(settings.node_id, self.registry)
        # The signing key is the deployment's: read from the database once it is open.
        self.auth = Auth(
            None,
            self.clock,
            settings.token_ttl,
            kdf_memory_kib=settings.kdf_memory_kib,
            kdf_time_cost=settings.kdf_time_cost,
            kdf_memory_budget_kib=settings.kdf_memory_budget_kib,
        )
        self.attachments = AttachmentStore(self.db, backend.blobs(settings, self.db))
        self.hub = Hub(
            settings, self.clock, self.db, self.bus, self.registry, self.metrics, self.attachments
        )
        self.notices = Notices(
            NotificationStore(self.db),
            self.hub.timer_store,
            self.hub.timers,
            self.clock,
            email=sender,
            text=text_sender,
            payer=payer,
        )
        self.hub.notices = self.notices
        self.ledger = Ledger(self.db)
        self.scheduled = Scheduled(self.hub, self.notices, self.ledger)
        self.rooms = Rooms(self.hub, self.attachments, self.scheduled)
        parts = Parts(
            settings=settings,
            clock=self.clock,
            db=self.db,
            bus=self.bus,
            users=self.hub.users,
            sessions=self.hub.sessions,
            claims=ClaimStore(self.db),
            ledger=self.ledger,
            payouts=PayoutStore(self.db),
            audit=AuditLog(self.db),
            notices=self.notices,
            idempotency=IdempotencyStore(),
        )
        self.history = History(parts, self.attachments, self.rooms.transcript)
        self.claims = Claims(parts)
        self.money = Money(parts)
        self.accounts = Accounts(parts, self.hub)
        self.dead_letters = DeadLetters(
            parts, self.hub.timer_store, self.hub.timers, self.notices.store
        )
        self.dummy_hash = ""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Node]:
        """Open storage and the bus, run the background work, and close it all after."""
        await self.db.open()
        self.auth.use_secret(await self.db.shared_secret("token"))
        self.dummy_hash = await self.auth.hash_password("not a password of anyone")
        try:
            async with anyio.create_task_group() as tg:
                await self.start(tg)
                log.info(
                    "node started node=%s bus=%s data_dir=%s",
                    self.settings.node_id,
                    type(self.bus).__name__,
                    self.settings.data_dir,
                )
                yield self
                self.going_away()
                tg.cancel_scope.cancel()
        except Exception as exc:
            # A background task failed past its own handling: the task group is
            # gone, and with it the node. server.Server sees this and exits.
            self.health.died("node", exc)
            raise
        finally:
            self.rooms.transcript.close()
            with anyio.CancelScope(shield=True):
                await self.bus.aclose()
                await self.db.aclose()
            log.info("node stopped node=%s", self.settings.node_id)

    async def start(self, tg: TaskGroup) -> None:
        """Start the background loops in the app's task group, each under supervise.

        Each survives its errors and reports them to ``self.health`` (see
        rtserver.health); the bus starts its own (reader, outbox, heartbeat).
        """
        node = self.settings.node_id
        await self.bus.start(tg, self.hub.resync)
        # Matching's roster loaded now, not by the first request after a start
        # (after the bus: a change committed meanwhile also reaches it as an event).
        await self.hub.matcher.roster.refresh()
        # The timer loop reports its own rounds' errors (to the same part) and backs
        # off; supervise restarts it if it ends.
        self.hub.timers.health = self.health
        tg.start_soon(
            supervise, self.health, TIMERS_PART, self.hub.timers.run, name=f"timers-{node}"
        )
        transcript = self.rooms.transcript
        for lane in range(transcript.lanes):
            part = "transcript" if lane == 0 else f"transcript-{lane}"
            tg.start_soon(
                supervise,
                self.health,
                part,
                functools.partial(transcript.flush, lane),
                name=f"{part}-{node}",
            )
        watch = functools.partial(
            supervise, self.health, "database", DatabaseWatch(self.db).step, every=DB_WATCH_EVERY
        )
        tg.start_soon(watch, name=f"database-{node}")
        commands = functools.partial(
            supervise, self.health, "commands", self.watch_commands, every=COMMAND_WATCH_EVERY
        )
        tg.start_soon(commands, name=f"commands-{node}")

    async def watch_commands(self) -> None:
        """Cut the commands that have run past ``--command-deadline`` (a bug or a
        part without a bound of its own): each answers ``internal``."""
        deadline = time.monotonic() - self.settings.command_deadline
        for conn in self.registry.all():
            task = conn.command
            if task is not None and not conn.command_overdue and conn.command_since < deadline:
                log.error(
                    "command cut after %s s conn=%s user=%s",
                    self.settings.command_deadline,
                    conn.id,
                    conn.user.id,
                )
                conn.command_overdue = True
                task.cancel()

    def going_away(self) -> None:
        """Close every socket with 1001 after what is queued on it."""
        for socket in list(self.sockets.values()):
            socket.going_away()

    async def handle(self, conn: Connection, data: bytes | str) -> dict[str, Any] | None:
        """One received frame in, the reply out (None for an ok to a command without id)."""
        cmd_id: Any = None
        try:
            cmd = parse_frame(conn.codec.decode(data), SERVED)
        except FrameError as exc:
            self.metrics.error(exc.error.code)
            return error(exc.re, exc.error)
        except RtError as exc:
            self.metrics.error(exc.code)
            return error(None, exc)
        cmd_id = cmd.id
        self.metrics.frame_in(str(type(cmd).__struct_config__.tag))
        try:
            # Over a limit, nothing is read or stored (the socket stays open).
            self.limits.command(conn.user.id, cmd)
            # A command is one unit (claim, write, publish; commit, relay): nothing of
            # this node cancels the task running it (the socket's reader ends on the
            # client's disconnect, never by cancellation: rtserver.ws), so it is not
            # wrapped in a shielded cancel scope, which cost about 20 us a command
            # (docs/benchmarks.md). Every part it waits on is bounded; the watchdog
            # (watch_commands) is the last guard against one that is not, for the
            # price of a few assignments here.
            task = conn.command = asyncio.current_task()
            conn.command_since = time.monotonic()
            try:
                fields = await self.dispatch(conn, cmd)
            except asyncio.CancelledError:
                if not conn.command_overdue or task is None:
                    raise
                # The watchdog's cancel, not the task's end: answer, and read on.
                task.uncancel()
                raise TimeoutError(f"command over {self.settings.command_deadline} s") from None
            finally:
                conn.command = None
                conn.command_overdue = False
        except RtError as exc:
            self.metrics.error(exc.code)
            return error(cmd_id, exc)
        except Exception:
            log.exception(
                "command failed conn=%s user=%s type=%s", conn.id, conn.user.id, type(cmd).__name__
            )
            self.metrics.error("internal")
            return error(cmd_id, Internal("the server failed; see its log"))
        return ok(cmd_id, **fields) if cmd_id is not None else None

    async def dispatch(self, conn: Connection, cmd: Command) -> dict[str, Any]:
        """Route a command to the part that serves it."""
        user = conn.user
        hub = self.hub
        match cmd:
            case Ping():
                return {}
            case Hello():
                raise InvalidState("already authenticated")
            case Presence():
                return await hub.presence(user, cmd)
            case RequestCreate():
                return await hub.create(user, cmd)
            case RequestCancel():
                return await hub.cancel(user, cmd)
            case RequestMessage():
                return await hub.message(user, cmd)
            case OfferAccept():
                return await hub.accept(user, cmd)
            case OfferDecline():
                return await hub.decline(user, cmd)
            case SessionJoin():
                return await self.rooms.join(conn, cmd)
            case SessionLeave():
                return await self.rooms.leave(conn, cmd)
            case MessageSend():
                return await self.rooms.send(conn, cmd)
            case Typing():
                return await self.rooms.typing(conn, cmd)
            case BillingStart() | BillingPause():
                return await self.rooms.billing(user, cmd)
            case SessionEnd():
                return await self.rooms.end(user, cmd)
            case SessionCancel():
                return await self.rooms.cancel(user, cmd)
        raise InvalidState(f"{type(cmd).__name__} is not served")  # pragma: no cover


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    sender: Sender | None = None,
    *,
    text_sender: Sender | None = None,
    payer: Payer | None = None,
) -> Starlette:
    """A Starlette app serving one node.

    ``sender`` delivers e-mails, ``text_sender`` texts and ``payer`` payouts;
    each defaults to writing to the log.
    """
    node = Node(settings, clock, sender, text_sender=text_sender, payer=payer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with node.running():
            yield

    app = Starlette(
        routes=[
            *api.routes,
            *portal.routes,
            *attachments.routes,
            *ops.routes,
            *web.routes,
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception},
        middleware=[Middleware(BodyLimit, limits=attachments.body_limits(settings))],
    )
    app.state.node = node
    return app
