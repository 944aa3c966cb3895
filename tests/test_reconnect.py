"""IOC restarts with 1000 monitored PVs: everything comes back by itself."""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

import pytest

from caclient import Context
from caclient.testing import EpicsIOC, free_port_pair, loopback_env, make_numbered_db

N = 1000


class Tracker:
    """Counts connection events and updates per PV, and signals milestones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: collections.Counter[tuple[str, str]] = collections.Counter()
        self.updates: collections.Counter[str] = collections.Counter()
        self.cond = threading.Condition(self.lock)

    def on_state(self, pv: Any, state: str) -> None:
        with self.cond:
            self.events[(pv.name, state)] += 1
            self.cond.notify_all()

    def on_update(self, sub: Any, resp: Any) -> None:
        with self.cond:
            self.updates[sub.pv.name] += 1
            self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def count(self, state: str) -> int:
        return sum(1 for (_name, st), n in self.events.items() if st == state and n)

    def total(self, state: str) -> int:
        return sum(n for (_name, st), n in self.events.items() if st == state)


@pytest.mark.parametrize("same_port", [True, False], ids=["same-port", "new-port"])
@pytest.mark.timeout(180)
def test_ioc_restart_with_1000_monitors(tmp_path: Path, same_port: bool) -> None:
    db = make_numbered_db(tmp_path / "rc.db", N, kind="ao")
    p1, p2 = free_port_pair()
    env = loopback_env(server_port=p1)
    env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{p1} 127.0.0.1:{p2}"
    names = [f"RC:n{i}" for i in range(N)]
    ioc = EpicsIOC(db_path=str(db), macros="P=RC:")
    tr = Tracker()
    try:
        ioc.start(port=p1)
        with Context(env=env, timeout=30) as ctx:
            pvs = ctx.get_pvs(*names, connection_state_callback=tr.on_state)
            for pv in pvs:
                pv.subscribe().add_callback(tr.on_update)
            assert tr.wait(lambda: tr.count("connected") == N and len(tr.updates) == N, 60)
            before = dict(tr.updates)

            ioc.stop()
            assert tr.wait(lambda: tr.count("disconnected") == N, 30)
            assert not any(pv.connected for pv in pvs)

            ioc.start(port=p1 if same_port else p2)
            assert tr.wait(lambda: tr.total("connected") == 2 * N, 60), tr.total("connected")
            # every subscriber got a fresh value after the reconnection
            assert tr.wait(lambda: all(tr.updates[n] > before[n] for n in names), 30)
            assert tr.total("connected") == 2 * N and tr.total("disconnected") == N  # exactly once each
            assert all(pv.server_address == ioc.address for pv in pvs)

            # no duplicated subscriptions: one write, one update
            (circuit,) = ctx.circuits
            assert len(circuit._subs) == N
            target = pvs[7]
            seen = tr.updates[target.name]
            target.write(42.0, wait=True)
            target.read()  # a round trip: the update came before the reply
            assert tr.wait(lambda: tr.updates[target.name] >= seen + 1, 5)
            other = pvs[8]
            other.read()
            assert tr.updates[target.name] == seen + 1
    finally:
        ioc.stop()
