"""Time from an IOC coming back to the first monitor update, caclient vs pyepics.

Usage: ``python -m tools.reconnect_time [--restarts N]``.  Starts the EPICS C
IOC on loopback, runs one client of each kind in its own process (each
monitoring the same 10 Hz PV and printing a wall-clock timestamp per update),
stops the IOC, restarts it on the same port, and reports for each client how
long after the restarted IOC was serving the first update arrived.  The same
restarts are seen by both clients in one run.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

from caclient._repeater import Repeater
from caclient.testing import EpicsIOC

_CLIENTS = {
    "caclient": (
        "import sys, time\n"
        "from caclient import Context\n"
        "ctx = Context(timeout=5)\n"
        "pv, = ctx.get_pvs(sys.argv[1])\n"
        "pv.subscribe().add_callback(lambda s, r: print(time.time(), flush=True))\n"
        "sys.stdin.read()\n"
        "ctx.close()\n"
    ),
    "pyepics": (
        "import sys, time, epics\n"
        "pv = epics.PV(sys.argv[1], callback=lambda **kw: print(time.time(), flush=True))\n"
        "sys.stdin.read()\n"
    ),
}


def _reader(name: str, proc: subprocess.Popen[str], out: queue.Queue[tuple[str, float]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            out.put((name, float(line)))
        except ValueError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument(
        "--repeater", action="store_true", help="run a CA repeater, so both clients see the IOC's beacons"
    )
    args = parser.parse_args(argv)
    ioc = EpicsIOC().start()
    repeater = None
    if args.repeater:
        repeater = Repeater(port=int(ioc.env["EPICS_CA_REPEATER_PORT"]))
        repeater.start()
    port = ioc.port
    name = ioc.pv("counter")
    env = {**os.environ, **ioc.env, "PYTHONPATH": os.pathsep.join(sys.path)}
    updates: queue.Queue[tuple[str, float]] = queue.Queue()
    procs = {}
    for client, code in _CLIENTS.items():
        proc = subprocess.Popen(
            [sys.executable, "-c", code, name],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs[client] = proc
        threading.Thread(target=_reader, args=(client, proc, updates), daemon=True).start()
    delays: dict[str, list[float]] = {c: [] for c in procs}
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while seen != set(procs) and time.monotonic() < deadline:
            seen.add(updates.get(timeout=30)[0])
        for i in range(args.restarts):
            ioc.stop()
            time.sleep(1.0)  # the IOC stays down for a second
            while not updates.empty():
                updates.get_nowait()
            ioc.start(port=port)
            up = time.time()
            pending = set(procs)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                try:
                    client, stamp = updates.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if client in pending and stamp >= up:
                    delays[client].append(stamp - up)
                    pending.discard(client)
            for client in pending:
                delays[client].append(float("nan"))
            print(f"restart {i + 1}: " + ", ".join(f"{c} {d[-1]:.3f} s" for c, d in delays.items()), flush=True)
    finally:
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        ioc.stop()
        if repeater is not None:
            repeater.close()
    print("median time from IOC serving again to first update:")
    for client, values in delays.items():
        print(f"  {client:9s} {statistics.median(values):.3f} s  (all: {', '.join(f'{v:.3f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
