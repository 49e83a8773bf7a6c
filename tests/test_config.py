"""Settings: durations, names, validation, and the contract's defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rtserver.config import Settings, parse_duration, parse_durations

# --- parse_duration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1ms", 0.001),
        ("0ms", 0.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("2h", 7200.0),
        ("45", 45.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("1.5m", 90.0),
        ("0.5h", 1800.0),
        ("2.5s", 2.5),
        (" 10m ", 600.0),
        ("10 m", 600.0),
        ("007s", 7.0),
    ],
)
def test_parse_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


def test_parse_duration_days_for_the_refund_window() -> None:
    assert parse_duration("14d") == 14 * 86400.0
    assert Settings().refund_window == 14 * 86400.0
    assert Settings.from_mapping({"RT_REFUND_WINDOW": "2d"}).refund_window == 2 * 86400.0


@pytest.mark.parametrize(("value", "seconds"), [(5, 5.0), (0, 0.0), (2.5, 2.5), (0.001, 0.001)])
def test_parse_duration_numbers(value: float, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "-5",
        "-5s",
        "10x",
        "1w",
        "10mm",
        "m",
        "1.5.2",
        ".5",
        "1h30m",
        "10 s s",
        "1e3",
    ],
)
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5])
def test_parse_duration_refuses_negative_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="negative duration"):
        parse_duration(value)


# --- parse_durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m,10m", (1800.0, 600.0)),
        ("10m,30m", (1800.0, 600.0)),
        ("10m, 1h ,30m", (3600.0, 1800.0, 600.0)),
        ("90s", (90.0,)),
        ("30m,", (1800.0,)),
        ("10m,600", (600.0,)),  # the same duration twice counts once
        ("500ms,1s", (1.0, 0.5)),
        ("", ()),
    ],
)
def test_parse_durations_largest_first(text: str, expected: tuple[float, ...]) -> None:
    assert parse_durations(text) == expected


def test_parse_durations_from_sequences() -> None:
    assert parse_durations([600, 1800]) == (1800.0, 600.0)
    assert parse_durations((60.0, 3600.0, 60.0)) == (3600.0, 60.0)
    assert parse_durations([]) == ()


def test_parse_durations_refuses_a_bad_item() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_durations("30m,soon")


# --- defaults -------------------------------------------------------------------------


CONTRACT_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8000,
    "data_dir": Path("./rtserver-data"),
    "redis_url": None,
    "offer_batch": 5,
    "offer_ttl": 60.0,
    "request_ttl": 600.0,
    "reminders": (1800.0, 600.0),
    "early_start": 600.0,
    "no_show": 600.0,
    "cancellation_fee": 500,
    "platform_fee": 20,
    "max_frame": 65536,
    "max_attachment": 26214400,
    "hello_timeout": 10.0,
}


@pytest.mark.parametrize("settings", [Settings(), Settings.from_mapping({})], ids=["init", "map"])
def test_defaults_are_the_contracts(settings: Settings) -> None:
    actual = {name: getattr(settings, name) for name in CONTRACT_DEFAULTS}
    assert actual == CONTRACT_DEFAULTS


def test_defaults_equal_the_contracts_written_defaults() -> None:
    # The contract writes them as flags; parsing those must give the defaults.
    written = {
        "--host": "127.0.0.1",
        "--port": "8000",
        "--data-dir": "./rtserver-data",
        "--offer-batch": "5",
        "--offer-ttl": "60s",
        "--request-ttl": "10m",
        "--reminders": "30m,10m",
        "--early-start": "10m",
        "--no-show": "10m",
        "--cancellation-fee": "500",
        "--platform-fee": "20",
        "--max-frame": "65536",
        "--max-attachment": "26214400",
        "--hello-timeout": "10s",
    }
    parsed = Settings.from_mapping({k.removeprefix("--"): v for k, v in written.items()})
    defaults = Settings()
    for name in CONTRACT_DEFAULTS:
        assert getattr(parsed, name) == getattr(defaults, name), name


def test_extension_defaults() -> None:
    s = Settings()
    assert s.heartbeat == 25.0
    assert s.send_queue == 256
    assert s.token_ttl == 604800.0
    assert s.presence_ttl == 6.0
    assert s.fsync is False
    assert s.redis_prefix == "rt:"
    assert len(s.node_id) == 8
    int(s.node_id, 16)  # hex


def test_default_settings_are_valid() -> None:
    Settings().validate()


# --- from_mapping ---------------------------------------------------------------------


def test_flag_names() -> None:
    s = Settings.from_mapping(
        {"offer_ttl": "90s", "offer_batch": "3", "host": "0.0.0.0", "reminders": "1h,5m"}
    )
    assert s.offer_ttl == 90.0
    assert s.offer_batch == 3
    assert s.host == "0.0.0.0"
    assert s.reminders == (3600.0, 300.0)


def test_flag_names_with_dashes() -> None:
    s = Settings.from_mapping({"request-ttl": "2m", "max-frame": "2048", "data-dir": "/srv/rt"})
    assert s.request_ttl == 120.0
    assert s.max_frame == 2048
    assert s.data_dir == Path("/srv/rt")


def test_environment_names() -> None:
    s = Settings.from_mapping(
        {
            "RT_PORT": "9000",
            "RT_HELLO_TIMEOUT": "250ms",
            "RT_REDIS_URL": "redis://localhost:6379/0",
            "RT_PLATFORM_FEE": "15",
            "RT_NO_SHOW": "5m",
            "rt_early_start": "1h",
        }
    )
    assert s.port == 9000
    assert s.hello_timeout == 0.25
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.platform_fee == 15
    assert s.no_show == 300.0
    assert s.early_start == 3600.0


def test_environment_names_with_dashes() -> None:
    s = Settings.from_mapping({"RT_OFFER-BATCH": "7", "RT_MAX-ATTACHMENT": "1000"})
    assert s.offer_batch == 7
    assert s.max_attachment == 1000


def test_typed_values() -> None:
    s = Settings.from_mapping(
        {
            "port": 8123,
            "offer_ttl": 2.5,
            "reminders": [60, 3600],
            "data_dir": Path("/tmp/x"),
            "fsync": True,
        }
    )
    assert s.port == 8123
    assert s.offer_ttl == 2.5
    assert s.reminders == (3600.0, 60.0)
    assert s.data_dir == Path("/tmp/x")
    assert s.fsync is True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        (False, False),
    ],
)
def test_fsync_values(raw: Any, expected: bool) -> None:
    assert Settings.from_mapping({"RT_FSYNC": raw}).fsync is expected


def test_unknown_names_are_ignored() -> None:
    s = Settings.from_mapping({"HOME": "/root", "RT_NOPE": "1", "PATH": "/bin", "colour": "red"})
    assert {n: getattr(s, n) for n in CONTRACT_DEFAULTS} == CONTRACT_DEFAULTS


def test_none_and_empty_values_keep_the_default() -> None:
    s = Settings.from_mapping({"RT_PORT": "", "offer_ttl": None, "RT_REDIS_URL": ""})
    assert s.port == 8000
    assert s.offer_ttl == 60.0
    assert s.redis_url is None


def test_settings_are_frozen_and_replace_copies() -> None:
    s = Settings.from_mapping({"port": "9000"})
    t = s.replace(port=9001, offer_ttl=1.0)
    assert (s.port, s.offer_ttl) == (9000, 60.0)
    assert (t.port, t.offer_ttl) == (9001, 1.0)
    assert t.node_id == s.node_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"offer_batch": "0"}, "offer_batch must be at least 1"),
        ({"platform_fee": "101"}, "platform_fee is a percentage"),
        ({"platform_fee": "-1"}, "platform_fee is a percentage"),
        ({"cancellation_fee": "-1"}, "cancellation_fee must not be negative"),
        ({"max_frame": "1023"}, "max_frame must be at least 1024 bytes"),
        ({"send_queue": "0"}, "send_queue must be at least 1"),
        ({"offer_ttl": "0"}, "offer_ttl must be positive"),
        ({"request_ttl": "0s"}, "request_ttl must be positive"),
        ({"hello_timeout": "0ms"}, "hello_timeout must be positive"),
        ({"heartbeat": 0}, "heartbeat must be positive"),
        ({"token_ttl": "0h"}, "token_ttl must be positive"),
        ({"billing_check": "0"}, "billing_check must be positive"),
        ({"presence_ttl": "0s"}, "presence_ttl must be positive"),
        ({"session_length": "0m"}, "session_length must be positive"),
        ({"request_timeout": "0s"}, "request_timeout must be positive"),
        ({"RT_MAX_CONNECTIONS": "0"}, "max_connections must be at least 1"),
    ],
)
def test_invalid_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_mapping(values)


def test_boundary_settings_are_accepted() -> None:
    s = Settings.from_mapping(
        {
            "offer_batch": "1",
            "platform_fee": "100",
            "cancellation_fee": "0",
            "max_frame": "1024",
            "send_queue": "1",
            "offer_ttl": "1ms",
        }
    )
    assert (s.offer_batch, s.platform_fee, s.cancellation_fee) == (1, 100, 0)
    assert (s.max_frame, s.send_queue, s.offer_ttl) == (1024, 1, 0.001)
    assert Settings.from_mapping({"platform_fee": "0"}).platform_fee == 0


@pytest.mark.parametrize(
    "values",
    [
        {"port": "eighty"},
        {"RT_OFFER_BATCH": "5.5"},
        {"offer_ttl": "soon"},
        {"RT_REMINDERS": "30m,later"},
        {"early_start": "-10m"},
    ],
)
def test_unparsable_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings.from_mapping(values)


def test_validate_checks_replaced_settings() -> None:
    with pytest.raises(ValueError, match="offer_batch must be at least 1"):
        Settings().replace(offer_batch=0).validate()
