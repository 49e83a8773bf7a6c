"""Fuzzing the frame codec and the command schemas (hypothesis): pure, no sockets.

Whatever arrives (arbitrary bytes, arbitrary JSON or MessagePack values: nested
maps, integers of any size, NaN and infinities, non-string keys, deep nesting,
NULs and lone surrogates in strings), :func:`parse_frame` returns a command or
raises :class:`FrameError` with one of the contract's three codes, never
anything else; the error's ``re`` is the frame's own id, and only when that id
is valid; and the error reply can always be encoded by the codec the frame came
in on. Valid commands, generated from the msgspec schemas themselves, survive
encode, decode and parse unchanged with both codecs.

The budget is fixed and the generation derandomized (the same cases on every
run, so CI is repeatable); ``--hypothesis-seed`` does not change it.
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtserver.errors import BadFrame, RtError
from rtserver.protocol import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, Codec, FrameError, error
from rtserver.protocol import parse_frame as parse
from rtserver.schemas import ALL_COMMANDS, Command, command_types

JSON = Codec.for_subprotocol(JSON_SUBPROTOCOL)
MSGPACK = Codec.for_subprotocol(MSGPACK_SUBPROTOCOL)
CODECS = pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
FRAME_CODES = {"bad_frame", "unknown_type", "invalid_field"}
TYPES = sorted(command_types())
# The ids the contract allows: integers that fit in 64 bits, strings of at most 64.
MIN_ID, MAX_ID = -(2**63), 2**64 - 1

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies --------------------------------------------------------------------------

# Any character, plus the ones codecs trip over: NUL, lone surrogates, the BOM.
hostile_text = st.text(
    st.one_of(
        st.characters(),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.sampled_from(["\x00", "\ufeff", "\u202e", "\U0010ffff"]),
    ),
    max_size=80,
)
edge_ints = st.sampled_from(
    [0, -1, 2**31, 2**53 + 1, MAX_ID, MAX_ID + 1, MIN_ID, MIN_ID - 1, 2**63, 10**40, -(10**40)]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    edge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.binary(max_size=40),
)
keys = st.one_of(hostile_text, st.integers(), st.none(), st.booleans(), st.floats())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)
ids = st.one_of(st.integers(MIN_ID, MAX_ID), st.text(max_size=64))


def _from_type(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values a msgspec type accepts, from its constraints (what the schemas declare)."""
    match t:
        case mi.NoneType():
            return st.none()
        case mi.BoolType():
            return st.booleans()
        case mi.LiteralType():
            return st.sampled_from(t.values)
        case mi.IntType():
            low = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else None)
            high = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else None)
            # The bounds, and where storage and codecs run out (SQLite, MessagePack).
            edges = [low, high, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
            inside = [
                e
                for e in edges
                if e is not None and (low is None or e >= low) and (high is None or e <= high)
            ]
            return st.one_of(st.integers(low, high), st.sampled_from(inside))
        case mi.StrType():
            assert t.pattern is None, "no command field has a pattern yet"
            most = t.max_length if t.max_length is not None and t.max_length <= 256 else 100
            return st.text(min_size=t.min_length or 0, max_size=most)
        case mi.ListType():
            most = t.max_length if t.max_length is not None else 5
            return st.lists(_from_type(t.item_type), min_size=t.min_length or 0, max_size=most)
        case mi.UnionType():
            return st.one_of([_from_type(u) for u in t.types])
        case mi.StructType():
            return _struct(t)
    raise AssertionError(f"no strategy for {t!r}: extend _from_type")


def _struct(t: mi.StructType) -> st.SearchStrategy[dict[str, Any]]:
    required = {f.encode_name: _from_type(f.type) for f in t.fields if f.required}
    optional = {f.encode_name: _from_type(f.type) for f in t.fields if not f.required}
    if "id" in optional:  # the protocol bounds the integer ids the schema leaves open
        optional["id"] = st.one_of(st.none(), ids)
    fields = st.fixed_dictionaries(required, optional=optional)
    if t.tag_field is None:
        return fields
    return fields.map(lambda d: {t.tag_field: t.tag, **d})


valid_frames = st.one_of([_struct(mi.type_info(cls)) for cls in ALL_COMMANDS])


@st.composite
def mutated_frames(draw: st.DrawFn) -> Any:
    """A valid frame with one field dropped, replaced by any value, or added."""
    frame: dict[Any, Any] = dict(draw(valid_frames))
    name = draw(st.sampled_from([*frame, "id", "type", "extra"]))
    action = draw(st.sampled_from(["drop", "replace", "replace"]))
    if action == "drop":
        frame.pop(name, None)
    else:
        frame[name] = draw(values)
    return frame


hostile_frames = st.one_of(
    values,
    mutated_frames(),
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(TYPES), hostile_text, values)},
        optional={"id": st.one_of(ids, edge_ints, values)},
    ),
)

