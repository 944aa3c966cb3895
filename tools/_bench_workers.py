"""Child side of ``python -m tools.bench``: one scenario, one client, one process.

Usage (normally only started by :mod:`tools.bench`)::

    python -m tools._bench_workers SCENARIO CLIENT (PARAMS_JSON | @PARAMS_FILE)

``CLIENT`` is ``caclient``, ``caproto`` or ``pyepics``.  The parameters (a
JSON object, inline or in a file) hold the PV names and counts.  The environment must already be the loopback-only
one of the IOC under test (the parent passes ``ioc.env``); this is checked.

The child prints exactly one line starting with :data:`RESULT_MARK` followed
by a JSON object ``{"metrics": {...}, "info": {...}}`` as soon as the
measurement is over, then closes its client and prints one more line,
:data:`CLOSE_MARK` + JSON (``{"close_s": ...}``), and leaves with
:func:`os._exit` so that no interpreter teardown can hang it.  A failure
prints :data:`RESULT_MARK` + ``{"error": "..."}`` and exits with status 3.

Each client is used the way its documentation suggests for the job:

* caclient - ``Context``, ``read_many``, ``PV.read/write/subscribe``;
* caproto  - ``caproto.threading.client.Context``, ``Batch`` for the cold
  reads, ``PV.read/write/subscribe``;
* pyepics  - ``epics.caget_many`` for the cold reads, ``epics.ca.get`` on a
  channel id for single reads (a real network get, no monitor), ``epics.PV``
  objects with ``auto_monitor=False`` for puts and with a callback for
  monitors.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

RESULT_MARK = "BENCH-RESULT "
CLOSE_MARK = "BENCH-CLOSE "
CLIENTS = ("caclient", "caproto", "pyepics")
#: Seconds every timed loop warms up for at least, besides its warm-up count
#: (parameter ``warmup_s``).  A one-time cost that outlasts a few calls must be
#: over before the clock starts, for every client alike: on a 2-core machine the
#: first ``import numpy`` starts an OpenBLAS thread that spins for about 0.1 s
#: of CPU.  caclient imports numpy at its first ``.data``, inside the warm-up
#: count, so that spin used to fall in its measured loop (the other clients
#: import numpy when they are imported, before they connect).
WARMUP_SECONDS = 0.5


# ----------------------------------------------------------------------------- helpers
class BenchFailure(Exception):
    """A scenario could not be completed (reported as FAIL by the parent)."""


def _emit(mark: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(mark + json.dumps(payload) + "\n")
    sys.stdout.flush()


def warm_up(fn: Callable[[int], Any], count: int, seconds: float) -> None:
    """Call fn(0), fn(1), ... at least *count* times and for at least *seconds*."""
    until = time.perf_counter() + seconds
    i = 0
    while i < count or time.perf_counter() < until:
        fn(i)
        i += 1


def warmup_seconds(p: dict[str, Any]) -> float:
    """The parameters' ``warmup_s``: how long a timed loop warms up for at least."""
    return float(p.get("warmup_s", WARMUP_SECONDS))


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class RssSampler:
    """Samples this process's RSS every `period` seconds in a daemon thread."""

    def __init__(self, period: float = 0.1) -> None:
        self.period = period
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.wait(self.period):
            try:
                self.peak = max(self.peak, int(proc.memory_info().rss))
            except Exception:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(1.0)
        self.peak = max(self.peak, _rss())
        return self.peak


def _check_loopback_env() -> None:
    """Refuse to run unless the environment keeps CA on 127.0.0.1."""
    env = os.environ
    if env.get("EPICS_CA_AUTO_ADDR_LIST", "").upper() != "NO" or env.get("EPICS_CA_ADDR_LIST", "").split() != [
        "127.0.0.1"
    ]:
        raise BenchFailure("environment is not loopback-only (run through tools.bench)")
    if env.get("EPICS_CA_SERVER_PORT") in (None, "", "5064"):
        raise BenchFailure("EPICS_CA_SERVER_PORT must be a private port")
    if env.get("EPICS_CA_NAME_SERVERS"):
        raise BenchFailure("EPICS_CA_NAME_SERVERS must not be set")


class Counter:
    """Update counter; callbacks of one client run on one thread at a time."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


def _wait_until(pred: Callable[[], bool], timeout: float, what: str, poll: float = 0.02) -> float:
    """Poll `pred` until true; return seconds waited, raise BenchFailure on timeout."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while not pred():
        if time.perf_counter() > deadline:
            raise BenchFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- clients
