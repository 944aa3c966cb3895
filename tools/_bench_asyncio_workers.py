"""Child side of ``python -m tools.bench_asyncio``: one scenario, one asyncio client, one process.

Usage (normally only started by :mod:`tools.bench_asyncio`)::

    python -m tools._bench_asyncio_workers SCENARIO CLIENT @PARAMS_FILE

``CLIENT`` is one of:

* ``caclient``     - ``caclient.asyncio`` (this project);
* ``caproto``      - ``caproto.asyncio.client``;
* ``aioca``        - aioca (libca through ctypes);
* ``compat-aioca`` - ``compat.aioca``, this project's aioca facade, driven
  exactly like ``aioca`` (the column stays FAIL until that module exists).

Each scenario runs inside one ``asyncio.run``.  The child prints one
:data:`~tools._bench_workers.RESULT_MARK` line with its metrics, closes its
client, prints one :data:`~tools._bench_workers.CLOSE_MARK` line and leaves
with :func:`os._exit` (see :func:`tools._bench_workers.run_as_child`).
"""

from __future__ import annotations

import asyncio
import importlib
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tools import _bench_workers as workers
from tools._bench_workers import CLOSE_MARK, RESULT_MARK, BenchFailure, _emit, warmup_seconds

CLIENTS = ("caclient", "caproto", "aioca", "compat-aioca")
Result = tuple[dict[str, Any], dict[str, Any]]  # (metrics, info)


class Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


# ----------------------------------------------------------------------------- the clients
class Client:
    """What the scenarios need from an asyncio client."""

    name = "?"

    async def start(self, timeout: float) -> None:
        pass

    async def connect(self, names: list[str], timeout: float) -> list[Any]:
        raise NotImplementedError

    async def read(self, handle: Any, timeout: float) -> Any:
        """The value (a numpy array or a number)."""
        raise NotImplementedError

    async def subscribe(self, handles: list[Any], counter: Counter) -> Any:
        """Plain (non-coroutine) callbacks that touch the value and count."""
        raise NotImplementedError

    async def iterate(self, handles: list[Any], counter: Counter) -> list[asyncio.Task[None]]:
        """One consumer task per PV, each ``async for`` over its updates (or the closest equivalent)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


class CaprotoStyleClient(Client):
    """caclient.asyncio and caproto.asyncio.client share the API (which is the point)."""

    def __init__(self, name: str) -> None:
        self.name = name
        module = "caclient.asyncio" if name == "caclient" else "caproto.asyncio.client"
        self._module = importlib.import_module(module)
        self._keep: list[Any] = []  # caproto holds callbacks weakly

    async def start(self, timeout: float) -> None:
        self.ctx = self._module.Context(timeout=timeout)

    async def connect(self, names: list[str], timeout: float) -> list[Any]:
        pvs = await self.ctx.get_pvs(*names, timeout=timeout)
        await asyncio.gather(*(pv.wait_for_connection(timeout=timeout) for pv in pvs))
        return list(pvs)

    async def read(self, handle: Any, timeout: float) -> Any:
        return (await handle.read(timeout=timeout)).data

    async def subscribe(self, handles: list[Any], counter: Counter) -> Any:
        def callback(sub: Any, response: Any) -> None:
            response.data[0] + 1  # touch the value
            counter.n += 1

        self._keep.append(callback)
        subs = [pv.subscribe() for pv in handles]
        for sub in subs:
            sub.add_callback(callback)
        return subs

    async def iterate(self, handles: list[Any], counter: Counter) -> list[asyncio.Task[None]]:
        async def consume(sub: Any) -> None:
            async for response in sub:
                response.data[0] + 1
                counter.n += 1

        return [asyncio.ensure_future(consume(pv.subscribe())) for pv in handles]

    async def close(self) -> None:
        await self.ctx.disconnect()
        if self.name == "caproto":
            await self.ctx.broadcaster.disconnect()


class AiocaClient(Client):
    """aioca, or this project's compat.aioca (the same calls)."""

    def __init__(self, name: str) -> None:
        self.name = name
        try:
            self.aioca: Any = importlib.import_module("aioca" if name == "aioca" else "compat.aioca")
        except ImportError as exc:
            raise BenchFailure(f"{name} not available: {exc}") from None
        self._subs: list[Any] = []

    async def connect(self, names: list[str], timeout: float) -> list[Any]:
        await self.aioca.connect(names, timeout=timeout)
        return names

    async def read(self, handle: Any, timeout: float) -> Any:
        return await self.aioca.caget(handle, timeout=timeout)

    async def subscribe(self, handles: list[Any], counter: Counter) -> Any:
        def callback(value: Any, index: int) -> None:
            value + 1
            counter.n += 1

        self._subs = self.aioca.camonitor(handles, callback)
        return self._subs

    async def iterate(self, handles: list[Any], counter: Counter) -> list[asyncio.Task[None]]:
        # aioca has no async iterator: a queue per PV fed by a callback, drained by a task.
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in handles]

        def callback(value: Any, index: int) -> None:
            queues[index].put_nowait(value)

        async def consume(q: asyncio.Queue[Any]) -> None:
            while True:
                value = await q.get()
                value + 1
                counter.n += 1

        self._subs = self.aioca.camonitor(handles, callback)
        return [asyncio.ensure_future(consume(q)) for q in queues]

    async def close(self) -> None:
        for sub in self._subs:
            sub.close()
        self.aioca.purge_channel_caches()


def make_client(name: str) -> Client:
    if name in ("caclient", "caproto"):
        return CaprotoStyleClient(name)
    if name in ("aioca", "compat-aioca"):
        return AiocaClient(name)
    raise BenchFailure(f"unknown client {name!r}")


