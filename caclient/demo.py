"""The ``caclient demo`` walk-through on a private loopback IOC.

Starts caproto's pure-Python server (from :mod:`caclient.testing`) on
127.0.0.1 with a free port and loopback-only settings, then connects, reads,
writes, monitors and bulk-reads, printing what it did and how long it took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ._context import Context


@contextmanager
def _step(title: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    print(f"  [{(time.perf_counter() - t0) * 1e3:8.1f} ms] {title}", flush=True)


def run_demo(n_bulk: int = 1000) -> int:
    """Run the demo; return a process exit code."""
    from .testing import CaprotoIOC

    print(f"Starting a caproto IOC on 127.0.0.1 with {n_bulk} extra PVs (loopback only) ...", flush=True)
    with CaprotoIOC(n_numbered=n_bulk) as ioc:
        ioc.start()
        print(f"IOC serving prefix {ioc.prefix!r} on port {ioc.port}", flush=True)
        with Context(env=ioc.env, timeout=5.0) as ctx:
            ai, ao, counter = ctx.get_pvs(ioc.pv("ai"), ioc.pv("ao"), ioc.pv("counter"))
            with _step(f"connect {ai.name}"):
                ai.wait_for_connection()
            with _step("read value"):
                value = ai.read().data[0]
            print(f"             value = {value}")
            with _step("read with time metadata"):
                md = ai.read(data_type="time").metadata
            print(f"             status={md.status} severity={md.severity} timestamp={md.timestamp:.6f}")
            with _step("read with control metadata"):
                md = ai.read(data_type="control").metadata
            print(
                f"             units={md.units!r} precision={md.precision} "
                f"limits=({md.lower_ctrl_limit}, {md.upper_ctrl_limit})"
            )
            with _step(f"write {ao.name} = 42.5 and wait for completion"):
                ao.write(42.5, wait=True)
            print(f"             read back {ao.read().data[0]}")
            got: list[float] = []
            three = threading.Event()

            def on_update(sub: object, resp: object) -> None:
                got.append(float(resp.data[0]))  # type: ignore[attr-defined]
                if len(got) >= 3:
                    three.set()

            sub = counter.subscribe(data_type="time")
            with _step(f"monitor {counter.name} for 3 updates"):
                sub.add_callback(on_update)
                if not three.wait(10.0):
                    print("             monitor did not deliver 3 updates within 10 s")
                    return 1
            sub.clear()
            print(f"             updates: {got[:3]}")
            names = [ioc.pv(f"n{i}") for i in range(n_bulk)]
            with _step(f"bulk read of {n_bulk} PVs (connect + read, one deadline)"):
                results = ctx.read_many(names, timeout=30.0)
            failed = [r for r in results if isinstance(r, Exception)]
            print(f"             {len(results) - len(failed)} values, {len(failed)} failures")
            with _step(f"bulk read of the same {n_bulk} PVs again (connected)"):
                results = ctx.read_many(names, timeout=30.0)
            if failed:
                return 1
        print(repr(ctx))
    print("demo finished OK")
    return 0
