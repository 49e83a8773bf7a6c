"""Fuzzing ``/ws`` over real sockets (hypothesis), on a small fixed budget.

A real node runs in a thread of its own with a customer, an available expert, an
active session between them and an open request. Each case sends one frame on
an authenticated socket of either role, in either codec: arbitrary bytes or
text, any value the codec carries, a valid command with one field broken, or a
valid command (sometimes naming the real session or request, so that commands
act). Then a ``ping`` probe: its ``ok`` shows the socket is still open and
still answering. What came back for the frame must be at most one reply, an
``ok`` or an ``error`` with a contract code other than ``internal``, whose
``re`` is the frame's own id.

Before ``hello``, any frame closes the socket with 4401 (after an
``unauthenticated`` error, if anything). A frame over ``--max-frame`` closing
with 1009 is shown by ``tests/test_bad_input.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from clients.rtclient import Api
from rtserver.protocol import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL
from tests.servers import Clients, Node, node_settings, run_node_in_thread
from tests.test_fuzz_frames import MAX_ID, MIN_ID, hostile_frames, valid_frames
from tests.test_fuzz_frames import ids as wire_ids
from tests.test_rooms import open_room

# Every code the contract lets the socket answer with, but ``internal``: that one is a bug.
CODES = {
    "bad_frame",
    "unknown_type",
    "invalid_field",
    "unauthenticated",
    "forbidden",
    "not_found",
    "offer_taken",
    "offer_expired",
    "request_cancelled",
    "invalid_state",
    "rate_limited",
    "too_large",
}
# Only against hangs: every answer comes at once.
TIMEOUT = 10
BUDGET = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
_probes = itertools.count(1)
JOIN = {"type": "session.join", "id": 1}


@dataclass
class World:
    """The live node, a token per role, and the ids worth naming."""

    node: Node
    tokens: dict[str, str]
    ids: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A node with an active session and an open request, shared by the module."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz-socket")

    async def seed(node: Node, clients: Clients) -> World:
        api = Api(node.http)
        try:
            room = await open_room(node, api, clients)
            created = await room.customer.call(
                "request.create", kind="instant", title="Open", skills=["nobody"], language="en"
            )
            return World(
                node,
                tokens={"customer": room.customer_token, "expert": room.expert_token},
                ids={
                    "session_id": room.session_id,
                    "request_id": created["request"]["id"],
                    "expert_id": room.expert_user["id"],
                },
            )
        finally:
            await api.aclose()

    with run_node_in_thread(node_settings(data_dir), seed) as (_, w):
        yield w


class Socket:
    """One authenticated socket, opened again if a case closed it (so the next case can run)."""

    def __init__(self, world: World, role: str, binary: bool) -> None:
        self.world, self.role, self.binary = world, role, binary
        self.ws: ClientConnection | None = None
        self.stack = contextlib.ExitStack()

    def encode(self, frame: Any) -> bytes | str:
        if self.binary:
            out: bytes = msgpack.packb(frame, use_bin_type=True)
            return out
        return msgspec.json.encode(frame).decode()

    def decode(self, data: bytes | str) -> dict[str, Any]:
        frame = msgpack.unpackb(data, raw=False) if self.binary else json.loads(data)
        assert isinstance(data, bytes) == self.binary, f"reply in the other codec: {data!r}"
        assert isinstance(frame, dict), frame
        return frame

    def open(self) -> ClientConnection:
        if self.ws is not None and self.ws.close_code is None:
            return self.ws
        self.close()
        proto = MSGPACK_SUBPROTOCOL if self.binary else JSON_SUBPROTOCOL
        ws = self.stack.enter_context(
            connect(self.world.node.ws, subprotocols=[proto], open_timeout=TIMEOUT)  # type: ignore[list-item]
        )
        ws.send(self.encode({"type": "hello", "id": 0, "token": self.world.tokens[self.role]}))
        self.ws = ws
        replies = self.until(0)
        assert replies == [], replies
        return ws

    def until(self, re: int | str) -> list[dict[str, Any]]:
        """Every ``ok``/``error`` before the ``ok`` to our own command ``re``."""
        assert self.ws is not None
        replies = []
        while True:
            frame = self.decode(self.ws.recv(timeout=TIMEOUT))
            if "re" in frame and type(frame["re"]) is type(re) and frame["re"] == re:
                ok = frame["type"] == "ok" or frame.get("code") == "rate_limited"
                assert ok, f"our own command got {frame}"
                return replies
            if frame.get("type") in ("ok", "error"):
                replies.append(frame)

    def exchange(self, data: bytes | str) -> list[dict[str, Any]]:
        """Send one frame, then a probe; the replies to the frame."""
        ws = self.open()
        probe = f"probe-{next(_probes)}"
        ws.send(data)
        try:
            ws.send(self.encode({"type": "ping", "id": probe}))
            return self.until(probe)
        except ConnectionClosed as exc:
            raise AssertionError(f"the socket closed: {exc.rcvd}") from None

    def close(self) -> None:
        self.stack.close()
        self.ws = None


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return MIN_ID <= value <= MAX_ID
    return isinstance(value, str) and len(value) <= 64


def _as_received(binary: bool, data: bytes | str) -> Any:
    """The value the server reads from ``data`` (JSON turns bytes into base64 text), if any."""
    try:
        if binary and isinstance(data, bytes):
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        return json.loads(data)
    except Exception:  # whatever the decoders raise: nothing the server could echo
        return None


# Naming the real objects in these would end them, and every later case would
# only meet ``invalid_state``: they are fuzzed with made-up ids only.
ENDING = {"session.end", "session.cancel", "request.cancel"}


def _naming(ids: dict[str, str]) -> st.SearchStrategy[Any]:
    """Valid commands with an id (so that an ``ok`` comes back to be checked), half of
    them naming the real session, request or expert."""

    def make(frame: dict[str, Any], fid: int | str, real: bool) -> dict[str, Any]:
        if real and frame["type"] not in ENDING:
            frame = {k: ids.get(k, v) for k, v in frame.items()}
        return {**frame, "id": fid}

    return st.builds(make, valid_frames, wire_ids, st.booleans())


def frames(ids: dict[str, str]) -> st.SearchStrategy[tuple[str, Any]]:
    """What a case sends: ``("value", frame)`` to encode, or ``("raw", data)`` as it is."""
    # Half valid commands, which go deepest; a quarter hostile values; a quarter raw data.
    valid = st.tuples(st.just("value"), _naming(ids))
    return st.one_of(
        valid,
        valid,
        st.tuples(st.just("value"), hostile_frames),
        st.tuples(st.just("raw"), st.one_of(st.binary(max_size=100), st.text(max_size=100))),
    )


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
@pytest.mark.parametrize("role", ["customer", "expert"])
def test_any_frame_gets_at_most_one_contract_answer_and_the_socket_stays_open(
    world: World, role: str, binary: bool
) -> None:
    sock = Socket(world, role, binary)

    @BUDGET
    @given(case=frames(world.ids))
    # Found by fuzzing, kept: a sequence number past SQLite's integers was a crash
    # (``internal``) of a real session's join; it is ``invalid_field`` now.
    @example(case=("value", {**JOIN, "session_id": world.ids["session_id"], "after_seq": 2**63}))
    @example(case=("value", {**JOIN, "session_id": world.ids["session_id"], "after_seq": 10**30}))
    def run(case: tuple[str, Any]) -> None:
        kind, payload = case
        if kind == "raw":
            data = payload
        else:
            try:
                data = sock.encode(payload)
            except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError):
                assume(False)  # no client of this codec can send it
        frame = _as_received(binary, data)
        replies = sock.exchange(data)
        assert len(replies) <= 1, replies
        fid = frame.get("id") if isinstance(frame, dict) else None
        for reply in replies:
            if reply["type"] == "error":
                assert reply["code"] in CODES, reply
            else:
                assert _valid_id(fid), (reply, fid)
            if "re" in reply:
                assert _valid_id(fid) and type(reply["re"]) is type(fid), (reply, fid)
                assert reply["re"] == fid, (reply, fid)

    try:
        run()
    finally:
        sock.close()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_any_first_frame_but_hello_closes_with_4401(world: World, binary: bool) -> None:
    @settings(BUDGET, max_examples=25)
    @given(case=frames(world.ids))
    def run(case: tuple[str, Any]) -> None:
        sock = Socket(world, "customer", binary)
        kind, payload = case
        try:
            data = payload if kind == "raw" else sock.encode(payload)
        except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError):
            assume(False)
        proto = MSGPACK_SUBPROTOCOL if binary else JSON_SUBPROTOCOL
        with connect(world.node.ws, subprotocols=[proto], open_timeout=TIMEOUT) as ws:  # type: ignore[list-item]
            ws.send(data)
            try:
                while True:
                    reply = sock.decode(ws.recv(timeout=TIMEOUT))
                    assert reply["type"] == "error" and reply["code"] == "unauthenticated", reply
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 4401, exc

    run()
