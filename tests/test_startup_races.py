"""Issue 8, defect 10: starting nodes at once on a fresh data dir.

- ``secret.key`` is written atomically: processes racing to create it all get
  the one key on disk, never an empty one; an empty key left by a crash is
  replaced.
- Several node processes started at the same moment on a fresh data dir all
  start (``PRAGMA journal_mode = WAL`` under contention used to fail one).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from rtserver.auth import SECRET_FILE, load_secret
from tests.servers import ProcessNode, node_settings


def _load(
    data_dir: str, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    start.wait()
    out.put(load_secret(Path(data_dir)))


@pytest.mark.timeout(120)
def test_processes_racing_for_the_secret_all_get_the_one_on_disk(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for rnd in range(5):
        data_dir = tmp_path / f"d{rnd}"
        start = ctx.Event()
        out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        procs = [ctx.Process(target=_load, args=(str(data_dir), start, out)) for _ in range(8)]
        for p in procs:
            p.start()
        start.set()
        keys = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        on_disk = (data_dir / SECRET_FILE).read_bytes().strip()
        assert len(on_disk) == 64
        assert set(keys) == {on_disk}


def test_an_empty_secret_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / SECRET_FILE).write_bytes(b"")
    key = load_secret(tmp_path)
    assert len(key) == 64
    assert load_secret(tmp_path) == key


@pytest.mark.timeout(240)
def test_nodes_started_at_once_on_a_fresh_data_dir_all_start(tmp_path: Path) -> None:
    for rnd in range(3):
        data_dir = tmp_path / f"data{rnd}"
        nodes = [
            ProcessNode(node_settings(data_dir, node_id=f"n{i}"), tmp_path / f"r{rnd}n{i}.log")
            for i in range(3)
        ]
        try:
            # Spawn all, then wait for each: they open the fresh database together.
            for n in nodes:
                n.spawn()
            for n in nodes:
                n.wait_started()
        finally:
            for n in nodes:
                n.stop()
