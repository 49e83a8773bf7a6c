"""The SDK's pure parts, with no I/O: backoff, close codes, outbox, transcript, errors,
codec, and the checks that hold its structs and routes equal to the server's."""

from __future__ import annotations

import inspect
import re
from typing import Any

import msgspec
import pytest
from rtclient import errors
from rtclient.client import AsyncClient, ws_url_for
from rtclient.codec import JSON, MSGPACK, Codec
from rtclient.commands import ALL_COMMANDS, CodeBlock, MessageSend, Ping, RequestCreate
from rtclient.http import Call, Routes
from rtclient.models import (
    BillingEvent,
    BillingState,
    Message,
    Offer,
    OfferNew,
    Person,
    Session,
    UnknownEvent,
    to_event,
)
from rtclient.outbox import Outbox, Transcript
from rtclient.policy import Backoff, CloseAction, close_action
from rtclient.terminal import Input, View, charge_cents, money, parse_input
from starlette.routing import Route

from rtserver import errors as server_errors
from rtserver import schemas
from rtserver.http import api as http_api
from rtserver.http import attachments as http_attachments
from rtserver.http import ops as http_ops
from rtserver.http import portal as http_portal

# -- backoff and close codes ------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_is_spread() -> None:
    b = Backoff(base=1.0, cap=30.0, soon=0.25, jitter=0.5)
    top = [b.delay(n, CloseAction.RECONNECT, lambda: 1.0) for n in range(7)]
    assert top == [1, 2, 4, 8, 16, 30, 30]
    assert [b.delay(n, CloseAction.RECONNECT, lambda: 0.0) for n in range(3)] == [0.5, 1, 2]
    # Going away: the first retry comes soon, the next ones back off as usual.
    assert b.delay(0, CloseAction.RECONNECT_SOON, lambda: 1.0) == 0.25
    assert b.delay(1, CloseAction.RECONNECT_SOON, lambda: 1.0) == 2
    assert b.delay(10_000, CloseAction.RECONNECT, lambda: 1.0) == 30


def test_close_codes() -> None:
    assert close_action(4401) is CloseAction.STOP_AUTH
    assert close_action(4403) is CloseAction.STOP_SUSPENDED
    assert close_action(1001) is CloseAction.RECONNECT_SOON
    assert close_action(1012) is CloseAction.RECONNECT_SOON
    for code in (None, 1006, 1011, 4408, 4429, 1009):
        assert close_action(code) is CloseAction.RECONNECT