class Client:
    """Per-client connection, read, write and subscribe, used as documented."""

    name = ""

    def connect(self, names: list[str], timeout: float) -> list[Any]:
        raise NotImplementedError

    def read(self, handle: Any, timeout: float) -> Any:
        raise NotImplementedError

    def write_wait(self, handle: Any, value: Any, timeout: float) -> None:
        raise NotImplementedError

    def subscribe(self, names: list[str], counter: Counter, timeout: float) -> list[Any]:
        """Subscribe to every name with a trivial callback that touches the value."""
        raise NotImplementedError

    def cold_read(self, names: list[str], timeout: float) -> tuple[int, list[str]]:
        """Connect and read every name; return (number read, a few error texts)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _ContextClient(Client):
    """caclient and caproto: a threading ``Context`` whose PVs read, write and subscribe alike."""

    def __init__(self) -> None:
        self.ctx: Any = None
        self._keep: list[Any] = []  # caproto holds callbacks weakly

    def _get_pvs(self, names: list[str], timeout: float) -> list[Any]:
        raise NotImplementedError

    def connect(self, names: list[str], timeout: float) -> list[Any]:
        pvs = self._get_pvs(names, timeout)
        deadline = time.monotonic() + timeout
        for pv in pvs:
            pv.wait_for_connection(timeout=max(0.01, deadline - time.monotonic()))
        return pvs

    def read(self, handle: Any, timeout: float) -> Any:
        return handle.read(timeout=timeout).data

    def write_wait(self, handle: Any, value: Any, timeout: float) -> None:
        handle.write(value, wait=True, timeout=timeout)

    def subscribe(self, names: list[str], counter: Counter, timeout: float) -> list[Any]:
        def callback(sub: Any, response: Any) -> None:
            response.data[0]
            counter.n += 1

        self._keep.append(callback)
        pvs = self.connect(names, timeout)
        subs = []
        for pv in pvs:
            sub = pv.subscribe()
            sub.add_callback(callback)
            subs.append(sub)
        return subs


class CaclientClient(_ContextClient):
    name = "caclient"

    def __init__(self, timeout: float) -> None:
        from caclient import Context

        super().__init__()
        self.ctx = Context(timeout=timeout)

    def _get_pvs(self, names: list[str], timeout: float) -> list[Any]:
        return self.ctx.get_pvs(*names)  # type: ignore[no-any-return]

    def cold_read(self, names: list[str], timeout: float) -> tuple[int, list[str]]:
        results = self.ctx.read_many(names, timeout=timeout)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        for r in results:
            if not isinstance(r, BaseException):
                r.data[0]
        return len(results) - len(errors), errors[:3]

    def close(self) -> None:
        self.ctx.close()


class CaprotoClient(_ContextClient):
    name = "caproto"

    def __init__(self, timeout: float) -> None:
        from caproto.threading.client import Context

        super().__init__()
        self.ctx = Context(timeout=timeout)

    def _get_pvs(self, names: list[str], timeout: float) -> list[Any]:
        return self.ctx.get_pvs(*names, timeout=timeout)  # type: ignore[no-any-return]

    def cold_read(self, names: list[str], timeout: float) -> tuple[int, list[str]]:
        from caproto.threading.client import Batch

        pvs = self.ctx.get_pvs(*names, timeout=timeout)
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        connected = []
        for pv in pvs:
            try:
                pv.wait_for_connection(timeout=max(0.01, deadline - time.monotonic()))
                connected.append(pv)
            except Exception as exc:
                errors.append(f"{pv.name}: {exc!r}")
        done = Counter()
        lock = threading.Lock()
        finished = threading.Event()
        total = len(connected)

        def on_reply(response: Any) -> None:
            response.data[0]
            with lock:
                done.n += 1
                if done.n >= total:
                    finished.set()

        if total:
            with Batch(timeout=max(0.01, deadline - time.monotonic())) as batch:
                for pv in connected:
                    batch.read(pv, on_reply)
            if not finished.wait(max(0.01, deadline - time.monotonic())):
                errors.append(f"only {done.n} of {total} batch reads answered in time")
        else:
            finished.set()
        return done.n, errors[:3]

    def close(self) -> None:
        self.ctx.disconnect(wait=True)


class PyepicsClient(Client):
    name = "pyepics"

    def __init__(self, timeout: float) -> None:
        import epics

        self.epics = epics
        self.ca = epics.ca
        self.ca.initialize_libca()
        self._keep: list[Any] = []

    def connect(self, names: list[str], timeout: float) -> list[Any]:
        """Channel ids (for ``ca.get``)."""
        chids = [self.ca.create_channel(n, connect=False, auto_cb=False) for n in names]
        deadline = time.monotonic() + timeout
        for chid, name in zip(chids, names, strict=True):
            if not self.ca.connect_channel(chid, timeout=max(0.01, deadline - time.monotonic())):
                raise BenchFailure(f"pyepics: {name} did not connect")
        return chids

    def read(self, handle: Any, timeout: float) -> Any:
        value = self.ca.get(handle, timeout=timeout)
        if value is None:
            raise BenchFailure("pyepics: ca.get timed out")
        return value

    def connect_pv(self, name: str, timeout: float) -> Any:
        pv = self.epics.PV(name, auto_monitor=False)
        if not pv.wait_for_connection(timeout=timeout):
            raise BenchFailure(f"pyepics: {name} did not connect")
        return pv

    def write_wait(self, handle: Any, value: Any, timeout: float) -> None:
        status = handle.put(value, wait=True, timeout=timeout)
        if status is not None and status < 0:
            raise BenchFailure(f"pyepics: put with wait did not complete ({status})")

    def subscribe(self, names: list[str], counter: Counter, timeout: float) -> list[Any]:
        def callback(pvname: str | None = None, value: Any = None, **kws: Any) -> None:
            value[0] if hasattr(value, "__getitem__") else value
            counter.n += 1

        self._keep.append(callback)
        pvs = [self.epics.PV(n, callback=callback, auto_monitor=True) for n in names]
        deadline = time.monotonic() + timeout
        for pv in pvs:
            if not pv.wait_for_connection(timeout=max(0.01, deadline - time.monotonic())):
                raise BenchFailure(f"pyepics: {pv.pvname} did not connect")
        return pvs

    def cold_read(self, names: list[str], timeout: float) -> tuple[int, list[str]]:
        values = self.epics.caget_many(names, timeout=timeout, connection_timeout=timeout)
        missing = [n for n, v in zip(names, values, strict=True) if v is None]
        return len(names) - len(missing), [f"{n}: None" for n in missing[:3]]

    def close(self) -> None:
        self.ca.finalize_libca(maxtime=5.0)


def make_client(name: str, timeout: float) -> Client:
    if name == "caclient":
        return CaclientClient(timeout)
    if name == "caproto":
        return CaprotoClient(timeout)
    if name == "pyepics":
        return PyepicsClient(timeout)
    raise BenchFailure(f"unknown client {name!r}")


def _connect_one(client: Client, name: str, timeout: float, for_write: bool = False) -> Any:
    if for_write and isinstance(client, PyepicsClient):
        return client.connect_pv(name, timeout)
    return client.connect([name], timeout)[0]


# ----------------------------------------------------------------------------- scenarios
Result = tuple[dict[str, Any], dict[str, Any]]  # (metrics, info)


def sc_cold_connect(client: Client, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    t0 = time.perf_counter()
    n_ok, errors = client.cold_read(names, p["timeout"])
    elapsed = time.perf_counter() - t0
    if n_ok < len(names):
        raise BenchFailure(f"read {n_ok} of {len(names)} PVs in {elapsed:.1f}s; e.g. {'; '.join(errors)}")
    return {"rate": n_ok / elapsed, "elapsed_s": elapsed}, {"n": n_ok}


def _timed_loop(fn: Callable[[int], Any], n: int, warmup: int, warmup_s: float) -> float:
    warm_up(fn, warmup, warmup_s)
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - t0


def sc_seq_read(client: Client, p: dict[str, Any]) -> Result:
    handle = _connect_one(client, p["name"], p["timeout"])
    timeout = p["timeout"]
    elapsed = _timed_loop(lambda i: client.read(handle, timeout), p["n"], p["warmup"], warmup_seconds(p))
    return {"rate": p["n"] / elapsed, "latency_us": elapsed / p["n"] * 1e6}, {"n": p["n"]}


def sc_put_wait(client: Client, p: dict[str, Any]) -> Result:
    handle = _connect_one(client, p["name"], p["timeout"], for_write=True)
    timeout = p["timeout"]
    elapsed = _timed_loop(
        lambda i: client.write_wait(handle, float(i % 50), timeout), p["n"], p["warmup"], warmup_seconds(p)
    )
    return {"rate": p["n"] / elapsed, "latency_us": elapsed / p["n"] * 1e6}, {"n": p["n"]}


def sc_waveform(client: Client, p: dict[str, Any]) -> Result:
    import numpy as np

    handle = _connect_one(client, p["name"], p["timeout"])
    nelm: int = p["nelm"]
    timeout = p["timeout"]
    first = np.asarray(client.read(handle, timeout))  # warm-up, and check the content
    expected_last = p["expected_last"]
    if first.size != nelm or float(first[-1]) != expected_last or float(first[0]) != p["expected_first"]:
        raise BenchFailure(
            f"waveform content wrong: size {first.size} (want {nelm}), "
            f"first {first[:1]}, last {first[-1:]} (want {expected_last})"
        )
    del first
    warm_up(lambda i: client.read(handle, timeout), 0, warmup_seconds(p))
    n = p["n"]
    sizes = []
    t0 = time.perf_counter()
    for _ in range(n):
        data = client.read(handle, timeout)
        sizes.append(len(data))
        data[-1]
        del data
    elapsed = time.perf_counter() - t0
    if any(s != nelm for s in sizes):
        raise BenchFailure(f"short waveform read: sizes {sorted(set(sizes))}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mbps": n * nelm * 8 / elapsed / 1e6, "rate": n / elapsed, "peak_rss_mb": peak_mb}, {"n": n}


def measure_monitor_cpu(counter: Counter, n_pvs: int, p: dict[str, Any]) -> tuple[dict[str, float], int]:
    """CPU time per update of `counter` over ``p["duration"]``; returns (metrics, updates).

    Every PV sends its current value first: wait for `n_pvs` updates, then let
    the stream settle for ``p["settle"]`` seconds before measuring.
    """
    _wait_until(lambda: counter.n >= n_pvs, p["timeout"], "the first update of every PV")
    time.sleep(p["settle"])
    c0, n0, t0 = time.process_time(), counter.n, time.perf_counter()
    time.sleep(p["duration"])
    c1, n1, t1 = time.process_time(), counter.n, time.perf_counter()
    updates = n1 - n0
    if updates <= 0:
        raise BenchFailure("no updates received in the measurement window")
    cpu = c1 - c0
    metrics = {
        "us_per_update": cpu / updates * 1e6,
        "updates_per_s": updates / (t1 - t0),
        "cpu_pct": cpu / (t1 - t0) * 100,
    }
    return metrics, updates


def sc_monitor_cpu(client: Client, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    counter = Counter()
    handles = client.subscribe(names, counter, p["timeout"])
    metrics, updates = measure_monitor_cpu(counter, len(names), p)
    del handles
    return metrics, {"updates": updates, "offered_per_s": len(names) * p["hz"]}


def sc_monitor_rate(client: Client, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    counter = Counter()
    sampler = RssSampler()
    handles = client.subscribe(names, counter, p["timeout"])
    _wait_until(lambda: counter.n >= len(names), p["timeout"], "the first update of every PV")
    time.sleep(p["settle"])
    half = p["duration"] / 2
    rss_start = _rss()
    c0, n0, t0 = time.process_time(), counter.n, time.perf_counter()
    time.sleep(half)
    rss_mid = _rss()
    time.sleep(half)
    c1, n1, t1 = time.process_time(), counter.n, time.perf_counter()
    rss_end = _rss()
    peak = sampler.stop()
    updates = n1 - n0
    growth = rss_end - rss_mid
    bounded = growth <= max(0.10 * rss_mid, 32 * 2**20)
    del handles
    return (
        {
            "updates_per_s": updates / (t1 - t0),
            "peak_rss_mb": peak / 2**20,
            "rss_start_mb": rss_start / 2**20,
            "rss_mid_mb": rss_mid / 2**20,
            "rss_end_mb": rss_end / 2**20,
            "rss_bounded": bool(bounded),
            "cpu_pct": (c1 - c0) / (t1 - t0) * 100,
        },
        {"updates": updates, "offered_per_s": len(names) * p["hz"]},
    )


def sc_mem_per_pv(client: Client, p: dict[str, Any]) -> Result:
    names: list[str] = p["names"]
    warm: list[str] = p["warmup_names"]
    # Warm up: libraries loaded, threads and the circuit started.
    counter = Counter()
    keep = [client.subscribe(warm, counter, p["timeout"])]
    _wait_until(lambda: counter.n >= len(warm), p["timeout"], "warm-up updates")
    time.sleep(0.5)
    gc.collect()
    before = _rss()
    counter2 = Counter()
    keep.append(client.subscribe(names, counter2, p["timeout"]))
    _wait_until(lambda: counter2.n >= len(names), p["timeout"], "the first update of every PV")
    time.sleep(p["settle"])
    gc.collect()
    after = _rss()
    del keep
    return (
        {"bytes_per_pv": (after - before) / len(names), "rss_after_mb": after / 2**20},
        {"rss_before_mb": before / 2**20, "n": len(names)},
    )


SCENARIOS: dict[str, Callable[[Client, dict[str, Any]], Result]] = {
    "cold_connect": sc_cold_connect,
    "seq_read": sc_seq_read,
    "put_wait": sc_put_wait,
    "waveform": sc_waveform,
    "monitor_cpu": sc_monitor_cpu,
    "monitor_rate": sc_monitor_rate,
    "mem_per_pv": sc_mem_per_pv,
}


# ----------------------------------------------------------------------------- waveform setup
def setup_waveforms(p: dict[str, Any]) -> None:
    """Fill the big waveforms (with pyepics, the reference client) so NORD is full."""
    import numpy as np

    client = PyepicsClient(p["timeout"])
    for name, nelm in p["waveforms"]:
        pv = client.connect_pv(name, p["timeout"])
        data = np.arange(nelm, dtype=np.float64) * 0.5 + 1.0
        client.write_wait(pv, data, p["timeout"])
        back = client.read(client.connect([name], p["timeout"])[0], p["timeout"])
        if len(back) != nelm or float(back[-1]) != float(data[-1]):
            raise BenchFailure(f"setup: {name} read back {len(back)} elements, last {back[-1:]}")
    _emit(RESULT_MARK, {"metrics": {}, "info": {"setup": "ok"}})
    client.close()


# ----------------------------------------------------------------------------- main
def child_params(params_arg: str) -> dict[str, Any]:
    """The parameters (``@FILE`` or inline JSON), with the memory limit applied and the environment checked."""
    if params_arg.startswith("@"):
        with open(params_arg[1:], encoding="utf-8") as fh:
            params: dict[str, Any] = json.load(fh)
    else:
        params = json.loads(params_arg)
    limit = params.get("mem_limit")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    _check_loopback_env()
    return params


def run_as_child(main: Callable[[list[str]], None]) -> NoReturn:
    """Run ``main(sys.argv[1:])``; report any failure as a result line; leave with :func:`os._exit`."""
    code = 0
    try:
        main(sys.argv[1:])
    except MemoryError:
        _emit(RESULT_MARK, {"error": "out of memory (MemoryError)"})
        code = 3
    except BenchFailure as exc:
        _emit(RESULT_MARK, {"error": str(exc)})
        code = 3
    except BaseException as exc:
        traceback.print_exc()
        _emit(RESULT_MARK, {"error": f"{type(exc).__name__}: {exc}"[:300]})
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str]) -> None:
    scenario, client_name, params_arg = argv
    params = child_params(params_arg)
    if scenario == "setup_waveforms":
        setup_waveforms(params)
        return
    func = SCENARIOS[scenario]
    client = make_client(client_name, params["timeout"])
    metrics, info = func(client, params)
    info["rss_final_mb"] = _rss() / 2**20
    info["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _emit(RESULT_MARK, {"metrics": metrics, "info": info})
    t0 = time.perf_counter()
    client.close()
    _emit(CLOSE_MARK, {"close_s": time.perf_counter() - t0})


if __name__ == "__main__":
    run_as_child(main)


def timed_run(argv: list[str], timeout: float, **popen: Any) -> tuple[float, int, str, str]:
    """Run *argv* to its exit: ``(wall seconds, exit status, stdout, stderr)``.

    The wait is a blocking ``waitpid`` with a watchdog that kills the child
    after *timeout* (then :class:`subprocess.TimeoutExpired`).  subprocess's
    own ``timeout=`` waits by polling with sleeps that grow to 50 ms, which
    rounds a cold process's time up to the next of 63.5, 113.5, 163.5 ms...
    Pass ``stdout``/``stderr`` as for :class:`subprocess.Popen`; what was
    not piped comes back as ``""``.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, text=True, **popen)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    watchdog = threading.Timer(timeout, kill)
    watchdog.daemon = True
    watchdog.start()
    try:
        out, err = proc.communicate()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - t0
    if killed.is_set():
        raise subprocess.TimeoutExpired(argv, timeout)
    return elapsed, proc.returncode, out or "", err or ""
