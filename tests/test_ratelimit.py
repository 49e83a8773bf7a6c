"""The rate limit's pure parts: buckets, the keyed map, limits as settings, address keys."""

from __future__ import annotations

import pytest

from rtserver.config import Settings, parse_limit
from rtserver.core.ratelimit import Limit, Limiter, TokenBucket, address_key


def test_a_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    b = TokenBucket(rate=2.0, burst=3.0)
    assert [b.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert b.wait(10.0) == pytest.approx(0.5)
    assert b.take(10.5)
    assert not b.take(10.5)


def test_a_token_given_back_can_be_spent_again_but_never_past_the_burst() -> None:
    b = TokenBucket(rate=0.0, burst=2.0)
    assert b.take(0.0) and b.take(0.0) and not b.take(0.0)
    b.give(0.0)
    assert b.take(0.0)
    for _ in range(5):
        b.give(0.0)
    assert [b.take(0.0) for _ in range(3)] == [True, True, False]


def test_a_limiter_keeps_one_bucket_per_key_and_says_how_long_to_wait() -> None:
    lim = Limiter(Limit(2, 10))  # 2 at once, one more each 5 s
    assert lim.take("a", 0.0) == 0.0
    assert lim.take("a", 0.0) == 0.0
    assert lim.take("a", 0.0) == pytest.approx(5.0)
    assert lim.take("b", 0.0) == 0.0  # another key has its own bucket
    assert lim.take("a", 5.0) == 0.0


def test_a_flood_of_distinct_keys_keeps_the_map_bounded() -> None:
    lim = Limiter(Limit(1, 60), max_keys=100)
    for i in range(10_000):
        lim.take(f"10.0.{i // 256}.{i % 256}", float(i))
    assert len(lim) == 100


def test_the_least_recently_used_key_goes_first() -> None:
    lim = Limiter(Limit(1, 3600), max_keys=2)
    lim.take("old", 0.0)
    lim.take("busy", 0.0)
    lim.take("old", 1.0)  # refused, but touched: now the most recent
    lim.take("new", 2.0)  # pushes out "busy"
    assert lim.take("old", 3.0) > 0  # still remembered: still empty
    assert lim.take("busy", 3.0) == 0.0  # forgotten: a full bucket again


def test_limits_are_written_count_per_period() -> None:
    assert parse_limit("20/2m") == Limit(20, 120)
    assert parse_limit("600/1h").rate == pytest.approx(600 / 3600)
    assert str(parse_limit("10/30s")) == "10/30s"
    assert parse_limit(str(Limit(30, 60))) == Limit(30, 60)
    for bad in ("20", "0/1m", "20/0s", "x/1m", "20/soon", "-1/1m"):
        with pytest.raises(ValueError):
            parse_limit(bad)
    s = Settings.from_mapping({"RT_LOGIN_LIMIT": "5/1m", "sockets_per_user": "3"})
    assert s.login_limit == Limit(5, 60) and s.sockets_per_user == 3
    with pytest.raises(ValueError):
        Settings.from_mapping({"sockets_per_user": "0"})


def test_ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key(None) == "unknown"
