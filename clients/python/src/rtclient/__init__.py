"""rtclient: the Python SDK of rtserver.

- :class:`AsyncClient` (asyncio) and :class:`Client` (blocking): one WebSocket
  kept open across failures, typed commands and events, exactly-once chat;
- :class:`AsyncApi` and :class:`Api`: the whole HTTP API;
- :mod:`rtclient.errors`: one exception tree, the same for the socket and HTTP;
- :mod:`rtclient.models`: what the server sends, as frozen msgspec structs.
"""

from rtclient.client import AsyncClient, ConnectionState, Statistics
from rtclient.codec import JSON, MSGPACK
from rtclient.errors import (
    AccountSuspended,
    AuthFailed,
    CallError,
    ClientClosed,
    Disconnected,
    OfferTaken,
    OutboxFull,
    ReplyTimeout,
    RtError,
    TransportError,
)
from rtclient.http import Api, AsyncApi
from rtclient.policy import Backoff
from rtclient.sync import Client

__version__ = "0.1.0"

__all__ = [
    "JSON",
    "MSGPACK",
    "AccountSuspended",
    "Api",
    "AsyncApi",
    "AsyncClient",
    "AuthFailed",
    "Backoff",
    "CallError",
    "Client",
    "ClientClosed",
    "ConnectionState",
    "Disconnected",
    "OfferTaken",
    "OutboxFull",
    "ReplyTimeout",
    "RtError",
    "Statistics",
    "TransportError",
]
