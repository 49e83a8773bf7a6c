"""The outbox and the transcript, pure: no sockets, no asyncio.

The outbox holds chat messages until the server acknowledges them. Each has a
``cid`` made once, so that sending it again after a lost reply or a reconnect
stores nothing twice (the server answers a known cid with its first ``seq``):
delivery is exactly once. It is bounded: past ``maxsize`` unsent messages,
:meth:`Outbox.add` raises :class:`~rtclient.errors.OutboxFull` instead of
growing while the server is away.

A transcript keeps one session's messages by ``seq``, so a message that
arrives twice (an event and a join reply, a relay sent again) is kept once,
and knows the last ``seq`` up to which it has every message: where to resume.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from rtclient.commands import MessageSend
from rtclient.errors import OutboxFull
from rtclient.models import Message


def new_cid() -> str:
    """A fresh client id for a message or request: unique, 32 characters."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class OutboxEntry:
    """One message waiting for its ``ok``; ``attempts`` counts the sends so far."""

    command: MessageSend
    attempts: int = 0

    @property
    def cid(self) -> str:
        """The message's client id."""
        return self.command.cid


@dataclass
class Outbox:
    """Unacknowledged messages in the order they were queued, at most ``maxsize``."""

    maxsize: int = 1000
    _entries: dict[str, OutboxEntry] = field(default_factory=dict)

    def add(self, command: MessageSend) -> OutboxEntry:
        """Queue a message; :class:`OutboxFull` when ``maxsize`` already wait.

        Queuing a cid already queued returns the entry there (a caller's retry).
        """
        found = self._entries.get(command.cid)
        if found is not None:
            return found
        if len(self._entries) >= self.maxsize:
            raise OutboxFull(f"{len(self._entries)} messages are waiting to be sent")
        entry = OutboxEntry(command)
        self._entries[command.cid] = entry
        return entry

    def first(self) -> OutboxEntry | None:
        """The oldest entry: the next one to send."""
        return next(iter(self._entries.values()), None)

    def remove(self, cid: str) -> OutboxEntry | None:
        """Take an entry out (acknowledged, or failed for good); None if it was not there."""
        return self._entries.pop(cid, None)

    def remove_session(self, session_id: str) -> list[OutboxEntry]:
        """Take out every entry of a session (it ended: they cannot be sent)."""
        gone = [e for e in self._entries.values() if e.command.session_id == session_id]
        for e in gone:
            del self._entries[e.cid]
        return gone

    def __contains__(self, cid: object) -> bool:
        return cid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[OutboxEntry]:
        return iter(list(self._entries.values()))


class Transcript:
    """One session's messages, each kept once by ``seq``."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._messages: dict[int, Message] = {}
        # Every seq up to this one is held: session.join resumes after it.
        self.last_seq = 0

    def add(self, message: Message) -> bool:
        """Keep a message; False when its ``seq`` is already held (a repeat)."""
        if message.seq in self._messages or message.seq <= 0:
            return False
        self._messages[message.seq] = message
        while self.last_seq + 1 in self._messages:
            self.last_seq += 1
        return True

    def reset(self) -> None:
        """Forget everything (the server's history is another one: ``reload``)."""
        self._messages.clear()
        self.last_seq = 0

    def messages(self) -> list[Message]:
        """Every message held, in ``seq`` order."""
        return [self._messages[s] for s in sorted(self._messages)]

    def gaps(self) -> list[int]:
        """Seqs missing below the highest held (empty when gapless)."""
        top = max(self._messages, default=0)
        return [s for s in range(1, top + 1) if s not in self._messages]

    def __len__(self) -> int:
        return len(self._messages)

    def __contains__(self, seq: object) -> bool:
        return seq in self._messages
