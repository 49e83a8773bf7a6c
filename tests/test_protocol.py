"""The wire protocol and the command schemas: pure, no sockets."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from rtserver.errors import BadFrame, InvalidField, NotFound, UnknownType
from rtserver.protocol import (
    JSON_SUBPROTOCOL,
    MSGPACK_SUBPROTOCOL,
    Codec,
    FrameError,
    choose_subprotocol,
    error,
    ok,
    parse_frame,
)
from rtserver.schemas import (
    ALL_COMMANDS,
    Hello,
    MessageSend,
    Ping,
    Presence,
    RequestCreate,
    SessionEnd,
    SessionJoin,
    command_types,
)

JSON = Codec.for_subprotocol(JSON_SUBPROTOCOL)
MSGPACK = Codec.for_subprotocol(MSGPACK_SUBPROTOCOL)

FRAME: dict[str, Any] = {
    "type": "message.send",
    "id": 7,
    "session_id": "s_1",
    "cid": "c-ü",
    "kind": "code",
    "code": {"language": "python", "source": "print('hi')\n"},
    "n": [1, -2, 3.5, None, True, False],
}


def frame_error(value: Any, **kwargs: Any) -> FrameError:
    with pytest.raises(FrameError) as info:
        parse_frame(value, **kwargs)
    return info.value


def create(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "request.create",
        "id": 3,
        "kind": "instant",
        "title": "Help with asyncio",
        "skills": ["python"],
        "language": "en",
    }
    base.update(fields)
    return base


# --- choosing a subprotocol -----------------------------------------------------------


def test_choose_subprotocol_takes_the_first_offered_that_is_spoken() -> None:
    assert choose_subprotocol(["x", MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL]) == "rt.v1.msgpack"
    assert choose_subprotocol([JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL]) == "rt.v1.json"


def test_choose_subprotocol_none_when_nothing_spoken() -> None:
    assert choose_subprotocol([]) is None
    assert choose_subprotocol(["rt.v2.json", "graphql-ws"]) is None


def test_codec_for_subprotocol() -> None:
    assert MSGPACK.binary is True
    assert JSON.binary is False
    assert Codec.for_subprotocol(None).binary is False
    assert Codec.for_subprotocol("something-else").binary is False


# --- Codec ----------------------------------------------------------------------------


def test_json_encodes_text_and_round_trips() -> None:
    data = JSON.encode(FRAME)
    assert isinstance(data, str)
    assert JSON.decode(data) == FRAME


def test_json_codec_decodes_utf8_binary_frames() -> None:
    data = JSON.encode(FRAME)
    assert isinstance(data, str)
    assert JSON.decode(data.encode()) == FRAME


def test_msgpack_encodes_bytes_and_round_trips() -> None:
    data = MSGPACK.encode(FRAME)
    assert isinstance(data, bytes)
    assert MSGPACK.decode(data) == FRAME
    # It really is MessagePack, with str (not bin) for text.
    assert msgpack.unpackb(data, raw=False) == FRAME


def test_msgpack_codec_reads_json_text_frames() -> None:
    assert MSGPACK.decode('{"type": "ping", "id": 1}') == {"type": "ping", "id": 1}


def test_json_encoding_is_compact_and_exact() -> None:
    assert JSON.encode({"type": "ok", "re": 1}) == '{"type":"ok","re":1}'


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (JSON, "{"),
        (JSON, ""),
        (JSON, '{"type": "ping"} trailing'),
        (JSON, b"\xff\xfe"),
        (JSON, "NaN"),
        (MSGPACK, b""),
        (MSGPACK, b"\xc1"),  # never used in MessagePack
        (MSGPACK, b"\x92\x01"),  # array of 2, only one element
        (MSGPACK, b"\x01\x02"),  # extra data after the value
        (MSGPACK, msgpack.packb({(1, 2): 3})),  # an unhashable (array) key
        (MSGPACK, "not json"),
    ],
)
def test_decode_failures_are_bad_frame(codec: Codec, data: bytes | str) -> None:
    with pytest.raises(BadFrame) as info:
        codec.decode(data)
    assert info.value.code == "bad_frame"
    assert info.value.message.startswith("frame does not decode")


# --- parse_frame: the frame itself ----------------------------------------------------


@pytest.mark.parametrize("value", [[], [1, 2], "ping", 1, 1.5, None, True])
def test_a_frame_that_is_not_a_map_is_bad_frame_without_re(value: Any) -> None:
    exc = frame_error(value)
    assert exc.error.code == "bad_frame"
    assert isinstance(exc.error, BadFrame)
    assert exc.re is None


@pytest.mark.parametrize(
    "bad_id", [True, False, 1.0, 1.5, [1], {"a": 1}, "x" * 65, b"1", 2**64, -(2**63) - 1]
)
def test_an_invalid_id_is_bad_frame_without_re(bad_id: Any) -> None:
    exc = frame_error({"type": "ping", "id": bad_id})
    assert exc.error.code == "bad_frame"
    assert exc.re is None


@pytest.mark.parametrize("good_id", [0, -1, 2**63, 2**64 - 1, -(2**63), "", "a", "x" * 64])
def test_valid_ids_are_kept(good_id: int | str) -> None:
    cmd = parse_frame({"type": "ping", "id": good_id})
    assert cmd == Ping(id=good_id)
    assert cmd.id == good_id


def test_an_id_may_be_absent_or_null() -> None:
    assert parse_frame({"type": "ping"}).id is None
    assert parse_frame({"type": "ping", "id": None}).id is None


@pytest.mark.parametrize("frame", [{"id": 5}, {"id": 5, "type": None}, {"id": 5, "type": 3}])
def test_missing_or_non_string_type_is_bad_frame_with_re(frame: dict[str, Any]) -> None:
    exc = frame_error(frame)
    assert exc.error.code == "bad_frame"
    assert exc.re == 5


def test_missing_type_with_string_id_carries_it() -> None:
    exc = frame_error({"id": "abc"})
    assert exc.error.code == "bad_frame"
    assert exc.re == "abc"


def test_bad_id_wins_over_missing_type() -> None:
    exc = frame_error({"id": 1.5})
    assert exc.error.code == "bad_frame"
    assert exc.re is None


def test_unknown_type_is_unknown_type_with_re() -> None:
    exc = frame_error({"type": "teleport", "id": "q1"})
    assert isinstance(exc.error, UnknownType)
    assert exc.error.code == "unknown_type"
    assert exc.re == "q1"
    assert "teleport" in exc.error.message


def test_unknown_type_message_is_truncated() -> None:
    exc = frame_error({"type": "z" * 1000, "id": 1})
    assert exc.error.code == "unknown_type"
    assert "z" * 64 in exc.error.message
    assert "z" * 65 not in exc.error.message


def test_frame_error_message_is_the_error_message() -> None:
    exc = frame_error([])
    assert str(exc) == "a frame must be a map"
    assert exc.error.message == "a frame must be a map"


# --- parse_frame: fields --------------------------------------------------------------


def test_valid_frames_become_commands() -> None:
    assert parse_frame({"type": "hello", "id": 1, "token": "tok"}) == Hello(id=1, token="tok")
    assert parse_frame({"type": "presence", "status": "away"}) == Presence(status="away")
    cmd = parse_frame(create(kind="scheduled", proposed_times=["2026-01-01T10:00:00Z"]))
    assert isinstance(cmd, RequestCreate)
    assert cmd.kind == "scheduled"
    assert cmd.skills == ["python"]
    assert cmd.proposed_times == ["2026-01-01T10:00:00Z"]
    assert cmd.description == ""
    assert cmd.expert_id is None
    assert cmd.attachment_ids == []


def test_defaults_of_optional_fields() -> None:
    join = parse_frame({"type": "session.join", "session_id": "s1"})
    assert join == SessionJoin(session_id="s1", after_seq=0)
    end = parse_frame({"type": "session.end", "session_id": "s1"})
    assert end == SessionEnd(session_id="s1", discount_pct=None)


def test_boundary_values_are_accepted() -> None:
    assert parse_frame(create(title="t" * 200)).title == "t" * 200  # type: ignore[attr-defined]
    assert len(parse_frame(create(skills=["s"] * 20)).skills) == 20  # type: ignore[attr-defined]
    times = ["2026-01-01T10:00:00Z"] * 5
    cmd = parse_frame(create(kind="scheduled", proposed_times=times))
    assert cmd.proposed_times == times  # type: ignore[attr-defined]
    end = parse_frame({"type": "session.end", "session_id": "s", "discount_pct": 100})
    assert end == SessionEnd(session_id="s", discount_pct=100)
    end0 = parse_frame({"type": "session.end", "session_id": "s", "discount_pct": 0})
    assert end0 == SessionEnd(session_id="s", discount_pct=0)
    msg = parse_frame({"type": "message.send", "session_id": "s", "cid": "c" * 64, "kind": "text"})
    assert msg == MessageSend(session_id="s", cid="c" * 64, kind="text")


def test_nested_code_block_is_converted() -> None:
    cmd = parse_frame(FRAME)
    assert isinstance(cmd, MessageSend)
    assert cmd.id == 7
    assert cmd.code is not None
    assert cmd.code.language == "python"
    assert cmd.code.source == "print('hi')\n"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"type": "hello", "id": 9}, "token"),
        ({"type": "hello", "id": 9, "token": ""}, "token"),
        ({"type": "presence", "id": 9, "status": "x"}, "status"),
        ({"type": "presence", "id": 9, "status": 1}, "status"),
        ({"type": "presence", "id": 9}, "status"),
        (create(id=9, kind="later"), "kind"),
        (create(id=9, title=""), "title"),
        (create(id=9, title="t" * 201), "title"),
        (create(id=9, title=None), "title"),
        (create(id=9, skills=[]), "skills"),
        (create(id=9, skills=["s"] * 21), "skills"),
        (create(id=9, skills="python"), "skills"),
        (create(id=9, skills=["python", ""]), "skills[1]"),
        (create(id=9, language=""), "language"),
        (create(id=9, proposed_times=["2026-01-01T10:00:00Z"] * 6), "proposed_times"),
        (create(id=9, attachment_ids=["a"] * 11), "attachment_ids"),
        ({"type": "request.cancel", "id": 9}, "request_id"),
        ({"type": "request.cancel", "id": 9, "request_id": ""}, "request_id"),
        ({"type": "request.cancel", "id": 9, "request_id": "r" * 65}, "request_id"),
        ({"type": "request.message", "id": 9, "request_id": "r", "text": ""}, "text"),
        ({"type": "offer.accept", "id": 9, "request_id": 12}, "request_id"),
        ({"type": "session.join", "id": 9, "session_id": "s", "after_seq": -1}, "after_seq"),
        ({"type": "session.join", "id": 9, "session_id": "s", "after_seq": 1.0}, "after_seq"),
        ({"type": "session.join", "id": 9, "session_id": "s", "after_seq": "3"}, "after_seq"),
        ({"type": "session.join", "id": 9, "session_id": "s", "after_seq": True}, "after_seq"),
        ({"type": "session.end", "id": 9, "session_id": "s", "discount_pct": 101}, "discount_pct"),
        ({"type": "session.end", "id": 9, "session_id": "s", "discount_pct": -1}, "discount_pct"),
        ({"type": "session.end", "id": 9, "session_id": "s", "discount_pct": 5.5}, "discount_pct"),
        (
            {"type": "message.send", "id": 9, "session_id": "s", "cid": "c" * 65, "kind": "text"},
            "cid",
        ),
        ({"type": "message.send", "id": 9, "session_id": "s", "cid": "", "kind": "text"}, "cid"),
        ({"type": "message.send", "id": 9, "session_id": "s", "cid": "c", "kind": "gif"}, "kind"),
        (
            {
                "type": "message.send",
                "id": 9,
                "session_id": "s",
                "cid": "c",
                "kind": "code",
                "code": {"language": "py", "source": ""},
            },
            "code.source",
        ),
        (
            {
                "type": "message.send",
                "id": 9,
                "session_id": "s",
                "cid": "c",
                "kind": "text",
                "text": 5,
            },
            "text",
        ),
    ],
)
def test_invalid_fields_name_the_field(frame: dict[str, Any], field: str) -> None:
    exc = frame_error(frame)
    assert isinstance(exc.error, InvalidField)
    assert exc.error.code == "invalid_field"
    assert exc.error.field == field
    assert exc.re == 9


def test_invalid_field_message_is_msgspecs() -> None:
    exc = frame_error({"type": "presence", "id": 1, "status": "x"})
    assert exc.error.message == "Invalid enum value 'x' - at `$.status`"
    exc = frame_error({"type": "presence", "id": 1})
    assert exc.error.message == "Object missing required field `status`"


def test_invalid_field_without_a_field_name() -> None:
    # A non-string key (possible in MessagePack) names no field.
    exc = frame_error({"type": "ping", "id": 4, 1: 2})
    assert exc.error.code == "invalid_field"
    assert isinstance(exc.error, InvalidField)
    assert exc.error.field is None
    assert exc.re == 4


def test_unknown_extra_fields_are_ignored() -> None:
    cmd = parse_frame({"type": "ping", "id": 1, "future": {"x": [1, 2]}, "more": None})
    assert cmd == Ping(id=1)
    cmd = parse_frame({"type": "presence", "status": "available", "note": "hi"})
    assert cmd == Presence(status="available")


def test_known_restricts_the_served_types() -> None:
    served = command_types((Ping, Hello))
    assert set(served) == {"ping", "hello"}
    assert parse_frame({"type": "ping", "id": 1}, served) == Ping(id=1)
    exc = frame_error({"type": "presence", "id": 2, "status": "away"}, known=served)
    assert exc.error.code == "unknown_type"
    assert exc.re == 2
    # Empty means nothing is served, not everything.
    exc = frame_error({"type": "ping", "id": 3}, known={})
    assert exc.error.code == "unknown_type"


def test_command_types_covers_every_command() -> None:
    types = command_types()
    assert len(types) == len(ALL_COMMANDS) == 16
    assert set(types) == {
        "hello",
        "ping",
        "presence",
        "request.create",
        "request.cancel",
        "request.message",
        "offer.accept",
        "offer.decline",
        "session.join",
        "session.leave",
        "message.send",
        "typing",
        "billing.start",
        "billing.pause",
        "session.end",
        "session.cancel",
    }
    assert types["session.join"] is SessionJoin


def test_commands_are_frozen() -> None:
    cmd = parse_frame({"type": "ping", "id": 1})
    with pytest.raises(AttributeError):
        cmd.id = 2  # type: ignore[misc]


# --- replies --------------------------------------------------------------------------


def test_ok_frame_shape() -> None:
    assert ok(1) == {"type": "ok", "re": 1}
    assert ok("a", seq=3, at="2026-01-01T00:00:00.000Z") == {
        "type": "ok",
        "re": "a",
        "seq": 3,
        "at": "2026-01-01T00:00:00.000Z",
    }


def test_error_frame_shape() -> None:
    assert error(5, NotFound("no such session")) == {
        "type": "error",
        "re": 5,
        "code": "not_found",
        "message": "no such session",
    }


def test_error_without_id_has_no_re() -> None:
    frame = error(None, BadFrame("a frame must be a map"))
    assert frame == {"type": "error", "code": "bad_frame", "message": "a frame must be a map"}
    assert "re" not in frame


def test_error_re_zero_is_kept() -> None:
    assert error(0, UnknownType())["re"] == 0


def test_error_carries_the_invalid_field() -> None:
    assert error("x", InvalidField("bad", "title")) == {
        "type": "error",
        "re": "x",
        "code": "invalid_field",
        "message": "bad",
        "field": "title",
    }
    assert "field" not in error("x", InvalidField("bad"))


def test_error_default_message_is_the_code_in_words() -> None:
    assert error(1, UnknownType())["message"] == "unknown type"


def test_frame_error_to_reply() -> None:
    exc = frame_error({"type": "session.join", "id": "j", "session_id": "s", "after_seq": -5})
    assert error(exc.re, exc.error) == {
        "type": "error",
        "re": "j",
        "code": "invalid_field",
        "message": "Expected `int` >= 0 - at `$.after_seq`",
        "field": "after_seq",
    }


@pytest.mark.parametrize("codec", [JSON, MSGPACK])
@pytest.mark.parametrize("re", [2**64 - 1, -(2**63), "x" * 64])
def test_every_valid_id_can_be_echoed_by_every_codec(codec: Codec, re: int | str) -> None:
    cmd = parse_frame({"type": "ping", "id": re})
    assert codec.decode(codec.encode(ok(cmd.id))) == {"type": "ok", "re": re}