def test_ws_url() -> None:
    assert ws_url_for("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws"
    assert ws_url_for("https://rt.example/prefix/") == "wss://rt.example/prefix/ws"


# -- outbox and transcript ----------------------------------------------------------------------


def send(cid: str, sid: str = "s1") -> MessageSend:
    return MessageSend(session_id=sid, cid=cid, kind="text", text=cid)


def test_outbox_keeps_order_and_is_bounded() -> None:
    box = Outbox(maxsize=3)
    a = box.add(send("a"))
    box.add(send("b", "s2"))
    assert box.add(send("a")) is a  # the same cid again is the same entry
    box.add(send("c"))
    with pytest.raises(errors.OutboxFull):
        box.add(send("d"))
    assert box.first() is a
    assert [e.cid for e in box.remove_session("s1")] == ["a", "c"]
    assert [e.cid for e in box] == ["b"] and "b" in box and len(box) == 1
    assert box.remove("b") is not None and box.remove("b") is None
    assert box.first() is None


def msg(seq: int) -> Message:
    return Message(session_id="s1", seq=seq, text=str(seq))


def test_transcript_keeps_each_seq_once_and_knows_where_to_resume() -> None:
    t = Transcript("s1")
    assert t.add(msg(1)) and t.add(msg(2)) and not t.add(msg(2))
    assert t.add(msg(4))
    assert t.last_seq == 2 and t.gaps() == [3]
    assert t.add(msg(3)) and t.last_seq == 4 and t.gaps() == []
    assert [m.seq for m in t.messages()] == [1, 2, 3, 4]
    t.reset()
    assert t.last_seq == 0 and len(t) == 0


# -- errors ---------------------------------------------------------------------------------------


def test_error_tree() -> None:
    assert issubclass(errors.OfferTaken, errors.Conflict)
    assert issubclass(errors.Conflict, errors.CallError)
    assert issubclass(errors.CallError, errors.RtError)
    assert issubclass(errors.Disconnected, errors.TransportError)
    assert issubclass(errors.AuthFailed, errors.ClientClosed)
    # One class per contract code, and the server's codes are all known.
    server_codes = {c.code for c in vars(server_errors).values() if hasattr(c, "code")}
    assert server_codes <= set(errors.ERRORS_BY_CODE)


def test_error_frames_map_to_their_class() -> None:
    e = errors.error_from_wire(
        {"type": "error", "re": 3, "code": "rate_limited", "message": "slow", "retry_after": 2}
    )
    assert isinstance(e, errors.RateLimited) and e.retry_after == 2 and e.message == "slow"
    e = errors.error_from_wire({"code": "invalid_field", "message": "m", "field": "text"})
    assert isinstance(e, errors.InvalidField) and e.field == "text"
    e = errors.error_from_wire({"code": "brand_new", "message": "m"})
    assert type(e) is errors.CallError and e.code == "brand_new"


def test_http_errors_map_with_the_same_classes() -> None:
    body = {"error": {"code": "not_found", "message": "no such session"}}
    e = errors.error_from_http(404, body)
    assert isinstance(e, errors.NotFound) and e.status == 404
    e = errors.error_from_http(429, {"error": {"code": "rate_limited", "message": "x"}}, "7")
    assert isinstance(e, errors.RateLimited) and e.retry_after == 7
    e = errors.error_from_http(502, "<html>bad gateway</html>")
    assert isinstance(e, errors.Internal) and e.status == 502
    assert isinstance(errors.error_from_http(401, None), errors.Unauthenticated)


# -- codec and structs -----------------------------------------------------------------


@pytest.mark.parametrize("sub", [JSON, MSGPACK])
def test_codec_round_trip(sub: str) -> None:
    codec = Codec(sub)
    data = codec.encode(msgspec.structs.replace(Ping(), id=7))
    assert isinstance(data, bytes if sub == MSGPACK else str)
    assert codec.decode(data) == {"type": "ping", "id": 7}
    cmd = RequestCreate(kind="instant", title="t", skills=["py"], language="en")
    # Defaults are not sent: the server fills them.
    assert codec.decode(codec.encode(cmd)) == {
        "type": "request.create",
        "kind": "instant",
        "title": "t",
        "skills": ["py"],
        "language": "en",
    }


def test_commands_mirror_the_server_schemas() -> None:
    """Same wire types, same field names, same required fields as rtserver/schemas.py."""

    def shape(cls: type[msgspec.Struct]) -> tuple[set[str], set[str]]:
        fields = msgspec.structs.fields(cls)
        return {f.encode_name for f in fields}, {f.encode_name for f in fields if f.required}

    ours = {str(c.__struct_config__.tag): c for c in ALL_COMMANDS}
    theirs = schemas.command_types()
    assert set(ours) == set(theirs)
    for tag, cls in theirs.items():
        assert shape(ours[tag]) == shape(cls), tag
    assert shape(CodeBlock) == shape(schemas.CodeBlock)


def test_events_decode_to_their_structs() -> None:
    ev = to_event(
        {
            "type": "message",
            "session_id": "s",
            "seq": 3,
            "from": {"id": "u", "name": "Ann", "role": "expert"},
            "kind": "text",
            "text": "hi",
            "new_field": 1,
        }
    )
    assert isinstance(ev, Message) and ev.from_ == Person(id="u", name="Ann", role="expert")
    assert isinstance(to_event({"type": "something.new", "x": 1}), UnknownEvent)
    # A field of the wrong type does not lose the frame.
    bad = to_event({"type": "offer.new", "offer": "nope"})
    assert isinstance(bad, UnknownEvent) and bad.type == "offer.new"
    ok = to_event({"type": "offer.new", "offer": {"request_id": "r", "kind": "instant"}})
    assert isinstance(ok, OfferNew)


async def test_dispatch_dedupes_messages_and_drops_the_oldest_event_when_full() -> None:
    client = AsyncClient("http://127.0.0.1:1", "t", max_events=3)
    try:
        for seq in (1, 2, 2, 1, 3, 4, 5):
            client._dispatch({"type": "message", "session_id": "s", "seq": seq, "text": "x"})
        assert client.transcript("s").last_seq == 5
        stats = client.statistics()
        assert stats.events_queued == 3 and stats.events_dropped == 2
        seqs = []
        while (e := client.get_event_nowait()) is not None:
            assert isinstance(e, Message)
            seqs.append(e.seq)
        assert seqs == [3, 4, 5]
    finally:
        await client.aclose()


# -- every HTTP route of the server has its SDK method -------------------------------


class Recorder(Routes[Call]):
    def _send(self, call: Call) -> Call:
        return call


def _dummy(p: inspect.Parameter) -> Any:
    if p.annotation in ("int", "int | None"):
        return 1
    if "bytes" in str(p.annotation):
        return b"x"
    return "x1"


def test_every_server_route_has_an_sdk_method() -> None:
    rec = Recorder()
    called = set()
    for name, fn in inspect.getmembers(rec, inspect.ismethod):
        if name.startswith("_"):
            continue
        sig = inspect.signature(fn)
        args = [
            _dummy(p)
            for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        kwargs = {
            p.name: ["x"] if "list" in str(p.annotation) else _dummy(p)
            for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY
        }
        call = fn(*args, **kwargs)
        called.add((call.method, re.sub(r"x1", "{}", call.path)))
        if call.method == "POST" and any(
            k in call.path for k in ("refund-claim", "review", "dispute", "decision", "payouts/run")
        ):
            assert "Idempotency-Key" in call.headers, call.path
    server = set()
    for module in (http_api, http_portal, http_attachments, http_ops):
        for route in module.routes:
            assert isinstance(route, Route)
            for method in route.methods or ():
                if method != "HEAD":
                    server.add((method, re.sub(r"\{[^}]+\}", "{}", route.path)))
    assert server <= called, server - called


# -- the terminal client's view -------------------------------------------------------------


def test_terminal_input_parsing() -> None:
    assert parse_input("  ") is None
    assert parse_input("hello there") == Input("say", text="hello there")
    assert parse_input("//not a command") == Input("say", text="/not a command")
    assert parse_input("/Accept 2") == Input("accept", ("2",), "2")
    assert parse_input("/attach 'my file.txt'") == Input(
        "attach", ("my file.txt",), "'my file.txt'"
    )


def test_terminal_view_numbers_offers_and_counts_billing() -> None:
    view = View()
    offer = Offer(request_id="r1", kind="instant", title="T", rate_cents_per_15min=6000)
    lines = view.on_event(OfferNew(offer=offer), now=0.0)
    assert lines[0].startswith("[offer 1] 'T'") and view.offer("1") == offer
    assert view.add_offer(offer) == 1  # seen again: same number
    session = Session(
        id="s1", status="active", title="T", rate_cents_per_15min=6000,
        billing=BillingState(running=False),
    )  # fmt: skip
    view.set_session(session, now=0.0)
    assert view.current == "s1"
    view.on_event(BillingEvent(session_id="s1", running=True, billable_seconds=60), now=100.0)
    # 60 s from the server, 30 s counted locally since: 90 s at $60/15 min = $6.00.
    assert view.billed_seconds(130.0) == 90
    assert "billing 0:01:30 = $6.00" in view.status(130.0)
    assert charge_cents(6000, 90, 50) == 300 and charge_cents(1, 450) == 1  # half up
    assert money(-1234) == "-$12.34"


async def test_a_url_that_cannot_work_stops_the_client_with_its_reason() -> None:
    client = AsyncClient("http://127.0.0.1:1", "t", ws_url="not a url")
    with pytest.raises(errors.ClientClosed) as closed:
        await client.connect()
    assert "InvalidURI" in str(closed.value)
    await client.aclose()
