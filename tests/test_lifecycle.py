"""Process exit, slow consumers and hostile bytes."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeserver import FakeServer

from caclient import Context
from caclient.testing import EpicsIOC, IOCHandle, make_numbered_db

ROOT = Path(__file__).resolve().parent.parent


def test_exit_with_open_contexts_neither_hangs_nor_prints(ioc: IOCHandle) -> None:
    script = (
        "import sys; sys.path.insert(0, {!r})\n"
        "from caclient import Context\n"
        "ctx = Context(timeout=5)\n"
        "pv, = ctx.get_pvs({!r})\n"
        "pv.subscribe().add_callback(lambda s, r: None)\n"
        "print(pv.read().data[0])\n"
        "Context(timeout=5).get_pvs('NO:SUCH:PV:exit')\n"
    ).format(str(ROOT), ioc.pv("ai"))
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **ioc.env}, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3.5"
    assert proc.stderr == ""
    assert time.monotonic() - t0 < 20


@pytest.mark.timeout(120)
def test_slow_consumer_memory_stays_bounded(tmp_path: Path) -> None:
    """1000 PVs at 10 Hz into a callback ~100x slower than the update rate."""
    import psutil

    db = make_numbered_db(tmp_path / "slow.db", 1000, kind="calc", scan=".1 second")
    with EpicsIOC(db_path=str(db), macros="P=SC:") as ioc, Context(env=ioc.env, timeout=30) as ctx:
        ctx._backlog_high = 2000
        seen = [0]

        def slow(sub: Any, resp: Any) -> None:
            seen[0] += 1
            time.sleep(0.001)  # work: 1 ms per update against 10k updates/s offered

        for pv in ctx.get_pvs(*[f"SC:n{i}" for i in range(1000)]):
            pv.subscribe().add_callback(slow)
        proc = psutil.Process()
        deadline = time.monotonic() + 3
        while seen[0] < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        rss_start = proc.memory_info().rss
        peak_backlog = 0
        end = time.monotonic() + 6
        while time.monotonic() < end:
            peak_backlog = max(peak_backlog, ctx._dispatcher.backlog)
            time.sleep(0.05)
        growth = proc.memory_info().rss - rss_start
        assert peak_backlog < 2000 + 12_000  # high-water mark plus what was already in flight
        assert growth < 30 * 2**20, growth
        assert seen[0] > 1000


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer({"FUZZ:a": 1.0}) as s:
        yield s


def test_fuzzed_frames_into_a_live_circuit(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random bytes into the stream: the circuit is dropped or carries on, never hangs or crashes."""
    crashed: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    rng = random.Random(1234)
    env = {**fake.env, "EPICS_CA_CONN_TMO": "0.2", "CACLIENT_ECHO_TIMEOUT": "0.3"}
    with Context(env=env, timeout=5) as ctx:
        (pv,) = ctx.get_pvs("FUZZ:a")
        for _ in range(15):
            pv.wait_for_connection(timeout=10)
            conn, _, _ = fake.channel("FUZZ:a")
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
            try:
                conn.sendall(junk)
            except OSError:
                pass
            try:
                pv.read(timeout=0.3)
            except Exception:
                pass  # a desynchronised stream: the heartbeat drops it
        deadline = time.monotonic() + 15
        while True:  # the engine recovers: a read succeeds again
            try:
                assert pv.read(timeout=1).data[0] == 1.0
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        circuits = [t for t in threading.enumerate() if t.name.startswith("caclient-circuit")]
        assert len(circuits) <= 2
    assert crashed == []