# ----------------------------------------------------------------------------- scenarios
async def sc_gather_read(client: Client, p: dict[str, Any]) -> Result:
    handles = await client.connect(p["names"], p["timeout"])
    await asyncio.gather(*(client.read(h, p["timeout"]) for h in handles))  # warm-up
    t0 = time.perf_counter()
    for _ in range(p["rounds"]):
        values = await asyncio.gather(*(client.read(h, p["timeout"]) for h in handles))
        if len(values) != len(handles):
            raise BenchFailure("missing values")
    elapsed = time.perf_counter() - t0
    reads = p["rounds"] * len(handles)
    return {"rate": reads / elapsed, "round_ms": elapsed / p["rounds"] * 1e3}, {"n": reads}


async def _warm_up(call: Callable[[], Awaitable[Any]], count: int, seconds: float) -> None:
    """Await call() at least *count* times and for at least *seconds* (:func:`tools._bench_workers.warm_up`)."""
    until = time.perf_counter() + seconds
    i = 0
    while i < count or time.perf_counter() < until:
        await call()
        i += 1


async def sc_seq_read(client: Client, p: dict[str, Any]) -> Result:
    (handle,) = await client.connect([p["name"]], p["timeout"])
    await _warm_up(lambda: client.read(handle, p["timeout"]), p["warmup"], warmup_seconds(p))
    t0 = time.perf_counter()
    for _ in range(p["n"]):
        await client.read(handle, p["timeout"])
    elapsed = time.perf_counter() - t0
    return {"rate": p["n"] / elapsed, "latency_us": elapsed / p["n"] * 1e6}, {"n": p["n"]}


async def sc_waveform(client: Client, p: dict[str, Any]) -> Result:
    name, nelm, n = p["name"], p["nelm"], p["n"]
    (handle,) = await client.connect([name], p["timeout"])
    first = await client.read(handle, p["timeout"])
    if len(first) != nelm or float(first[-1]) != p["expected_last"]:
        raise BenchFailure(f"waveform content wrong: {len(first)} elements, last {first[-1:]}")
    del first
    await _warm_up(lambda: client.read(handle, p["timeout"]), 0, warmup_seconds(p))
    t0 = time.perf_counter()
    for _ in range(n):
        value = await client.read(handle, p["timeout"])
        if len(value) != nelm:
            raise BenchFailure("short waveform")
        del value
    elapsed = time.perf_counter() - t0
    return {"mbps": n * nelm * 8 / elapsed / 1e6, "rate": n / elapsed}, {"n": n}


async def _ticker(lags: list[float], period: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - t0 - period)


async def _wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise BenchFailure(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _monitor(client: Client, p: dict[str, Any], start: Callable[[list[Any], Counter], Awaitable[Any]]) -> Result:
    names: list[str] = p["names"]
    counter = Counter()
    handles = await client.connect(names, p["timeout"])
    keep = await start(handles, counter)
    await _wait_until(lambda: counter.n >= len(names), p["timeout"], "the first update of every PV")
    await asyncio.sleep(p["settle"])
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.ensure_future(_ticker(lags, 0.01, stop))
    c0, n0, t0 = time.process_time(), counter.n, time.perf_counter()
    await asyncio.sleep(p["duration"])
    c1, n1, t1 = time.process_time(), counter.n, time.perf_counter()
    stop.set()
    await ticker
    if isinstance(keep, list):
        for task in keep:
            if isinstance(task, asyncio.Task):
                task.cancel()
    updates = n1 - n0
    if updates <= 0:
        raise BenchFailure("no updates received in the measurement window")
    lags.sort()
    p99 = lags[max(0, int(len(lags) * 0.99) - 1)] if lags else float("nan")
    metrics = {
        "updates_per_s": updates / (t1 - t0),
        "us_per_update": (c1 - c0) / updates * 1e6,
        "lag_p99_ms": p99 * 1e3,
        "lag_max_ms": (lags[-1] if lags else float("nan")) * 1e3,
        "cpu_pct": (c1 - c0) / (t1 - t0) * 100,
    }
    return metrics, {"updates": updates, "offered_per_s": len(names) * p["hz"]}


async def sc_monitor_callbacks(client: Client, p: dict[str, Any]) -> Result:
    return await _monitor(client, p, client.subscribe)


async def sc_monitor_iter(client: Client, p: dict[str, Any]) -> Result:
    return await _monitor(client, p, client.iterate)


SCENARIOS: dict[str, Callable[[Client, dict[str, Any]], Awaitable[Result]]] = {
    "gather_read": sc_gather_read,
    "seq_read": sc_seq_read,
    "waveform": sc_waveform,
    "monitor_callbacks": sc_monitor_callbacks,
    "monitor_iter": sc_monitor_iter,
}


async def _session(scenario: str, client_name: str, params: dict[str, Any]) -> None:
    client = make_client(client_name)
    await client.start(params["timeout"])
    metrics, info = await SCENARIOS[scenario](client, params)
    info["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _emit(RESULT_MARK, {"metrics": metrics, "info": info})
    t0 = time.perf_counter()
    await asyncio.wait_for(client.close(), 20)
    _emit(CLOSE_MARK, {"close_s": time.perf_counter() - t0})


def main(argv: list[str]) -> None:
    scenario, client_name, params_arg = argv
    params = workers.child_params(params_arg)
    asyncio.run(_session(scenario, client_name, params))


if __name__ == "__main__":
    workers.run_as_child(main)
