"""Child side of ``python -m tools.bench_compat``: one scenario, one client, one process.

Usage (normally only started by :mod:`tools.bench_compat`)::

    python -m tools._bench_compat_workers SCENARIO CLIENT @PARAMS_FILE

``CLIENT`` is one of the three pyepics-style interfaces, always imported as
``epics`` and used through the same calls:

* ``compat``  - ``import compat as epics`` (this project);
* ``pyepics`` - ``import epics`` (libca through ctypes);
* ``caproto`` - ``from caproto.threading import pyepics_compat as epics``.

The environment must be the IOC's loopback-only one (checked).  The child
prints one :data:`~tools._bench_workers.RESULT_MARK` line with its metrics,
closes its client, prints one :data:`~tools._bench_workers.CLOSE_MARK` line
and leaves with :func:`os._exit`.
"""

from __future__ import annotations

import gc
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from tools import _bench_workers as workers
from tools._bench_workers import (
    CLOSE_MARK,
    RESULT_MARK,
    BenchFailure,
    _emit,
    _rss,
    measure_monitor_cpu,
    warm_up,
    warmup_seconds,
)

CLIENTS = ("compat", "pyepics", "caproto")
Result = tuple[dict[str, Any], dict[str, Any]]  # (metrics, info)


# ----------------------------------------------------------------------------- the three clients
class Facade:
    """A pyepics-style module plus the few calls whose arguments differ between them."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "compat":
            import compat as epics
        elif name == "pyepics":
            import epics

            epics.ca.initialize_libca()
        elif name == "caproto":
            from caproto.threading import pyepics_compat as epics
        else:
            raise BenchFailure(f"unknown client {name!r}")
        self.epics: Any = epics

    def caget_many(self, names: list[str], timeout: float) -> list[Any]:
        if self.name == "caproto":
            return list(self.epics.caget_many(names, timeout=timeout))
        return list(self.epics.caget_many(names, timeout=timeout, connection_timeout=timeout))

    def caput_many(self, names: list[str], values: list[Any], wait: Any, timeout: float) -> list[Any]:
        return list(self.epics.caput_many(names, values, wait=wait, connection_timeout=timeout, put_timeout=timeout))

    def caget(self, name: str, timeout: float, **kw: Any) -> Any:
        if self.name == "caproto":
            return self.epics.caget(name, timeout=timeout, **kw)
        return self.epics.caget(name, timeout=timeout, connection_timeout=timeout, **kw)

    def caput(self, name: str, value: Any, timeout: float) -> Any:
        return self.epics.caput(name, value, wait=True, timeout=timeout)

    def pv(self, name: str, **kw: Any) -> Any:
        return self.epics.PV(name, **kw)

    def wait_connected(self, pvs: list[Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for pv in pvs:
            ok = pv.wait_for_connection(timeout=max(0.01, deadline - time.monotonic()))
            if ok is False:
                raise BenchFailure(f"{self.name}: {pv.pvname} did not connect")

    def close(self) -> None:
        if self.name == "compat":
            self.epics._runtime._reset()
        elif self.name == "pyepics":
            self.epics.ca.finalize_libca(maxtime=5.0)
        else:
            self.epics.PV.default_context().disconnect(wait=True)


class Counter(workers.Counter):
    """Callback counter (a client's callbacks run on one thread at a time, or we lock)."""

    __slots__ = ("errors", "lock")

    def __init__(self) -> None:
        super().__init__()
        self.errors = 0
        self.lock = threading.Lock()


# ----------------------------------------------------------------------------- scenarios
def sc_cold_caget_many(f: Facade, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    t0 = time.perf_counter()
    values = f.caget_many(names, p["timeout"])
    elapsed = time.perf_counter() - t0
    missing = sum(v is None for v in values)
    if missing:
        raise BenchFailure(f"{missing} of {len(names)} values missing after {elapsed:.1f}s")
    return {"rate": len(names) / elapsed, "elapsed_s": elapsed}, {"n": len(names)}


def sc_caget_many_repeat(f: Facade, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    times = []
    for _ in range(p["rounds"]):
        t0 = time.perf_counter()
        values = f.caget_many(names, p["timeout"])
        times.append(time.perf_counter() - t0)
        if any(v is None for v in values):
            raise BenchFailure("caget_many returned None values")
    return {"total_s": sum(times), "later_ms": sum(times[1:]) / (len(times) - 1) * 1e3}, {"first_s": times[0]}


def sc_seq_get(f: Facade, p: dict[str, Any]) -> Result:
    pv = f.pv(p["name"], auto_monitor=False)
    f.wait_connected([pv], p["timeout"])
    warm_up(lambda i: pv.get(use_monitor=False, timeout=p["timeout"]), p["warmup"], warmup_seconds(p))
    t0 = time.perf_counter()
    for _ in range(p["n"]):
        if pv.get(use_monitor=False, timeout=p["timeout"]) is None:
            raise BenchFailure("get returned None")
    elapsed = time.perf_counter() - t0
    return {"rate": p["n"] / elapsed, "latency_us": elapsed / p["n"] * 1e6}, {"n": p["n"]}


def sc_monitor_cpu(f: Facade, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    counter = Counter()

    def callback(pvname: Any = None, value: Any = None, **kw: Any) -> None:
        value + 1  # touch the value
        counter.n += 1

    pvs = [f.pv(name, callback=callback) for name in names]
    f.wait_connected(pvs, p["timeout"])
    metrics, _ = measure_monitor_cpu(counter, len(names), p)
    return metrics, {"offered_per_s": len(names) * p["hz"], "pvs": len(pvs)}


def sc_caget_big(f: Facade, p: dict[str, Any]) -> Result:
    name, nelm, n = p["name"], p["nelm"], p["n"]
    first = f.caget(name, p["timeout"])  # connects (and checks the content)
    if first is None or len(first) != nelm or float(first[-1]) != p["expected_last"]:
        raise BenchFailure(f"waveform content wrong: {None if first is None else len(first)} elements")
    del first
    warm_up(lambda i: f.caget(name, p["timeout"], use_monitor=False), 0, warmup_seconds(p))
    t0 = time.perf_counter()
    for _ in range(n):
        value = f.caget(name, p["timeout"], use_monitor=False)
        if value is None or len(value) != nelm:
            raise BenchFailure("short or missing waveform")
        del value
    elapsed = time.perf_counter() - t0
    return {"mbps": n * nelm * 8 / elapsed / 1e6, "rate": n / elapsed}, {"n": n}


def sc_caput_wait(f: Facade, p: dict[str, Any]) -> Result:
    name = p["name"]
    warm_up(lambda i: f.caput(name, float(i), p["timeout"]), p["warmup"], warmup_seconds(p))
    t0 = time.perf_counter()
    for i in range(p["n"]):
        ret = f.caput(name, float(i % 50), p["timeout"])
        if ret is not None and ret != 1:
            raise BenchFailure(f"caput returned {ret}")
    elapsed = time.perf_counter() - t0
    return {"rate": p["n"] / elapsed, "latency_us": elapsed / p["n"] * 1e6}, {"n": p["n"]}


def sc_caput_many(f: Facade, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    wait = p["wait"]
    rets = f.caput_many(names, [0.5] * len(names), wait, p["timeout"])  # connects
    if wait and any(r != 1 for r in rets):
        raise BenchFailure(f"warm-up caput_many failed: {sorted(set(map(str, rets)))}")
    t0 = time.perf_counter()
    for k in range(p["rounds"]):
        rets = f.caput_many(names, [float(k)] * len(names), wait, p["timeout"])
        if wait and any(r != 1 for r in rets):
            raise BenchFailure(f"caput_many returned {sorted(set(map(str, rets)))}")
    elapsed = time.perf_counter() - t0
    puts = p["rounds"] * len(names)
    return {"rate": puts / elapsed, "round_ms": elapsed / p["rounds"] * 1e3}, {"n": puts}


def sc_mem_per_pv(f: Facade, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    warm = [f.pv(name) for name in p["warmup_names"]]
    f.wait_connected(warm, p["timeout"])
    for pv in warm:
        pv.get()
    time.sleep(0.5)
    gc.collect()
    before = _rss()
    pvs = [f.pv(name) for name in names]
    f.wait_connected(pvs, p["timeout"])
    for pv in pvs:
        if pv.get() is None:
            raise BenchFailure(f"{pv.pvname}: no value")
    time.sleep(p["settle"])
    gc.collect()
    after = _rss()
    return (
        {"bytes_per_pv": (after - before) / len(names), "rss_after_mb": after / 2**20},
        {"rss_before_mb": before / 2**20, "n": len(pvs), "monitored": sum(bool(pv.auto_monitor) for pv in pvs)},
    )


def sc_reentrant(f: Facade, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    others: list[str] = p["others"]
    counter = Counter()
    partner = dict(zip(names, others, strict=True))

    def callback(pvname: str = "", value: Any = None, **kw: Any) -> None:
        try:
            got = f.caget(partner[pvname], p["nested_timeout"])
        except Exception:
            got = None
        with counter.lock:
            if got is None:
                counter.errors += 1
            else:
                counter.n += 1

    pvs = [f.pv(name, callback=callback) for name in names]
    f.wait_connected(pvs, p["timeout"])
    time.sleep(p["settle"])
    with counter.lock:
        n0, e0 = counter.n, counter.errors
    t0 = time.perf_counter()
    time.sleep(p["duration"])
    with counter.lock:
        n1, e1 = counter.n, counter.errors
    t1 = time.perf_counter()
    return (
        {"rate": (n1 - n0) / (t1 - t0), "errors": e1 - e0},
        {"offered_per_s": len(names) * p["hz"], "errors_before": e0},
    )


SCENARIOS: dict[str, Callable[[Facade, dict[str, Any]], Result]] = {
    "cold_caget_many": sc_cold_caget_many,
    "caget_many_repeat": sc_caget_many_repeat,
    "seq_get": sc_seq_get,
    "monitor_cpu": sc_monitor_cpu,
    "caget_big": sc_caget_big,
    "caput_wait": sc_caput_wait,
    "caput_many": sc_caput_many,
    "mem_per_pv": sc_mem_per_pv,
    "reentrant": sc_reentrant,
}


def main(argv: list[str]) -> None:
    scenario, client_name, params_arg = argv
    params = workers.child_params(params_arg)
    facade = Facade(client_name)
    metrics, info = SCENARIOS[scenario](facade, params)
    info["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _emit(RESULT_MARK, {"metrics": metrics, "info": info})
    t0 = time.perf_counter()
    if not params.get("skip_close"):
        facade.close()
    _emit(CLOSE_MARK, {"close_s": time.perf_counter() - t0})


if __name__ == "__main__":
    workers.run_as_child(main)
