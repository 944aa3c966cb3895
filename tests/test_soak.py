"""Soak: 10,000 PVs at 10 Hz for 60 s with flat memory and thread count.

Marked slow: deselected by default, run with ``pytest -m slow``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from caclient import Context
from caclient.testing import EpicsIOC, make_numbered_db

N = 10_000
SECONDS = 60


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 120)
def test_soak_10k_pvs_at_10hz(tmp_path: Path) -> None:
    import psutil

    db = make_numbered_db(tmp_path / "soak.db", N, kind="calc", scan=".1 second")
    proc = psutil.Process()
    with EpicsIOC(db_path=str(db), macros="P=SOAK:") as ioc, Context(env=ioc.env, timeout=60) as ctx:
        count = [0]

        def cb(sub: Any, resp: Any) -> None:
            resp.data[0]
            count[0] += 1

        for pv in ctx.get_pvs(*[f"SOAK:n{i}" for i in range(N)]):
            pv.subscribe(data_type="time").add_callback(cb)
        time.sleep(5)  # warm-up: connections made, first values in
        samples = []
        for _ in range(SECONDS // 5):
            samples.append((proc.memory_info().rss, threading.active_count(), count[0]))
            time.sleep(5)
        rss = [s[0] for s in samples]
        threads = {s[1] for s in samples}
        rate = (samples[-1][2] - samples[0][2]) / (5 * (len(samples) - 1))
        assert len(threads) == 1, threads
        assert max(rss) - rss[0] < 32 * 2**20, [r // 2**20 for r in rss]
        assert rate > 0.5 * N * 10 * 0.5, rate  # well over a quarter of the offered rate on a loaded machine
