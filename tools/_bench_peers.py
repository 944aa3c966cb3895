"""The five clients of ``python -m tools.bench_table``, each behind the same small interface.

Each client is used the way its documentation suggests for the job:

* ``caclient`` - the engine: ``Context.get_pvs``, ``PV.read/write/subscribe``,
  ``Context.read_many/write_many``;
* ``compat``   - ``import compat as epics``: ``PV(auto_monitor=False).get(use_monitor=False)``,
  ``PV.put(wait=True)``, ``caget_many``, ``caput_many(wait='all')``, ``PV(callback=...)``;
* ``pyepics``  - ``import epics``, the same calls as compat;
* ``caproto``  - ``caproto.threading.client``: ``PV.read/write/subscribe``, ``Batch``;
* ``cothread`` - ``cothread.catools``: ``caget``, ``caput(wait=True)``,
  ``camonitor``, lists of names for the bulk calls; its "threads" are
  cothreads, and waiting is ``cothread.Sleep`` so that callbacks run.

The engine-level clients reuse :mod:`tools._bench_workers`, the pyepics-style
ones :mod:`tools._bench_compat_workers`.  Nothing here measures: the
scenarios in :mod:`tools._bench_table_workers` do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tools._bench_compat_workers import Facade
from tools._bench_workers import BenchFailure, CaclientClient, CaprotoClient, Counter

CLIENTS = ("caclient", "compat", "pyepics", "caproto", "cothread")


class Peer:
    """One client: open/get/put/bulk/subscribe, plus how it waits and runs threads."""

    name = ""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def open(self, names: list[str]) -> list[Any]:
        """Connected handles for single-PV reads and writes."""
        raise NotImplementedError

    def get(self, handle: Any) -> Any:
        """One network read (no monitor); the value."""
        raise NotImplementedError

    def put_wait(self, handle: Any, value: float) -> None:
        """One write that waits for the server's completion."""
        raise NotImplementedError

    def get_many(self, names: list[str]) -> int:
        """Read every name at once (connecting what is not connected); how many values came."""
        raise NotImplementedError

    def put_many(self, names: list[str], values: list[float]) -> int:
        """Write every name at once and wait for every completion; how many completed."""
        raise NotImplementedError

    def subscribe(self, names: list[str], counter: Counter) -> Any:
        """Monitor every name with a callback that touches the value and counts."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def run_parallel(self, n: int, body: Callable[[int], None]) -> float:
        """Run ``body(i)`` for i < n at once, each on its own thread; seconds from start to the last end."""
        barrier = threading.Barrier(n + 1)
        errors: list[BaseException] = []

        def run(i: int) -> None:
            barrier.wait()
            try:
                body(i)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,), name=f"bench-{i}") for i in range(n)]
        for th in threads:
            th.start()
        barrier.wait()
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return elapsed

    def close(self) -> None:
        pass


class EnginePeer(Peer):
    name = "caclient"

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self.client = CaclientClient(timeout)

    def open(self, names: list[str]) -> list[Any]:
        return self.client.connect(names, self.timeout)

    def get(self, handle: Any) -> Any:
        return handle.read(timeout=self.timeout).data[0]

    def put_wait(self, handle: Any, value: float) -> None:
        handle.write(value, wait=True, timeout=self.timeout)

    def get_many(self, names: list[str]) -> int:
        return self.client.cold_read(names, self.timeout)[0]

    def put_many(self, names: list[str], values: list[float]) -> int:
        results = self.client.ctx.write_many(names, values, wait=True, timeout=self.timeout)
        return sum(not isinstance(r, BaseException) for r in results)

    def subscribe(self, names: list[str], counter: Counter) -> Any:
        return self.client.subscribe(names, counter, self.timeout)

    def close(self) -> None:
        self.client.close()


class CaprotoPeer(EnginePeer):
    name = "caproto"

    def __init__(self, timeout: float) -> None:
        Peer.__init__(self, timeout)
        self.client = CaprotoClient(timeout)  # type: ignore[assignment]
        self._pvs: dict[str, Any] = {}

    def _connected(self, names: list[str]) -> list[Any]:
        missing = [n for n in names if n not in self._pvs]
        if missing:
            self._pvs.update(zip(missing, self.client.connect(missing, self.timeout), strict=True))
        return [self._pvs[n] for n in names]

    def put_many(self, names: list[str], values: list[float]) -> int:
        from caproto.threading.client import Batch

        pvs = self._connected(names)
        done = Counter()
        lock = threading.Lock()
        finished = threading.Event()

        def on_reply(response: Any) -> None:
            with lock:
                done.n += 1
                if done.n >= len(pvs):
                    finished.set()

        with Batch(timeout=self.timeout) as batch:
            for pv, value in zip(pvs, values, strict=True):
                batch.write(pv, value, callback=on_reply)
        finished.wait(self.timeout)
        return done.n


class FacadePeer(Peer):
    """compat and pyepics, through the same pyepics calls."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(timeout)
        self.name = name
        self.facade = Facade(name)
        self._keep: list[Any] = []

    def open(self, names: list[str]) -> list[Any]:
        pvs = [self.facade.pv(n, auto_monitor=False) for n in names]
        self.facade.wait_connected(pvs, self.timeout)
        return pvs

    def get(self, handle: Any) -> Any:
        value = handle.get(use_monitor=False, timeout=self.timeout)
        if value is None:
            raise BenchFailure(f"{self.name}: get of {handle.pvname} returned None")
        return value

    def put_wait(self, handle: Any, value: float) -> None:
        status = handle.put(value, wait=True, timeout=self.timeout)
        if status is not None and status < 0:
            raise BenchFailure(f"{self.name}: put with wait did not complete ({status})")

    def get_many(self, names: list[str]) -> int:
        return sum(v is not None for v in self.facade.caget_many(names, self.timeout))

    def put_many(self, names: list[str], values: list[float]) -> int:
        return sum(r == 1 for r in self.facade.caput_many(names, values, "all", self.timeout))

    def subscribe(self, names: list[str], counter: Counter) -> Any:
        def callback(pvname: Any = None, value: Any = None, **kw: Any) -> None:
            value + 1  # touch the value
            counter.n += 1

        self._keep.append(callback)
        pvs = [self.facade.pv(n, callback=callback) for n in names]
        self.facade.wait_connected(pvs, self.timeout)
        return pvs

    def close(self) -> None:
        self.facade.close()


