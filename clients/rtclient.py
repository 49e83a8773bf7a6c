"""A small asyncio client for rtserver, written against the public contract only.

Used by the tests and the benches, and usable from scripts::

    async with await Client.connect("ws://127.0.0.1:8000/ws", token) as c:
        reply = await c.call("ping")
        offer = await c.wait_event("offer.new")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
import msgpack
import websockets
from websockets.asyncio.client import ClientConnection


class CallError(Exception):
    """An ``error`` reply to a command."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.code = frame.get("code")
        self.frame = frame


class Client:
    """One socket: commands with replies matched by id, events in a queue."""

    def __init__(self, ws: ClientConnection, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self._ids = itertools.count(1000)
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.hello: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None,
        *,
        subprotocol: str | None = "rt.v1.json",
        hello: bool = True,
        **kwargs: Any,
    ) -> Client:
        """Open a socket and (by default) authenticate and read ``state``."""
        ws = await websockets.connect(
            url,
            subprotocols=[subprotocol] if subprotocol else None,  # type: ignore[list-item]
            max_size=None,
            open_timeout=10,
            **kwargs,
        )
        c = cls(ws, subprotocol == "rt.v1.msgpack")
        if hello:
            await c.send({"type": "hello", "id": 1, "token": token})
            c.hello = await c.recv()
            if c.hello.get("type") != "ok":
                raise CallError(c.hello)
            c.state = await c.recv()
            c.start()
        return c

    def start(self) -> None:
        """Start reading in the background (replies to futures, events to the queue)."""
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the socket and stop reading."""
        await self.ws.close()
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    def encode(self, frame: Any) -> bytes | str:
        """Encode as the chosen subprotocol does."""
        return msgpack.packb(frame, use_bin_type=True) if self.binary else json.dumps(frame)

    async def send(self, frame: Any) -> None:
        """Send one frame as is."""
        await self.ws.send(self.encode(frame))

    async def send_raw(self, data: bytes | str) -> None:
        """Send bytes or text as they are (for bad-input tests)."""
        await self.ws.send(data)

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        """The next frame (only before :meth:`start`)."""
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(data, bytes):
            out: dict[str, Any] = msgpack.unpackb(data, raw=False)
            return out
        result: dict[str, Any] = json.loads(data)
        return result

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame = (
                    msgpack.unpackb(data, raw=False)
                    if isinstance(data, bytes)
                    else json.loads(data)
                )
                if frame.get("type") in ("ok", "error") and frame.get("re") in self._pending:
                    fut = self._pending.pop(frame["re"])
                    if not fut.done():
                        fut.set_result(frame)
                else:
                    await self.events.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"socket closed {self.ws.close_code}"))

    async def request(self, type_: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply frame, ok or error."""
        cmd_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        await self.send({"type": type_, "id": cmd_id, **fields})
        return await asyncio.wait_for(fut, timeout)

    async def call(self, type_: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """Send a command; its ``ok`` reply, or :class:`CallError`."""
        reply = await self.request(type_, timeout, **fields)
        if reply["type"] == "error":
            raise CallError(reply)
        return reply

    async def wait_event(
        self,
        type_: str,
        pred: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 15,
    ) -> dict[str, Any]:
        """The next event of this type that matches; others seen meanwhile are dropped."""

        async def find() -> dict[str, Any]:
            while True:
                ev = await self.events.get()
                if ev.get("type") == type_ and pred(ev):
                    return ev

        return await asyncio.wait_for(find(), timeout)

    async def wait_closed(self, timeout: float = 15) -> int | None:
        """Wait until the server closes the socket; its close code."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        else:
            await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code

    def drain(self) -> list[dict[str, Any]]:
        """Every event queued now."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


class Api:
    """The HTTP API, for scripts, tests and benches."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=30)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def register(
        self, email: str, password: str, name: str, role: str
    ) -> tuple[dict[str, Any], str]:
        """A new account: ``(user, token)``."""
        r = await self.http.post(
            "/api/auth/register",
            json={"email": email, "password": password, "name": name, "role": role},
        )
        r.raise_for_status()
        body = r.json()
        return body["user"], body["token"]

    async def preferences(self, token: str, **prefs: Any) -> dict[str, Any]:
        """Set an expert's preferences."""
        body = {
            "title": "",
            "skills": [],
            "languages": ["en"],
            "years_experience": 1,
            "rate_cents_per_15min": 1000,
            "bio": "",
            **prefs,
        }
        r = await self.http.put(
            "/api/me/preferences", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result
