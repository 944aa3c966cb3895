"""Benchmark threads and processes: compat against pyepics and caproto's threading client.

Usage::

    python -m tools.bench_threads [--quick] [--json out.json] [--timeout S]

An EPICS C soft IOC (the test database plus 1000 numbered ``ai`` records)
runs on the loopback interface.  Each scenario runs once per client in a
fresh child process with the IOC's loopback-only environment and a
timeout; a crash, hang or exception is reported as FAIL with its reason.

Scenarios
---------
threads_get
    8 threads, each reading its own PV over the network (no monitor) as
    fast as it can for a fixed number of reads; total reads per second.
cathreads_first
    8 ``CAThread``s started before the main thread made any CA call, each
    doing caget and PV.get of 10 PVs; OK when every value is right.
capool_<method>
    A ``CAPool`` of 4 processes (start method fork, forkserver or spawn),
    4 tasks each reading 1000 PVs with caget_many; seconds for the map.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARK = "BENCH-THREADS-RESULT "
N_NUMBERED = 1000
SCENARIOS = ("threads_get", "cathreads_first", "capool_fork", "capool_forkserver", "capool_spawn")
CLIENTS = {
    "threads_get": ("compat", "pyepics", "caproto"),
    "cathreads_first": ("compat", "pyepics"),
    "capool_fork": ("compat", "pyepics"),
    "capool_forkserver": ("compat", "pyepics"),
    "capool_spawn": ("compat", "pyepics"),
}


# -- the child side ---------------------------------------------------------------------------------
def _facade(client: str) -> Any:
    if client == "compat":
        import compat

        return compat
    import epics

    return epics


def _threads_get(client: str, prefix: str, reads: int) -> dict[str, Any]:
    names = [f"{prefix}n{i}" for i in range(8)]
    barrier = threading.Barrier(9)
    errors: list[BaseException] = []
    read_once: Callable[[Any], None]
    if client == "caproto":
        from caproto.threading.client import Context

        ctx = Context()
        pvs = ctx.get_pvs(*names)

        def read_once(pv: Any) -> None:
            pv.read(timeout=10)
    else:
        epics = _facade(client)
        pvs = [epics.PV(name, auto_monitor=False) for name in names]

        def read_once(pv: Any) -> None:
            if pv.get(use_monitor=False, timeout=10) is None:
                raise RuntimeError("a read failed")

    for pv in pvs:
        pv.wait_for_connection(timeout=10)

    def reader(i: int) -> None:
        pv = pvs[i]
        barrier.wait()
        for _ in range(reads):
            read_once(pv)

    def body(i: int) -> None:
        try:
            reader(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    barrier.wait()
    start = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return {"value": 8 * reads / elapsed, "unit": "reads/s"}


def _cathreads_first(client: str, prefix: str) -> dict[str, Any]:
    epics = _facade(client)
    from importlib import import_module

    ca = import_module(epics.__name__ + ".ca")
    names = [f"{prefix}n{i}" for i in range(10)]
    results: list[Any] = []

    def work() -> None:
        vals = [epics.caget(name, timeout=5) for name in names]
        vals += [epics.PV(name).get(timeout=5) for name in names]
        results.append(vals)

    threads = [ca.CAThread(target=work) for _ in range(8)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    elapsed = time.perf_counter() - start
    good = sum(1 for vals in results if all(v is not None for v in vals))
    if good != 8:
        raise RuntimeError(f"only {good} of 8 threads read every value")
    return {"value": elapsed, "unit": "s"}


def _pool_task(args: tuple[str, str, int]) -> int:
    client, prefix, n = args
    epics = _facade(client)
    values = epics.caget_many([f"{prefix}n{i}" for i in range(n)], connection_timeout=10)
    return sum(v is not None for v in values)


def _capool(client: str, prefix: str, method: str, n: int) -> dict[str, Any]:
    import multiprocessing

    epics = _facade(client)
    ctx = multiprocessing.get_context(method)
    start = time.perf_counter()
    if client == "compat":
        pool = epics.CAPool(4, context=ctx)
    else:
        multiprocessing.set_start_method(method, force=True)  # (pyepics' CAPool uses the default one)
        pool = epics.CAPool(4)
    with pool:
        counts = pool.map(_pool_task, [(client, prefix, n)] * 4, chunksize=1)
        pool.close()
        pool.join()
    elapsed = time.perf_counter() - start
    if counts != [n] * 4:
        raise RuntimeError(f"reads: {counts}")
    return {"value": elapsed, "unit": "s"}


def child_main(scenario: str, client: str, prefix: str, quick: bool) -> None:
    if scenario == "threads_get":
        out = _threads_get(client, prefix, 200 if quick else 2000)
    elif scenario == "cathreads_first":
        out = _cathreads_first(client, prefix)
    else:
        out = _capool(client, prefix, scenario.split("_", 1)[1], 200 if quick else N_NUMBERED)
    print(MARK + json.dumps(out), flush=True)
    sys.stdout.flush()
    os._exit(0)  # (pyepics may hang at exit after a failure elsewhere; the result is out)


# -- the parent side --------------------------------------------------------------------------------
def run_child(
    scenario: str, client: str, env: dict[str, str], prefix: str, quick: bool, timeout: float
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tools.bench_threads", "--child", scenario, client, prefix]
    if quick:
        cmd.append("--quick")
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s (hang)"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return {"ok": True, **json.loads(line[len(MARK) :])}
    text = (proc.stderr or proc.stdout).strip().splitlines()
    why = text[-1] if text else ""
    if proc.returncode < 0:
        why = f"killed by signal {-proc.returncode} {why}"
    return {"ok": False, "error": f"exit {proc.returncode}: {why[:160]}"}


def render(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = [("scenario", "compat", "pyepics", "caproto", "compat advantage")]
    for scenario, by_client in results.items():
        cells = []
        for client in ("compat", "pyepics", "caproto"):
            r = by_client.get(client)
            if r is None:
                cells.append("-")
            elif not r["ok"]:
                cells.append("FAIL: " + r["error"])
            elif r["unit"] == "reads/s":
                cells.append(f"{r['value']:,.0f} reads/s")
            else:
                cells.append(f"OK {r['value']:.2f} s")
        ours = by_client.get("compat", {})
        adv = []
        for client in ("pyepics", "caproto"):
            r = by_client.get(client)
            if r is None or not ours.get("ok"):
                continue
            if not r["ok"]:
                adv.append(f"{client} fails")
            elif ours["unit"] == "reads/s":
                adv.append(f"{ours['value'] / r['value']:.1f}x {client}")
            else:
                adv.append(f"{r['value'] / ours['value']:.1f}x {client}")
        rows.append((scenario, *cells, ", ".join(adv)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reads and PVs")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per child process")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--child", nargs=3, metavar=("SCENARIO", "CLIENT", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(*args.child, quick=args.quick)
        return 0

    sys.path.insert(0, str(ROOT))
    from caclient.testing import TEST_DB_PATH, EpicsIOC, apply_loopback_env, loopback_env, make_numbered_db

    apply_loopback_env(loopback_env())
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        db = make_numbered_db(os.path.join(tmp, "numbered.db"), N_NUMBERED, kind="ai")
        ioc = EpicsIOC([(TEST_DB_PATH, None), (db, None)]).start(timeout=60)
        try:
            env = ioc.env
            env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            for scenario in args.only or SCENARIOS:
                results[scenario] = {}
                for client in CLIENTS[scenario]:
                    r = run_child(scenario, client, env, ioc.prefix, args.quick, args.timeout)
                    results[scenario][client] = r
                    print(f"{scenario:18s} {client:8s} {r}", file=sys.stderr, flush=True)
        finally:
            ioc.stop()
    print(render(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