# -- the properties ----------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type (``True == 1`` does not make ``True`` a valid id)."""
    return type(a) is type(b) and a == b


def check_parse(value: Any) -> Command | FrameError:
    """Parse ``value``, holding the outcome to the contract."""
    try:
        cmd = parse(value)
    except FrameError as exc:
        assert exc.error.code in FRAME_CODES, exc.error
        if exc.re is not None:
            assert isinstance(value, dict) and _same(exc.re, value.get("id")), (exc.re, value)
            assert isinstance(exc.re, str) or MIN_ID <= exc.re <= MAX_ID
            assert not isinstance(exc.re, str) or len(exc.re) <= 64
        return exc
    assert isinstance(value, dict) and value["type"] == cmd.__struct_config__.tag
    return cmd


def check_pipeline(codec: Codec, data: bytes | str) -> None:
    """One received frame, as the socket handles it: decode, parse, and encode the reply."""
    try:
        value = codec.decode(data)
    except BadFrame:
        reply = error(None, BadFrame())
    else:
        outcome = check_parse(value)
        if not isinstance(outcome, FrameError):
            return
        reply = error(outcome.re, outcome.error)
    # The reply goes back on the same socket: it must encode, and say what it said.
    back = codec.decode(codec.encode(reply))
    assert back == reply


@FUZZ
@given(value=hostile_frames)
def test_any_value_parses_to_a_command_or_a_contract_error(value: Any) -> None:
    check_parse(value)


@CODECS
@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_are_answered_by_a_reply_the_codec_can_send(codec: Codec, data: bytes) -> None:
    check_pipeline(codec, data)


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_frame_is_answered_by_a_reply_json_can_send(text: str) -> None:
    check_pipeline(JSON, text)


@CODECS
@FUZZ
@given(value=hostile_frames)
def test_any_encodable_value_is_answered_by_a_reply_the_codec_can_send(
    codec: Codec, value: Any
) -> None:
    # What a client of each codec can put on the wire: MessagePack carries
    # non-string keys, bytes and NaN; JSON text has none of these.
    try:
        data: bytes | str = (
            msgpack.packb(value, use_bin_type=True)
            if codec.binary
            else msgspec.json.encode(value).decode()
        )
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.EncodeError):
        return  # no client can send it
    check_pipeline(codec, data)


@CODECS
@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.__struct_config__.tag)
def test_valid_commands_round_trip(codec: Codec, command: type[Command]) -> None:
    @settings(FUZZ, max_examples=60)
    @given(frame=_struct(mi.type_info(command)))
    def run(frame: dict[str, Any]) -> None:
        round_trip(codec, frame)

    run()


def round_trip(codec: Codec, frame: dict[str, Any]) -> None:
    """A valid command, sent by a client of ``codec``, arrives unchanged."""
    cmd = parse(frame)
    wire = msgspec.to_builtins(cmd)
    back = parse(codec.decode(codec.encode(wire)))
    assert back == cmd
    assert type(back.id) is type(cmd.id)


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (MSGPACK, b"\x91" * 60_000 + b"\xc0"),  # 60,000 nested arrays, under --max-frame
        (MSGPACK, b"\x81\xa1a" * 20_000 + b"\xc0"),
        (JSON, "[" * 30_000 + "]" * 30_000),
        (JSON, '{"a":' * 12_000 + "1" + "}" * 12_000),
        (JSON, '{"type": "ping", "id": ' + "9" * 5_000 + "}"),
        (JSON, '{"type": "ping", "id": 1e999}'),
        (JSON, '{"type": "ping", "id": NaN}'),
    ],
    ids=["msgpack-arrays", "msgpack-maps", "json-arrays", "json-maps", "huge-id", "inf", "nan"],
)
def test_deep_nesting_and_huge_numbers_are_bad_frame(codec: Codec, data: bytes | str) -> None:
    with pytest.raises((BadFrame, FrameError)) as info:
        value = codec.decode(data)
        parse(value)
    err = info.value.error if isinstance(info.value, FrameError) else info.value
    assert isinstance(err, RtError) and err.code == "bad_frame"


def test_a_sequence_number_past_64_bits_is_invalid_field_not_a_command() -> None:
    # It would reach SQLite (OverflowError: a 500 there) and could not be echoed in MessagePack.
    frame = {"type": "session.join", "id": 1, "session_id": "s_1", "after_seq": 2**63}
    err = check_parse(frame)
    assert isinstance(err, FrameError) and err.error.code == "invalid_field"
    assert parse({**frame, "after_seq": 2**63 - 1}).after_seq == 2**63 - 1  # type: ignore[attr-defined]
