"""Passwords (Argon2id, memory-hard) and signed login tokens (JWT, HS256).

The signing secret is generated once, on first start, and kept with the
node's storage: in ``<data-dir>/secret.key`` (mode 0600) on SQLite, so that
every node sharing the data dir accepts the same tokens; in the database's
``shared_state`` with ``--database-url``, so that nodes on many hosts do
(``Db.shared_secret``). Tokens survive restarts either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rtserver.clock import Clock
from rtserver.errors import Unauthenticated

SECRET_FILE = "secret.key"


def load_secret(data_dir: Path) -> bytes:
    """The data dir's signing secret, created on first use.

    Created atomically: the key is written and fsynced to a file of this
    process's own, then hard-linked into place (``link`` fails if another
    process got there first), so that no process, however many start at once
    or whatever crashes, ever reads a partial key. Every caller returns the key
    on disk. An empty or short key (left by an older version's crash) is
    removed and made again.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    for _ in range(100):
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            key = b""
        else:
            if len(key) >= _KEY_CHARS:
                return key
            # Never valid: the new scheme never shows a partial key.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_hex(32).encode())
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    raise RuntimeError(f"could not create {path}")


# A key is 32 random bytes, written as 64 hex characters.
_KEY_CHARS = 64
# Tokens remembered as verified (see Auth.verify_claims): about 250 bytes each.
VERIFIED_TOKENS = 4096


class Auth:
    """Hashes passwords and issues and checks tokens."""

    def __init__(
        self,
        secret: bytes | None,
        clock: Clock,
        token_ttl: float,
        *,
        kdf_memory_kib: int = 65536,
        kdf_time_cost: int = 3,
        kdf_memory_budget_kib: int | None = None,
    ) -> None:
        # None until the node has read it from its database (use_secret).
        self._secret = secret or b""
        self._clock = clock
        self._ttl = timedelta(seconds=token_ttl)
        self._hasher = PasswordHasher(memory_cost=kdf_memory_kib, time_cost=kdf_time_cost)
        # Each hash holds kdf_memory_kib while it runs: at most budget / cost of
        # them at once, so that a flood of logins queues instead of exhausting memory.
        self.max_hashes = max(1, (kdf_memory_budget_kib or kdf_memory_kib) // kdf_memory_kib)
        self._hashing = asyncio.Semaphore(self.max_hashes)
        # token -> (user id, expiry) of tokens whose signature was checked, oldest first.
        self._verified: dict[str, tuple[str, float]] = {}

    def _key(self) -> bytes:
        if not self._secret:
            raise RuntimeError("no signing key yet: the node has not opened its database")
        return self._secret

    def use_secret(self, secret: bytes) -> None:
        """Sign and check tokens with this key (the deployment's, from its database)."""
        if len(secret) < _KEY_CHARS:
            raise ValueError("a signing key is at least 64 characters")
        self._secret = secret
        self._verified.clear()

    async def hash_password(self, password: str) -> str:
        """Argon2id hash, computed off the event loop (it takes tens of ms by design)."""
        async with self._hashing:
            return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify_password(self, password_hash: str, password: str) -> bool:
        """True if the password matches, off the event loop."""

        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        async with self._hashing:
            return await anyio.to_thread.run_sync(verify)

    def issue(self, user_id: str) -> str:
        """A signed token for this user, valid for the token TTL."""
        now = self._clock.now()
        claims = {"sub": user_id, "iat": now, "exp": now + self._ttl}
        return jwt.encode(claims, self._key(), algorithm="HS256")

    def verify(self, token: str) -> str:
        """The user id in a valid, unexpired token; :class:`Unauthenticated` otherwise."""
        return self.verify_claims(token)[0]

    def verify_claims(self, token: str) -> tuple[str, float]:
        """The user id and expiry (POSIX seconds) of a valid, unexpired token.

        A token once verified is remembered (the last :data:`VERIFIED_TOKENS` of
        them): a client that reconnects, or a user's other tabs, present the same
        token again, and PyJWT's decode costs about 100 µs, a tenth of a
        ``hello`` (issue 9). The token is the key, signature included, so only
        the very token that was checked matches; its expiry is checked on every use.
        """
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= VERIFIED_TOKENS:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        if claims[1] <= time.time():  # PyJWT's own rule: expired at exp, no leeway
            raise Unauthenticated("token expired")
        return claims

    def _decode(self, token: str) -> tuple[str, float]:
        try:
            claims = jwt.decode(
                token,
                self._key(),
                algorithms=["HS256"],
                options={"require": ["sub", "exp"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("invalid token") from None
        sub = claims.get("sub")
        exp = claims.get("exp")
        if not isinstance(sub, str) or not isinstance(exp, int | float):
            raise Unauthenticated("invalid token")
        return sub, float(exp)