class CothreadPeer(Peer):
    name = "cothread"

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        import cothread  # type: ignore[import-untyped]
        from cothread import catools

        self.cothread = cothread
        self.catools = catools

    def open(self, names: list[str]) -> list[Any]:
        results = self.catools.connect(names, timeout=self.timeout, throw=False)
        bad = [r for r in results if not r.ok]
        if bad:
            raise BenchFailure(f"cothread: {bad[0].name} did not connect")
        return names

    def get(self, handle: Any) -> Any:
        return self.catools.caget(handle, timeout=self.timeout)

    def put_wait(self, handle: Any, value: float) -> None:
        self.catools.caput(handle, value, wait=True, timeout=self.timeout)

    def get_many(self, names: list[str]) -> int:
        values = self.catools.caget(names, timeout=self.timeout, throw=False)
        return sum(getattr(v, "ok", True) for v in values)

    def put_many(self, names: list[str], values: list[float]) -> int:
        results = self.catools.caput(names, values, wait=True, timeout=self.timeout, throw=False)
        return sum(bool(r.ok) for r in results)

    def subscribe(self, names: list[str], counter: Counter) -> Any:
        def callback(value: Any, index: int) -> None:
            value + 1  # touch the value
            counter.n += 1

        return self.catools.camonitor(names, callback)

    def sleep(self, seconds: float) -> None:
        self.cothread.Sleep(seconds)  # lets the callbacks run

    def run_parallel(self, n: int, body: Callable[[int], None]) -> float:
        t0 = time.perf_counter()
        tasks = [self.cothread.Spawn(body, i, raise_on_wait=True) for i in range(n)]
        for task in tasks:
            task.Wait()
        return time.perf_counter() - t0


def make_peer(name: str, timeout: float) -> Peer:
    if name == "caclient":
        return EnginePeer(timeout)
    if name == "caproto":
        return CaprotoPeer(timeout)
    if name in ("compat", "pyepics"):
        return FacadePeer(name, timeout)
    if name == "cothread":
        return CothreadPeer(timeout)
    raise BenchFailure(f"unknown client {name!r}")
