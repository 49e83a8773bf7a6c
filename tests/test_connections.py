"""A socket's send queue, pushed and drained as its writer does, with no network.

The queue is a bounded list whose writer sleeps only while it is empty
(rtserver.hub.connections): these pin what the sockets rely on, the order of
frames, the one 4408 count of a slow reader, and the drain before a close.
"""

from __future__ import annotations

import asyncio
import gc

from rtserver.hub.connections import Connection
from rtserver.protocol import Codec
from rtserver.server import GC_THRESHOLDS, tune_gc
from rtserver.storage.users import User


def connection(queue_size: int = 8) -> tuple[Connection, list[Connection]]:
    """A connection and the list its overflow callback appends to."""
    overflows: list[Connection] = []
    user = User(id="u1", email="u1@example.com", name="U", role="customer", password_hash="")
    conn = Connection("c1", user, Codec(binary=False), queue_size, on_overflow=overflows.append)
    return conn, overflows


async def drain(conn: Connection) -> list[bytes | str]:
    """What the writer sends until the queue is closed and empty."""
    sent: list[bytes | str] = []
    while await asyncio.wait_for(conn.wait_queued(), 10):
        while (data := conn.pop_nowait()) is not None:
            sent.append(data)
    return sent


async def test_the_writer_sleeps_on_an_empty_queue_and_wakes_for_the_next_frame() -> None:
    conn, _ = connection()
    conn.send_first([])
    writer = asyncio.create_task(drain(conn))
    await asyncio.sleep(0)  # the writer is now waiting on the empty queue
    assert conn.send_encoded_nowait("a")
    await asyncio.sleep(0)
    assert conn.send_encoded_nowait(b"b")
    conn.close_queue()
    assert await writer == ["a", b"b"]
    assert not conn.send_encoded_nowait("late")


async def test_ok_and_state_come_before_the_events_held_meanwhile() -> None:
    conn, _ = connection()
    assert conn.send_encoded_nowait("event")
    conn.send_first([{"type": "ok", "re": 1}, {"type": "state"}])
    conn.close_queue()
    assert await drain(conn) == ['{"type":"ok","re":1}', '{"type":"state"}', "event"]


async def test_a_full_queue_marks_a_slow_reader_once_and_its_writer_drains_then_stops() -> None:
    conn, overflows = connection(queue_size=2)
    conn.send_first([])
    assert conn.send_encoded_nowait("1") and conn.send_encoded_nowait("2")
    assert not conn.send_encoded_nowait("3")
    assert not conn.send_encoded_nowait("4")
    assert conn.overflowed and overflows == [conn]
    assert await drain(conn) == ["1", "2"]


async def test_close_after_queue_delivers_what_is_queued_then_names_its_code() -> None:
    conn, _ = connection()
    conn.send_first([])
    conn.send_encoded_nowait("bye")
    conn.close_after_queue(4403, "account suspended")
    assert await drain(conn) == ["bye"]
    assert (conn.close_code, conn.close_reason) == (4403, "account suspended")
    assert not conn.overflowed


def test_the_serving_process_freezes_start_up_and_collects_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class Transport:
    """The direct path of a socket (``Connection.direct``): takes frames while open."""

    def __init__(self) -> None:
        self.open = True
        self.sent: list[bytes | str] = []

    def __call__(self, data: bytes | str) -> bool:
        if self.open:
            self.sent.append(data)
        return self.open


async def test_frames_go_out_directly_while_the_transport_takes_them_and_in_order_after() -> None:
    conn, _ = connection()
    wire = conn.direct = Transport()
    assert conn.send_encoded_nowait("early")  # before the hello's reply: held
    assert wire.sent == []
    conn.send_first([{"type": "ok", "re": 1}])
    assert wire.sent == ['{"type":"ok","re":1}', "early"]
    wire.open = False  # the transport is paused: frames wait in the queue
    assert conn.send_encoded_nowait("1") and conn.send_encoded_nowait("2")
    wire.open = True
    # The queue is not empty: a frame may not overtake what waits before it.
    assert conn.send_encoded_nowait("3")
    assert wire.sent[2:] == []
    # The writer takes "1" and is sending it (its send awaits the transport): the
    # queue is now short of "1", and still nothing may go out directly.
    assert conn.pop_nowait() == "1"
    wire.sent.append("1")
    assert conn.pop_nowait() == "2"
    wire.sent.append("2")
    assert conn.send_encoded_nowait("4")
    assert conn.pop_nowait() == "3"
    wire.sent.append("3")
    assert conn.pop_nowait() == "4"
    # The queue is empty, but "4" is not sent yet: "4b" waits for the writer too.
    assert conn.send_encoded_nowait("4b")
    wire.sent.append("4")
    assert conn.pop_nowait() == "4b"
    wire.sent.append("4b")
    assert conn.pop_nowait() is None  # drained: the direct path again
    assert conn.send_encoded_nowait("5")
    assert wire.sent[2:] == ["1", "2", "3", "4", "4b", "5"]
    conn.close_queue()
    assert not conn.send_encoded_nowait("late")
    assert wire.sent[-1] == "5"
