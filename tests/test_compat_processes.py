"""compat in child processes: CAProcess, CAPool and plain multiprocessing, under every start method.

Each test keeps a monitor running in the parent and checks that it delivers
while the children work and after they are gone, and that the parent's
Context is the same one throughout.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import queue
import time
from typing import Any

import compat_mp_children as children
import pytest
from compat_support import cioc_fixture, epics_fresh_ca_fixture  # noqa: F401

from caclient.testing import IOCHandle

METHODS = [m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]


@pytest.fixture(scope="module", autouse=True)
def _forkserver_started() -> None:
    # The fork server (and its socket) lives for the rest of the session: start it before the
    # per-test leak check looks at this process's sockets.
    if "forkserver" in METHODS:
        multiprocessing.forkserver.ensure_running()


class ParentMonitor:
    """A monitor on the 10 Hz counter kept by the parent; counts the updates it delivers."""

    def __init__(self, epics: Any, ioc: IOCHandle) -> None:
        self.updates: queue.Queue[float] = queue.Queue()
        self.pv = epics.PV(ioc.pv("counter"), callback=lambda value=None, **kw: self.updates.put(value))
        self.updates.get(timeout=5)
        self.context = epics._runtime.context()

    def count(self) -> int:
        n = 0
        while True:
            try:
                self.updates.get_nowait()
            except queue.Empty:
                return n
            n += 1

    def still_delivers(self, epics: Any) -> None:
        self.count()
        assert self.updates.get(timeout=3) is not None
        assert self.updates.get(timeout=3) is not None
        assert epics._runtime.context() is self.context

    def close(self) -> None:
        self.pv.clear_callbacks()


def _check(results: list[Any], n: int) -> None:
    assert len(results) == n
    for result in results:
        assert result[0] != "error", result
        _pid, ai, put, (back, longin), _i = result
        assert (ai, put, longin) == (3.5, 1, 42)
        assert isinstance(back, float)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_caprocess(method: str, epics: Any, cioc: IOCHandle) -> None:
    mon = ParentMonitor(epics, cioc)
    ctx = multiprocessing.get_context(method)
    out = ctx.Queue()
    procs = [
        epics.CAProcess(target=children.to_queue, args=(cioc.env, cioc.prefix, i, out), mp_context=ctx)
        for i in range(2)
    ]
    mon.count()
    for proc in procs:
        proc.start()
    results = [out.get(timeout=60) for _ in procs]
    during = mon.count()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    _check(results, 2)
    assert during >= 1
    mon.still_delivers(epics)
    assert epics.caget(cioc.pv("ai")) == 3.5
    out.close()
    out.join_thread()
    mon.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_capool(method: str, epics: Any, cioc: IOCHandle) -> None:
    mon = ParentMonitor(epics, cioc)
    chid = epics.ca.create_channel(cioc.pv("longin"), connect=True)  # the parent used the ca layer too
    mon.count()
    with epics.CAPool(2, initializer=children.pool_init, initargs=(cioc.env,),
                      context=multiprocessing.get_context(method)) as pool:  # fmt: skip
        results = pool.starmap(children.read_write, [(cioc.env, cioc.prefix, i) for i in range(6)], chunksize=1)
        counts = pool.starmap(children.read_many, [(cioc.prefix, ["ai", "longin", "stringin", "mbbi"])] * 4)
        pool.close()
        pool.join()
    during = mon.count()
    _check(results, 6)
    assert [n for _, n in counts] == [4] * 4
    assert during >= 1
    mon.still_delivers(epics)
    assert epics.ca.get(chid) == 42
    mon.close()


@pytest.mark.timeout(120)
def test_plain_fork_after_ca_use(epics: Any, cioc: IOCHandle) -> None:
    """A plain multiprocessing.Process and Pool, forked after the parent used CA, work."""
    if "fork" not in METHODS:
        pytest.skip("needs fork")
    mon = ParentMonitor(epics, cioc)
    chid = epics.ca.create_channel(cioc.pv("longin"), connect=True)
    assert epics.caget(cioc.pv("ai")) == 3.5
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=children.to_queue, args=(cioc.env, cioc.prefix, 7, out))
    mon.count()
    proc.start()
    result = out.get(timeout=60)
    proc.join(30)
    assert proc.exitcode == 0
    with ctx.Pool(2) as pool:
        results = pool.starmap(children.read_write, [(cioc.env, cioc.prefix, i) for i in range(4)])
        pool.close()
        pool.join()
    during = mon.count()
    _check([result, *results], 5)
    assert during >= 1
    mon.still_delivers(epics)
    assert epics.ca.get(chid) == 42
    out.close()
    out.join_thread()
    mon.close()


@pytest.mark.timeout(60)
def test_inherited_chid_works_in_forked_child(epics: Any, cioc: IOCHandle) -> None:
    """A chid made before fork() reads in the child, through the child's own engine."""
    if "fork" not in METHODS:
        pytest.skip("needs fork")
    chid = epics.ca.create_channel(cioc.pv("longin"), connect=True)
    assert epics.ca.get(chid) == 42
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()

    def child() -> None:
        try:
            out.put(
                (
                    epics._runtime.RUNTIME.engine_context is None,
                    epics.ca.get(chid),
                    epics.ca.current_context() is not None,
                )
            )
        except BaseException as exc:
            out.put(repr(exc))

    proc = ctx.Process(target=child)
    proc.start()
    got = out.get(timeout=30)
    proc.join(30)
    assert got == (True, 42, True)
    assert epics.ca.get(chid) == 42
    out.close()
    out.join_thread()
    time.sleep(0)
