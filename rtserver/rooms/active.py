"""The participants of sessions this node has seen active, for the message path.

``message.send`` checks who may write to a session on every message; reading
the session row for that cost a database round trip per message. A session's
participants never change, so they are kept here once seen active. Whether the
session is *still* active is not trusted to this memory: the transcript checks
it under the write lock when it commits (a session ended on another node
answers ``invalid_state`` all the same), and the room service forgets a session
when it ends here or when a commit finds it no longer active.
"""

from __future__ import annotations


class ActiveSessions:
    """A bounded map of session id to its (customer, expert), oldest dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._participants: dict[str, tuple[str, str]] = {}

    def get(self, session_id: str) -> tuple[str, str] | None:
        """The participants of a session seen active, or None (read the database)."""
        return self._participants.get(session_id)

    def add(self, session_id: str, participants: tuple[str, str]) -> None:
        """Remember an active session's participants."""
        if session_id not in self._participants and len(self._participants) >= self._size:
            # dicts keep insertion order: the first key is the oldest entry.
            del self._participants[next(iter(self._participants))]
        self._participants[session_id] = participants

    def discard(self, session_id: str) -> None:
        """Forget a session (it ended, or a commit found it no longer active)."""
        self._participants.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._participants)
