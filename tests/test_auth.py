"""Tokens: a token verified once is remembered, and still expires and still must match."""

from __future__ import annotations

import time

import jwt
import pytest

from rtserver.auth import VERIFIED_TOKENS, Auth
from rtserver.clock import SystemClock
from rtserver.errors import Unauthenticated

SECRET = b"k" * 64


def auth(ttl: float = 3600) -> Auth:
    return Auth(SECRET, SystemClock(), ttl, kdf_memory_kib=1024, kdf_time_cost=1)


def test_a_token_verified_again_gives_the_same_user_and_expiry() -> None:
    a = auth()
    token = a.issue("u1")
    first = a.verify_claims(token)
    assert first[0] == "u1" and first[1] > time.time()
    assert a.verify_claims(token) == first
    assert a.verify(token) == "u1"


def test_only_the_very_token_verified_is_remembered() -> None:
    a = auth()
    token = a.issue("u1")
    a.verify(token)
    head, body, _ = token.split(".")
    forged = jwt.encode({"sub": "u2", "exp": time.time() + 3600}, b"x" * 64, algorithm="HS256")
    for bad in (f"{head}.{body}.AAAA", forged, token + "x"):
        with pytest.raises(Unauthenticated):
            a.verify(bad)


def test_a_remembered_token_still_expires() -> None:
    a = auth(ttl=1)
    token = a.issue("u1")
    _, exp = a.verify_claims(token)
    time.sleep(max(0.0, exp - time.time()) + 0.1)
    with pytest.raises(Unauthenticated, match="expired"):
        a.verify(token)


def test_the_memory_of_verified_tokens_is_bounded() -> None:
    a = auth()
    tokens = [
        jwt.encode({"sub": f"u{i}", "exp": time.time() + 3600}, SECRET, algorithm="HS256")
        for i in range(VERIFIED_TOKENS + 10)
    ]
    for t in tokens:
        a.verify(t)
    assert len(a._verified) == VERIFIED_TOKENS
    assert a.verify(tokens[0]) == "u0"  # forgotten, verified again
