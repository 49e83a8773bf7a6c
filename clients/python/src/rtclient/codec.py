"""The two subprotocols, pure: maps and commands to frames and back.

``rt.v1.json`` carries JSON in text frames, ``rt.v1.msgpack`` MessagePack in
binary frames; both hold the same maps. A text frame is read as JSON whatever
the subprotocol (as the server does).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from rtclient.commands import Command

JSON: Final = "rt.v1.json"
MSGPACK: Final = "rt.v1.msgpack"
SUBPROTOCOLS: Final = (JSON, MSGPACK)

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


class Codec:
    """Encodes commands and decodes frames for one subprotocol."""

    def __init__(self, subprotocol: str = JSON) -> None:
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(f"unknown subprotocol {subprotocol!r}; use one of {SUBPROTOCOLS}")
        self.subprotocol = subprotocol
        self.binary = subprotocol == MSGPACK

    def encode(self, command: Command | dict[str, Any]) -> str | bytes:
        """A frame to send: text (JSON) or bytes (MessagePack)."""
        if self.binary:
            return _msgpack_encoder.encode(command)
        return _json_encoder.encode(command).decode()

    def decode(self, data: str | bytes) -> Any:
        """The value in a received frame (:class:`msgspec.DecodeError` if it does not decode)."""
        if isinstance(data, str) or not self.binary:
            return msgspec.json.decode(data)
        return msgspec.msgpack.decode(data)
