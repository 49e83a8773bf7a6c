"""The bus: what nodes must agree on, behind one small interface.

Three things cross nodes:

- **claims**: an exclusive decision (who closed a request, which node runs a
  job), a value set atomically if absent, read back by the losers;
- **fan-out**: an event for some users, delivered to their sockets on
  whatever node holds them;
- **presence**: which users have a socket open on some live node;
- **expert changes**: which experts' matching facts (presence, preferences,
  verification, status, rating, response time, last offer) were just written,
  so that every node's :class:`rtserver.hub.roster.Roster` reloads them.

:class:`EmbeddedBus` does all three in process for one node (the default);
:class:`rtserver.hub.redis_bus.RedisBus` does them through Redis for many.
The rest of the server calls only this interface, so one node is not a
special case.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection
from types import TracebackType
from typing import Any

from anyio.abc import TaskGroup

from rtserver.hub.connections import Connection, Registry

# Called when this node may have missed events (the bus was unreachable and
# could not replay them): the node re-sends ``state`` to its sockets.
ResyncHandler = Callable[[], Awaitable[None]]
# Told which experts changed (None: maybe any of them); must not block.
ChangeHandler = Callable[[Collection[str] | None], None]


class Bus(ABC):
    """Claims, fan-out and presence shared by the nodes of one server."""

    def __init__(self, node_id: str, registry: Registry) -> None:
        self.node_id = node_id
        self.registry = registry
        self._watchers: list[ChangeHandler] = []

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self, tg: TaskGroup, on_resync: ResyncHandler) -> None:  # noqa: B027
        """Start background work in the app's task group (none by default)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; background work ends with the task group."""

    @abstractmethod
    async def claim(self, key: str, value: str, ttl: float) -> str | None:
        """Set ``key`` to ``value`` if it has no value; None if we won, else the holder's value.

        Raises :class:`rtserver.errors.Unavailable` if the bus cannot answer in time.
        """

    @abstractmethod
    async def release(self, key: str, value: str) -> None:
        """Drop a claim, only if it still holds ``value`` (compare-and-delete); best effort."""

    @abstractmethod
    async def publish(
        self, user_ids: Collection[str], event: dict[str, Any], skip: Connection | None = None
    ) -> None:
        """Deliver an event to every socket of these users, on any node (but ``skip``).

        Never fails for the bus's sake: what cannot go out now waits in an outbox.
        """

    @abstractmethod
    async def online(self, user_ids: Collection[str]) -> set[str]:
        """Which of these users have a socket open on a live node (or Unavailable)."""

    def watch_experts(self, handler: ChangeHandler) -> None:
        """Call ``handler`` with the experts changed by any node (this one included)."""
        self._watchers.append(handler)

    async def experts_changed(self, expert_ids: Collection[str]) -> None:
        """These experts' matching facts were just committed: tell every node.

        This node's watchers are told at once; others when the event reaches
        them (a node that may have missed some is told ``None`` by its resync).
        """
        self._experts_changed(list(expert_ids))

    def _experts_changed(self, expert_ids: Collection[str] | None) -> None:
        for handler in self._watchers:
            handler(expert_ids)

    async def user_connected(self, user_id: str) -> None:  # noqa: B027 - optional hook
        """This node now has a socket of ``user_id`` (it had none)."""

    async def user_disconnected(self, user_id: str) -> None:  # noqa: B027 - optional hook
        """This node has no more sockets of ``user_id``."""

    def statistics(self) -> dict[str, Any]:
        """Counters for logs, metrics and benches."""
        return {}


class EmbeddedBus(Bus):
    """One node: claims in a dict, fan-out to the local registry, local presence."""

    def __init__(self, node_id: str, registry: Registry) -> None:
        super().__init__(node_id, registry)
        self._claims: dict[str, tuple[str, float]] = {}

    async def claim(self, key: str, value: str, ttl: float) -> str | None:
        """Atomic because the event loop runs one coroutine at a time and this never awaits."""
        now = time.monotonic()
        held = self._claims.get(key)
        if held is not None and held[1] > now:
            return held[0]
        self._claims[key] = (value, now + ttl)
        if len(self._claims) > 10_000:
            self._claims = {k: v for k, v in self._claims.items() if v[1] > now}
        return None

    async def release(self, key: str, value: str) -> None:
        """Delete the claim if it is still ours."""
        held = self._claims.get(key)
        if held is not None and held[0] == value:
            del self._claims[key]

    async def publish(
        self, user_ids: Collection[str], event: dict[str, Any], skip: Connection | None = None
    ) -> None:
        """Straight into the local sockets' queues."""
        self.registry.deliver(user_ids, event, skip)

    async def online(self, user_ids: Collection[str]) -> set[str]:
        """Users with a socket on this, the only, node."""
        return self.registry.connected(user_ids)

    def statistics(self) -> dict[str, Any]:
        """How many claims are held."""
        return {"claims": len(self._claims)}
