"""Child side of ``python -m tools.bench_ophyd``: one scenario, one client, one process.

Usage (normally only started by :mod:`tools.bench_ophyd`)::

    python -m tools._bench_ophyd_workers SCENARIO CLIENT @PARAMS_FILE

``CLIENT`` chooses what ophyd's pyepics control layer runs on:

* ``compat``  - ``compat.install()`` first, so ophyd's ``import epics`` gives compat;
* ``pyepics`` - the real pyepics (libca through ctypes).

ophyd is imported with ``OPHYD_CONTROL_LAYER=pyepics`` in both cases.  The
child prints one result line, then one close line, and leaves with
:func:`os._exit` (as :mod:`tools._bench_workers` children do).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from tools import _bench_workers as workers
from tools._bench_workers import CLOSE_MARK, RESULT_MARK, BenchFailure, _emit, measure_monitor_cpu

CLIENTS = ("compat", "pyepics")
Result = tuple[dict[str, Any], dict[str, Any]]  # (metrics, info)


class Ophyd:
    """ophyd (and bluesky) on the chosen client, with a Device class of N EpicsSignals."""

    def __init__(self, client: str) -> None:
        if client == "compat":
            import compat

            compat.install()
        elif client != "pyepics":
            raise BenchFailure(f"unknown client {client!r}")
        os.environ["OPHYD_CONTROL_LAYER"] = "pyepics"
        import epics
        import ophyd

        if (epics.__name__ == "compat") != (client == "compat"):
            raise BenchFailure(f"ophyd's epics is {epics.__name__}, not {client}")
        self.client = client
        self.ophyd: Any = ophyd

    def device_class(self, n: int) -> Any:
        """A Device class with components ``c0..c{n-1}`` = EpicsSignal(prefix + 'n{i}')."""
        ophyd = self.ophyd
        attrs = {f"c{i}": ophyd.Component(ophyd.EpicsSignal, f"n{i}") for i in range(n)}
        return type(f"Bench{n}", (ophyd.Device,), attrs)


class Counter(workers.Counter):
    """Counts subscription callbacks (ophyd runs them on its dispatcher thread)."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


def sc_device_connect(o: Ophyd, p: dict[str, Any]) -> Result:
    """Create a Device of N EpicsSignals and wait_for_connection."""
    cls = o.device_class(p["n"])
    t0 = time.perf_counter()
    c0 = time.process_time()
    dev = cls(p["prefix"], name="dev")
    dev.wait_for_connection(timeout=p["timeout"])
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if not dev.connected:
        raise BenchFailure("device not connected")
    return {"elapsed_s": elapsed, "cpu_s": cpu, "rate": p["n"] / elapsed}, {"n": p["n"]}


def sc_count(o: Ophyd, p: dict[str, Any]) -> Result:
    """bluesky count of a Device of N EpicsSignals, `num` points (after connecting it)."""
    from bluesky import RunEngine
    from bluesky.plans import count

    cls = o.device_class(p["n"])
    dev = cls(p["prefix"], name="dev")
    dev.wait_for_connection(timeout=p["timeout"])
    engine = RunEngine({})
    events: list[int] = []
    engine.subscribe(lambda name, doc: events.append(len(doc["data"])) if name == "event" else None)
    t0 = time.perf_counter()
    c0 = time.process_time()
    engine(count([dev], num=p["num"]))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if len(events) != p["num"] or any(k != p["n"] for k in events):
        raise BenchFailure(f"expected {p['num']} events of {p['n']} readings, got {events[:3]}...")
    return {"elapsed_s": elapsed, "cpu_s": cpu, "points_per_s": p["num"] / elapsed}, {"n": p["n"]}


def sc_subscriptions(o: Ophyd, p: dict[str, Any]) -> Result:
    """N EpicsSignal subscriptions to 10 Hz calc records: CPU time per update."""
    counter = Counter()

    def callback(value: Any = None, **kw: Any) -> None:
        value + 1  # touch the value
        with counter.lock:
            counter.n += 1

    signals = [o.ophyd.EpicsSignalRO(name, name=f"s{i}") for i, name in enumerate(p["names"])]
    for sig in signals:
        sig.wait_for_connection(timeout=p["timeout"])
    for sig in signals:
        sig.subscribe(callback)
    metrics, updates = measure_monitor_cpu(counter, len(signals), p)
    return metrics, {"updates": updates, "offered_per_s": len(signals) * p["hz"]}


SCENARIOS: dict[str, Callable[[Ophyd, dict[str, Any]], Result]] = {
    "device_connect": sc_device_connect,
    "count": sc_count,
    "subscriptions": sc_subscriptions,
}


def main(argv: list[str]) -> None:
    scenario, client_name, params_arg = argv
    params = workers.child_params(params_arg)
    o = Ophyd(client_name)
    metrics, info = SCENARIOS[scenario](o, params)
    info["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _emit(RESULT_MARK, {"metrics": metrics, "info": info})
    _emit(CLOSE_MARK, {"close_s": 0.0})  # (ophyd's PVs are left to the process exit)


if __name__ == "__main__":
    workers.run_as_child(main)
