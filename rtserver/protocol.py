"""The wire protocol, pure: bytes or text in, commands out; maps in, frames out.

No sockets, no asyncio. The socket adapter (:mod:`rtserver.ws`) feeds frames to
:func:`parse_frame` and writes what :meth:`Codec.encode` returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import msgpack
import msgspec

from rtserver.errors import BadFrame, InvalidField, RtError, UnknownType
from rtserver.schemas import Command, command_types

JSON_SUBPROTOCOL: Final = "rt.v1.json"
MSGPACK_SUBPROTOCOL: Final = "rt.v1.msgpack"
SUBPROTOCOLS: Final = (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL)

_json_decoder = msgspec.json.Decoder()
_json_encoder = msgspec.json.Encoder()


def choose_subprotocol(offered: list[str]) -> str | None:
    """The first of the client's offered subprotocols that we speak.

    A client that offers neither gets JSON, and no subprotocol is echoed.
    """
    for name in offered:
        if name in SUBPROTOCOLS:
            return name
    return None


@dataclass(frozen=True, slots=True)
class Codec:
    """Turns maps into frames and back for one subprotocol."""

    binary: bool

    @classmethod
    def for_subprotocol(cls, name: str | None) -> Codec:
        """MessagePack for ``rt.v1.msgpack``, JSON otherwise."""
        return cls(binary=name == MSGPACK_SUBPROTOCOL)

    def encode(self, frame: dict[str, Any]) -> bytes | str:
        """A frame to send: bytes (MessagePack) or text (JSON)."""
        if self.binary:
            out: bytes = msgpack.packb(frame, use_bin_type=True)
            return out
        return _json_encoder.encode(frame).decode()

    def decode(self, data: bytes | str) -> Any:
        """The value in a received frame; :class:`BadFrame` if it does not decode.

        Text frames hold JSON whatever the subprotocol; binary frames hold
        MessagePack on ``rt.v1.msgpack`` and JSON (UTF-8) otherwise.
        """
        try:
            if isinstance(data, str):
                return _json_decoder.decode(data)
            if self.binary:
                return msgpack.unpackb(data, raw=False, strict_map_key=False)
            return _json_decoder.decode(data)
        except (msgspec.DecodeError, ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
            raise BadFrame(f"frame does not decode: {exc}") from None
        except Exception as exc:  # msgpack raises a handful of unrelated types
            raise BadFrame(f"frame does not decode: {type(exc).__name__}") from None


class FrameError(Exception):
    """A frame that cannot become a command, with the id to answer (if any)."""

    def __init__(self, error: RtError, re: int | str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.re = re


_COMMANDS = command_types()


# An integer id must fit in 64 bits, so that every codec can echo it in ``re``
# (MessagePack carries nothing wider; a text frame on a MessagePack socket could).
_MIN_ID: Final = -(2**63)
_MAX_ID: Final = 2**64 - 1


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _MIN_ID <= value <= _MAX_ID
    return isinstance(value, str) and len(value) <= 64


def parse_frame(value: Any, known: dict[str, type[Command]] | None = None) -> Command:
    """Validate a decoded frame and return its command.

    Raises :class:`FrameError` carrying ``bad_frame`` (not a map, no type, bad
    id), ``unknown_type`` or ``invalid_field``, with the command's id when it
    had a valid one so that the error can answer it.
    """
    commands = known if known is not None else _COMMANDS
    if not isinstance(value, dict):
        raise FrameError(BadFrame("a frame must be a map"), None)
    re = value.get("id")
    if re is not None and not _valid_id(re):
        raise FrameError(BadFrame("id must be an integer or a string of at most 64 chars"), None)
    ftype = value.get("type")
    if not isinstance(ftype, str):
        raise FrameError(BadFrame("a frame must have a string type"), re)
    cls = commands.get(ftype)
    if cls is None:
        raise FrameError(UnknownType(f"unknown type {ftype[:64]!r}"), re)
    try:
        return msgspec.convert(value, cls, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = field_of(message)
        raise FrameError(InvalidField(message, field), re) from None


def field_of(message: str) -> str | None:
    """The field a msgspec validation message names, if any."""
    if "at `$." in message:
        return message.split("at `$.", 1)[1].rstrip("`")
    if "missing required field `" in message:
        return message.split("missing required field `", 1)[1].split("`", 1)[0]
    return None


def ok(re: int | str | None, **fields: Any) -> dict[str, Any]:
    """The ``ok`` reply to a command."""
    return {"type": "ok", "re": re, **fields}


def error(re: int | str | None, err: RtError) -> dict[str, Any]:
    """The ``error`` reply to a command (``re`` is null when it had no usable id)."""
    frame: dict[str, Any] = {"type": "error", "code": err.code, "message": err.message}
    if re is not None:
        frame["re"] = re
    if isinstance(err, InvalidField) and err.field:
        frame["field"] = err.field
    if err.retry_after is not None:
        # An extension: seconds after which the same command may succeed.
        frame["retry_after"] = retry_seconds(err.retry_after)
    return frame


def retry_seconds(seconds: float) -> int:
    """Whole seconds to wait, rounded up (``Retry-After`` takes no fractions)."""
    return max(1, math.ceil(seconds))
