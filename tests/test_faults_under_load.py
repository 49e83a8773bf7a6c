"""Faults under load (issue 8): two nodes on Redis, chatting pairs and racing
experts, while a node is SIGKILLed and restarted, Redis is restarted, paused and
starved of memory, and SQLite's write lock is held by another process.

The same code as ``python -m bench.faults``, smaller and bounded in time; the
report lists every rule that broke (none may).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import Config, run


# Setup of 200 pairs, ~60 s of load and faults, and the requests' TTL at the end.
@pytest.mark.timeout(420)
async def test_every_rule_holds_through_faults_under_load(tmp_path: Path) -> None:
    cfg = Config(
        pairs=200,
        customers=6,
        racers=8,
        duration=40.0,
        message_interval=2.0,
        fault_length=3.0,
        fault_gap=3.0,
        offer_ttl=3.0,
        request_ttl=12.0,
    )
    report = await run(tmp_path, cfg)
    assert report["violations"] == [], report
    # The load really ran through the faults: messages acknowledged, requests raced.
    assert [f["fault"] for f in report["faults"]] == list(cfg.faults)
    assert report["messages_acked"] > 0 and report["requests"] > 0, report
