"""Child side of ``python -m tools.bench_table``: one row, one client, one process.

Usage (normally only started by :mod:`tools.bench_table`)::

    python -m tools._bench_table_workers SCENARIO CLIENT @PARAMS_FILE

``CLIENT`` is one of :data:`tools._bench_peers.CLIENTS`, or one of the two
limits: ``floor`` (:class:`tools._bench_floor.RawChannel`, a single-threaded
blocking-socket loop) and ``memcpy`` (numpy copying the same number of
bytes).  The output protocol is :mod:`tools._bench_workers`' (one result
line, one close line, :func:`os._exit`); the client is not closed unless the
parameters say ``"close": true`` (closing is not measured here).

The cold-process rows start grandchildren (``python -c CODE``, or a
console script) one after the other and time each from start to exit; the
environment they inherit is this child's loopback-only one.
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools import _bench_workers as workers
from tools._bench_floor import RawChannel, memcpy_mbps
from tools._bench_peers import Peer, make_peer
from tools._bench_workers import (
    CLOSE_MARK,
    RESULT_MARK,
    BenchFailure,
    Counter,
    _emit,
    _rss,
    timed_run,
    warm_up,
    warmup_seconds,
)

Result = tuple[dict[str, Any], dict[str, Any]]  # (metrics, info)
Closing = list[Callable[[], None]]  # what to close once the result is out
LIMITS = ("floor", "memcpy")

#: One cold process per client: import, connect, read one scalar, exit.
COLD_CODE = {
    "caclient": (
        "from caclient import Context\n"
        "with Context() as ctx:\n"
        "    v = ctx.get_pvs({name!r})[0].read(timeout=5).tolist()[0]\n"
    ),
    "compat": "import compat as epics\nassert epics.caget({name!r}, timeout=5) is not None\n",
    "pyepics": "import epics\nassert epics.caget({name!r}, timeout=5) is not None\n",
    "caproto": (
        "from caproto.threading.client import Context\n"
        "pv, = Context().get_pvs({name!r})\n"
        "v = pv.read(timeout=5).data[0]\n"
    ),
    "cothread": "from cothread.catools import caget\nv = caget({name!r}, timeout=5)\n",
}
#: What each client's import row imports.
IMPORTS = {
    "caclient": "caclient",
    "compat": "compat",
    "pyepics": "epics",
    "caproto": "caproto.threading.client",
    "cothread": "cothread.catools",
}
#: The command-line caget of the clients that have one (console scripts, as a user runs them).
#: (caproto-get would otherwise leave a repeater daemon running; caclient's testing env already forbids one.)
CLI_SCRIPTS = {"caclient": ("caclient", "get"), "caproto": ("caproto-get", "--no-repeater")}


# ----------------------------------------------------------------------------- helpers
def _wait_until(peer: Peer | None, pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise BenchFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        if peer is None:
            time.sleep(0.02)
        else:
            peer.sleep(0.02)


def _loop(fn: Callable[[int], Any], n: int, warmup: int, warmup_s: float) -> tuple[float, float]:
    """Warm up (:func:`~tools._bench_workers.warm_up`), then run fn(i) n times; (wall, process CPU) seconds of the n."""
    warm_up(fn, warmup, warmup_s)
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    return time.perf_counter() - t0, time.process_time() - c0


def _round_trip_metrics(n: int, wall: float, cpu: float) -> dict[str, float]:
    return {"rate": n / wall, "cpu_us": cpu / n * 1e6, "latency_us": wall / n * 1e6}


def _time_process(argv: list[str], timeout: float) -> float:
    """Seconds from starting *argv* to its exit (its output goes to a file: a daemon it
    spawned could hold a pipe open long after it exited)."""
    with tempfile.TemporaryFile("w+") as out:
        elapsed, status, _, _ = timed_run(argv, timeout, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        if status != 0:
            out.seek(0)
            tail = " | ".join(out.read().strip().splitlines()[-2:])
            raise BenchFailure(f"{' '.join(argv[:3])}... exited with {status}: {tail}")
    return elapsed


def _script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise BenchFailure(f"no console script {name!r} next to {sys.executable}")
    return str(path)


# ----------------------------------------------------------------------------- round trips
def sc_seq_get(client: str, p: dict[str, Any], closing: Closing) -> Result:
    if client == "floor":
        ch = RawChannel(p["name"], p["timeout"])
        wall, cpu = _loop(lambda i: ch.read(), p["n"], p["warmup"], warmup_seconds(p))
        closing.append(ch.close)
    else:
        peer = make_peer(client, p["timeout"])
        (h,) = peer.open([p["name"]])
        wall, cpu = _loop(lambda i: peer.get(h), p["n"], p["warmup"], warmup_seconds(p))
        closing.append(peer.close)
    return _round_trip_metrics(p["n"], wall, cpu), {"n": p["n"]}


def sc_put_wait(client: str, p: dict[str, Any], closing: Closing) -> Result:
    if client == "floor":
        ch = RawChannel(p["name"], p["timeout"])
        wall, cpu = _loop(lambda i: ch.write_wait(float(i % 50)), p["n"], p["warmup"], warmup_seconds(p))
        closing.append(ch.close)
    else:
        peer = make_peer(client, p["timeout"])
        (h,) = peer.open([p["name"]])
        wall, cpu = _loop(lambda i: peer.put_wait(h, float(i % 50)), p["n"], p["warmup"], warmup_seconds(p))
        closing.append(peer.close)
    return _round_trip_metrics(p["n"], wall, cpu), {"n": p["n"]}


def sc_threads_get(client: str, p: dict[str, Any], closing: Closing) -> Result:
    names: list[str] = p["names"]
    reads: int = p["reads"]
    if client == "floor":
        chans = [RawChannel(n, p["timeout"]) for n in names]
        closing.extend(ch.close for ch in chans)
        peer = Peer(p["timeout"])  # (plain threads)

        def body(i: int) -> None:
            for _ in range(reads):
                chans[i].read()

        warm_up(lambda i: chans[i % len(chans)].read(), len(chans), warmup_seconds(p))

    else:
        peer = make_peer(client, p["timeout"])
        closing.append(peer.close)
        handles = peer.open(names)
        warm_up(lambda i: peer.get(handles[i % len(handles)]), len(handles), warmup_seconds(p))

        def body(i: int) -> None:
            h = handles[i]
            for _ in range(reads):
                peer.get(h)

    c0 = time.process_time()
    elapsed = peer.run_parallel(len(names), body)
    cpu = time.process_time() - c0
    total = reads * len(names)
    return {"rate": total / elapsed, "cpu_us": cpu / total * 1e6}, {"threads": len(names), "reads": total}


def sc_waveform(client: str, p: dict[str, Any], closing: Closing) -> Result:
    """MB/s of the median read: one slow read (a page-compaction stall, another process) does not decide the row."""
    nelm, n = p["nelm"], p["n"]
    if client == "memcpy":
        return memcpy_mbps(nelm, max(3, n)), {"n": max(3, n)}
    times: list[float] = []
    if client == "floor":
        ch = RawChannel(p["name"], p["timeout"])
        into = memoryview(bytearray(nelm * 8 + 64))
        warm_up(lambda i: ch.read_array(nelm, into), 1, warmup_seconds(p))
        for _ in range(n):
            t0 = time.perf_counter()
            if ch.read_array(nelm, into) < nelm * 8:
                raise BenchFailure("short array")
            times.append(time.perf_counter() - t0)
        closing.append(ch.close)
    else:
        peer = make_peer(client, p["timeout"])
        (h,) = peer.open([p["name"]])
        first = _get_array(peer, h)
        if len(first) != nelm or float(first[-1]) != p["expected_last"]:
            raise BenchFailure(f"waveform content wrong: {len(first)} elements, last {first[-1:]}")
        del first
        warm_up(lambda i: _get_array(peer, h), 0, warmup_seconds(p))
        for _ in range(n):
            t0 = time.perf_counter()
            value = _get_array(peer, h)
            if len(value) != nelm:
                raise BenchFailure(f"short waveform read: {len(value)}")
            value[-1]
            times.append(time.perf_counter() - t0)
            del value
        closing.append(peer.close)
    median = statistics.median(times)
    return {"mbps": nelm * 8 / median / 1e6, "rate": 1 / median}, {"n": n, "worst_mbps": nelm * 8 / max(times) / 1e6}


def _get_array(peer: Peer, handle: Any) -> Any:
    if peer.name in ("caclient", "caproto"):
        return handle.read(timeout=peer.timeout).data  # the whole array, not data[0]
    return peer.get(handle)


# ----------------------------------------------------------------------------- cold processes
def _warm(argv: list[str], timeout: float) -> None:
    """Run *argv* once untimed, as an installed program has run before: its
    bytecode is written (see ``_child_env``) and the page cache is warm."""
    _time_process(argv, timeout)


def sc_cold_process(client: str, p: dict[str, Any], closing: Closing) -> Result:
    code = COLD_CODE[client].format(name=p["name"])
    _warm([sys.executable, "-c", code], p["timeout"])
    times = [_time_process([sys.executable, "-c", code], p["timeout"]) for _ in range(p["runs"])]
    return {"seconds": statistics.median(times), "min_s": min(times)}, {"runs": [round(t, 4) for t in times]}


def sc_cli_caget(client: str, p: dict[str, Any], closing: Closing) -> Result:
    script, *args = CLI_SCRIPTS[client]
    argv = [_script(script), *args, p["name"]]
    _warm(argv, p["timeout"])
    times = [_time_process(argv, p["timeout"]) for _ in range(p["runs"])]
    return {"seconds": statistics.median(times), "min_s": min(times)}, {"runs": [round(t, 4) for t in times]}


def sc_import_time(client: str, p: dict[str, Any], closing: Closing) -> Result:
    """Wall time of ``python -c 'import X'`` less that of ``python -c 'pass'`` (best of each)."""
    base, full = [], []
    _warm([sys.executable, "-c", f"import {IMPORTS[client]}"], p["timeout"])
    for _ in range(p["runs"]):
        base.append(_time_process([sys.executable, "-c", "pass"], p["timeout"]))
        full.append(_time_process([sys.executable, "-c", f"import {IMPORTS[client]}"], p["timeout"]))
    return {"ms": (min(full) - min(base)) * 1e3}, {"interpreter_ms": min(base) * 1e3}


# ----------------------------------------------------------------------------- bulk
def sc_cold_connect(client: str, p: dict[str, Any], closing: Closing) -> Result:
    peer = make_peer(client, p["timeout"])
    names: list[str] = p["names"]
    t0 = time.perf_counter()
    got = peer.get_many(names)
    elapsed = time.perf_counter() - t0
    if got < len(names):
        raise BenchFailure(f"read {got} of {len(names)} PVs in {elapsed:.1f}s")
    closing.append(peer.close)
    return {"rate": got / elapsed, "elapsed_s": elapsed}, {"n": got}


def sc_get_many(client: str, p: dict[str, Any], closing: Closing) -> Result:
    peer = make_peer(client, p["timeout"])
    names: list[str] = p["names"]
    times = []
    for _ in range(p["rounds"]):
        t0 = time.perf_counter()
        got = peer.get_many(names)
        times.append(time.perf_counter() - t0)
        if got < len(names):
            raise BenchFailure(f"{got} of {len(names)} values came")
    closing.append(peer.close)
    later = sum(times[1:]) / (len(times) - 1)
    return {"later_ms": later * 1e3, "rate": len(names) / later}, {"first_ms": times[0] * 1e3}


def sc_put_many(client: str, p: dict[str, Any], closing: Closing) -> Result:
    peer = make_peer(client, p["timeout"])
    names: list[str] = p["names"]
    if peer.put_many(names, [0.5] * len(names)) < len(names):  # connects
        raise BenchFailure("the first put_many did not complete")
    t0 = time.perf_counter()
    for k in range(p["rounds"]):
        done = peer.put_many(names, [float(k)] * len(names))
        if done < len(names):
            raise BenchFailure(f"{done} of {len(names)} puts completed")
    elapsed = time.perf_counter() - t0
    closing.append(peer.close)
    puts = p["rounds"] * len(names)
    return {"rate": puts / elapsed, "round_ms": elapsed / p["rounds"] * 1e3}, {"n": puts}


# ----------------------------------------------------------------------------- monitors and memory
def sc_monitor(client: str, p: dict[str, Any], closing: Closing) -> Result:
    peer = make_peer(client, p["timeout"])
    closing.append(peer.close)
    names: list[str] = p["names"]
    counter = Counter()
    keep = peer.subscribe(names, counter)
    _wait_until(peer, lambda: counter.n >= len(names), p["timeout"], "the first update of every PV")
    peer.sleep(p["settle"])
    c0, n0, t0 = time.process_time(), counter.n, time.perf_counter()
    peer.sleep(p["duration"])
    c1, n1, t1 = time.process_time(), counter.n, time.perf_counter()
    updates = n1 - n0
    if updates <= 0:
        raise BenchFailure("no updates in the measurement window")
    del keep
    metrics = {
        "us_per_update": (c1 - c0) / updates * 1e6,
        "updates_per_s": updates / (t1 - t0),
        "cpu_pct": (c1 - c0) / (t1 - t0) * 100,
    }
    return metrics, {"offered_per_s": len(names) * p["hz"], "updates": updates}


def sc_mem_per_pv(client: str, p: dict[str, Any], closing: Closing) -> Result:
    peer = make_peer(client, p["timeout"])
    closing.append(peer.close)
    warm = Counter()
    keep = [peer.subscribe(p["warmup_names"], warm)]
    _wait_until(peer, lambda: warm.n >= len(p["warmup_names"]), p["timeout"], "warm-up updates")
    peer.sleep(0.5)
    gc.collect()
    before = _rss()
    counter = Counter()
    names: list[str] = p["names"]
    keep.append(peer.subscribe(names, counter))
    _wait_until(peer, lambda: counter.n >= len(names), p["timeout"], "the first update of every PV")
    peer.sleep(p["settle"])
    gc.collect()
    after = _rss()
    del keep
    return (
        {"bytes_per_pv": (after - before) / len(names), "rss_after_mb": after / 2**20},
        {"rss_before_mb": before / 2**20, "n": len(names)},
    )


SCENARIOS: dict[str, Callable[[str, dict[str, Any], Closing], Result]] = {
    "seq_get": sc_seq_get,
    "put_wait": sc_put_wait,
    "threads_get": sc_threads_get,
    "waveform": sc_waveform,
    "cold_process": sc_cold_process,
    "cli_caget": sc_cli_caget,
    "import_time": sc_import_time,
    "cold_connect": sc_cold_connect,
    "get_many": sc_get_many,
    "put_many": sc_put_many,
    "monitor": sc_monitor,
    "mem_per_pv": sc_mem_per_pv,
}


def main(argv: list[str]) -> None:
    scenario, client, params_arg = argv
    params = workers.child_params(params_arg)
    if scenario == "setup_waveforms":
        workers.setup_waveforms(params)
        return
    closing: Closing = []
    metrics, info = SCENARIOS[scenario](client, params, closing)
    _emit(RESULT_MARK, {"metrics": metrics, "info": info})
    t0 = time.perf_counter()
    if params.get("close", False):
        for close in closing:
            close()
    # Otherwise the client is left open: closing is not measured here, and pyepics or caproto
    # with 10k monitored PVs can take longer to close than to measure; os._exit ends it all.
    _emit(CLOSE_MARK, {"close_s": time.perf_counter() - t0})


if __name__ == "__main__":
    workers.run_as_child(main)
