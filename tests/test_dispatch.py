"""Unit tests of the callback Dispatcher (caclient._dispatch).

No network.  Synchronisation is by Event/Barrier with bounded waits, never by
sleeping; every Dispatcher is shut down in ``finally`` (the conftest leak
checker fails a test that leaves ``caclient-cb-N`` threads behind).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from caclient._dispatch import BURST, Dispatcher, DispatcherStatistics

WAIT = 10.0  # bound on every wait; tests normally finish in milliseconds


@contextmanager
def dispatcher(max_workers: int = 1, **kw: Any) -> Iterator[Dispatcher]:
    d = Dispatcher(max_workers, **kw)
    try:
        yield d
    finally:
        # (not cancel_pending: see test_shutdown_cancel_pending_while_key_is_held)
        d.shutdown(wait=True, timeout=WAIT)
        join_workers(d)


def join_workers(d: Dispatcher) -> None:
    """Wait (bounded) for every worker of *d* to end; fail naming any still running."""
    for t in d._threads:
        t.join(WAIT)
    running = [t.name for t in d._threads if t.is_alive()]
    assert not running, f"{running} did not stop"


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """What escapes any thread during the test (through ``threading.excepthook``)."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def assert_cancelled_cleanly(d: Dispatcher, ran: list[int], thread_errors: list[BaseException | None]) -> None:
    """After ``shutdown(cancel_pending=True)``: the workers ended without errors and no queued job ran."""
    join_workers(d)
    assert thread_errors == []
    assert ran == []
    assert d.backlog == 0


class Gate:
    """A job that blocks its worker until released (and says when it started)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.started.set()
        assert self.release.wait(WAIT)

    def wait_started(self) -> None:
        assert self.started.wait(WAIT), "gate job did not start"


class Countdown:
    """Sets ``done`` after ``n`` calls of :meth:`tick` from any thread."""

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self.left = n
        self.done = threading.Event()
        if n == 0:
            self.done.set()

    def tick(self) -> None:
        with self._lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def wait(self) -> None:
        assert self.done.wait(WAIT), f"{self.left} jobs did not run"


def test_rejects_zero_workers() -> None:
    with pytest.raises(ValueError):
        Dispatcher(0)


def test_thread_names_and_on_worker_thread() -> None:
    seen: list[tuple[str, bool]] = []
    cd = Countdown(1)

    def job() -> None:
        seen.append((threading.current_thread().name, d.on_worker_thread()))
        cd.tick()

    with dispatcher(3) as d:
        names = sorted(t.name for t in d._threads)
        assert names == ["caclient-cb-0", "caclient-cb-1", "caclient-cb-2"]
        assert all(t.daemon for t in d._threads)
        assert not d.on_worker_thread()
        d.submit("k", job)
        cd.wait()
    assert seen[0][0].startswith("caclient-cb-") and seen[0][1] is True


def test_args_are_passed() -> None:
    got: list[tuple[Any, ...]] = []
    cd = Countdown(2)

    def job(*args: Any) -> None:
        got.append(args)
        cd.tick()

    with dispatcher() as d:
        d.submit("k", job, 1, "two", None)
        d.submit_many([("k", job, (3,))])
        cd.wait()
    assert got == [(1, "two", None), (3,)]


# ---------------------------------------------------------------- ordering
@pytest.mark.parametrize("workers", [1, 4])
def test_per_key_order_and_no_concurrency(workers: int) -> None:
    n_keys, per_key = 200, 60
    order: dict[int, list[int]] = defaultdict(list)
    locks = {k: threading.Lock() for k in range(n_keys)}
    violations: list[int] = []
    cd = Countdown(n_keys * per_key)
    running = threading.Semaphore(0)

    def job(key: int, seq: int) -> None:
        lock = locks[key]
        if not lock.acquire(blocking=False):
            violations.append(key)  # another job of this key is running
            cd.tick()
            return
        try:
            running.release()
            order[key].append(seq)
            # a little work, so that jobs of different keys overlap
            sum(range(50))
        finally:
            lock.release()
        cd.tick()

    with dispatcher(workers) as d:
        seq = [0] * n_keys
        # interleave single submissions and batches, keys round-robin
        for _ in range(per_key // 3):
            for k in range(n_keys):
                d.submit(k, job, k, seq[k])
                seq[k] += 1
            batch = []
            for k in range(n_keys):
                for _ in range(2):
                    batch.append((k, job, (k, seq[k])))
                    seq[k] += 1
            d.submit_many(batch)
        assert seq == [per_key] * n_keys
        cd.wait()
    stats = d.statistics()  # after shutdown joined the workers: all accounted for
    assert violations == []
    for k in range(n_keys):
        assert order[k] == list(range(per_key)), k
    assert stats.jobs_run == n_keys * per_key
    assert stats.errors == 0


def test_same_key_never_concurrent_even_when_blocking() -> None:
    """While a key's job blocks, other workers run other keys, never that key."""
    gate = Gate()
    others = Countdown(20)
    ran_a: list[int] = []

    with dispatcher(4) as d:
        d.submit("a", gate)
        gate.wait_started()
        for i in range(5):
            d.submit("a", ran_a.append, i)
        for i in range(20):
            d.submit(f"b{i}", others.tick)
        others.wait()  # other workers are free and ran these
        assert ran_a == []  # a is held by the blocked worker
        done = Countdown(1)
        d.submit("a", done.tick)
        gate.release.set()
        done.wait()
    assert ran_a == [0, 1, 2, 3, 4]


def test_key_is_released_after_its_queue_empties() -> None:
    """A key whose queue ran dry can be submitted again and runs."""
    with dispatcher(2) as d:
        for _ in range(50):
            cd = Countdown(1)
            d.submit("k", cd.tick)
            cd.wait()
    assert d.statistics().jobs_run == 50


# ---------------------------------------------------------------- fairness
@pytest.mark.parametrize("workers", [1, 2])
def test_fairness_big_queue_does_not_starve_a_single_job(workers: int) -> None:
    order: list[str] = []
    total = 10_000
    cd = Countdown(total + 1)

    def job(tag: str) -> None:
        order.append(tag)
        cd.tick()

    gates = [Gate() for _ in range(workers)]
    with dispatcher(workers) as d:
        for i, g in enumerate(gates):
            d.submit(("gate", i), g)
        for g in gates:
            g.wait_started()  # every worker is busy: nothing else has started
        d.submit_many([("flood", job, ("a",))] * total)
        d.submit("single", job, "b")
        for g in gates:
            g.release.set()
        cd.wait()
    position = order.index("b")
    # measured by order, not time: b ran after at most a few bursts of a
    assert position <= 64 + BURST * workers, position
    assert order.count("a") == total


def test_fairness_round_robin_across_many_keys() -> None:
    """With several big keys, each gets a turn before any gets a second helping."""
    order: list[int] = []
    keys, per_key = 10, 100
    cd = Countdown(keys * per_key)

    def job(k: int) -> None:
        order.append(k)
        cd.tick()

    gate = Gate()
    with dispatcher(1) as d:
        d.submit("gate", gate)
        gate.wait_started()
        d.submit_many([(k, job, (k,)) for k in range(keys) for _ in range(per_key)])
        gate.release.set()
        cd.wait()
    # each key's first job runs within the first pass over the keys
    first = {k: order.index(k) for k in range(keys)}
    assert max(first.values()) < keys * BURST


# ---------------------------------------------------------------- errors
def test_exception_is_logged_and_worker_survives(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="caclient.dispatch")
    cd = Countdown(2)

    def bad() -> None:
        cd.tick()
        raise RuntimeError("boom in callback")

    with dispatcher(1) as d:
        d.submit("k", bad)
        d.submit("k", cd.tick)  # same key, after the failure
        cd.wait()
        ok = Countdown(1)
        d.submit("other", ok.tick)
        ok.wait()
    stats = d.statistics()  # after shutdown joined the workers
    assert stats.errors == 1
    assert stats.jobs_run == 3
    records = [r for r in caplog.records if r.name == "caclient.dispatch"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None
    assert "boom in callback" in caplog.text


def test_exception_in_drain_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="caclient.dispatch")
    called = threading.Event()

    def hook() -> None:
        called.set()
        raise ValueError("hook failed")

    gate = Gate()
    with dispatcher(1) as d:
        d.submit("g", gate)
        gate.wait_started()
        d.watch_drain(0, hook)
        gate.release.set()
        assert called.wait(WAIT)
        cd = Countdown(1)
        d.submit("k", cd.tick)
        cd.wait()  # the worker survived
    assert "hook failed" in caplog.text


# ---------------------------------------------------------------- backlog
def test_submit_many_returns_backlog() -> None:
    gate = Gate()
    with dispatcher(1) as d:
        assert d.submit_many([]) == 0
        d.submit("g", gate)
        gate.wait_started()
        assert d.backlog == 1  # the running job counts until it finishes
        assert d.submit_many([("a", int, ())] * 10) == 11
        d.submit("b", int)
        assert d.submit_many([(k, int, ()) for k in "xyz"]) == 15
        assert d.backlog == 15
        stats = d.statistics()
        assert isinstance(stats, DispatcherStatistics)
        assert stats.workers == 1
        assert stats.backlog == 15
        assert stats.keys_waiting == 5  # a, b, x, y, z (g is held by the worker)
        assert stats.jobs_run == 0 and stats.errors == 0
        done = Countdown(1)
        d.submit("last", done.tick)
        gate.release.set()
        done.wait()
        # the backlog falls to 0 once the workers are idle; wait for it with a drain hook
        drained = threading.Event()
        d.watch_drain(0, drained.set)
        assert drained.wait(WAIT)
        assert d.backlog == 0


def test_watch_drain_fires_once_at_low_water() -> None:
    calls: list[tuple[int, bool]] = []
    fired = threading.Event()

    def hook() -> None:
        calls.append((d.backlog, d.on_worker_thread()))
        fired.set()

    gate = Gate()
    with dispatcher(2) as d:
        d.submit("g", gate)
        gate.wait_started()
        d.submit_many([(i % 7, int, ()) for i in range(300)])
        d.watch_drain(50, hook)
        assert not fired.is_set()  # the backlog is still high
        gate.release.set()
        assert fired.wait(WAIT)
        # drain completely, then go high and low again: no second call
        cd = Countdown(300)
        d.submit_many([(i % 5, cd.tick, ()) for i in range(300)])
        cd.wait()
        end = Countdown(1)
        d.submit("end", end.tick)
        end.wait()
    assert len(calls) == 1
    backlog, on_worker = calls[0]
    assert on_worker
    assert backlog <= 50


def test_watch_drain_fires_when_already_drained() -> None:
    """The circuit calls submit_many(), then events_off(), then watch_drain(): if
    the workers drained the backlog in between, the hook must still run, or
    EVENTS_ON is never sent and monitors stay off.  Made deterministic here:
    the backlog is already at or below the mark when the watch is registered."""
    fired = threading.Event()
    calls: list[int] = []

    def hook() -> None:
        calls.append(1)
        fired.set()

    with dispatcher(1) as d:
        assert d.backlog == 0
        d.watch_drain(10, hook)
        assert fired.wait(WAIT), "drain hook never called"
        # and only once, even as more jobs come and go
        cd = Countdown(20)
        d.submit_many([("k", cd.tick, ())] * 20)
        cd.wait()
    assert calls == [1]


# ---------------------------------------------------------------- shutdown
def test_shutdown_runs_queued_jobs() -> None:
    ran: list[int] = []
    gate = Gate()
    d = Dispatcher(2)
    try:
        d.submit("g", gate)
        gate.wait_started()
        d.submit_many([(i % 10, ran.append, (i,)) for i in range(1000)])
        stopper = threading.Thread(target=d.shutdown, kwargs={"wait": True, "timeout": WAIT}, name="stopper")
        stopper.start()
        gate.release.set()
        stopper.join(WAIT)
        assert not stopper.is_alive()
        assert all(not t.is_alive() for t in d._threads)
        assert sorted(ran) == list(range(1000))
        assert d.backlog == 0
        # after shutdown nothing is accepted
        d.submit("late", ran.append, -1)
        assert d.submit_many([("late", ran.append, (-2,))]) == 0
        assert -1 not in ran and -2 not in ran
    finally:
        gate.release.set()
        d.shutdown(wait=True, timeout=WAIT)


def test_shutdown_is_idempotent() -> None:
    d = Dispatcher(2)
    d.shutdown()
    d.shutdown()
    d.shutdown(cancel_pending=True)
    assert all(not t.is_alive() for t in d._threads)


def test_shutdown_cancel_pending_drops_queued_jobs(thread_errors: list[BaseException | None]) -> None:
    ran: list[int] = []
    gates = [Gate(), Gate()]
    d = Dispatcher(2)
    try:
        for i, g in enumerate(gates):
            d.submit(("g", i), g)
        for g in gates:
            g.wait_started()
        d.submit_many([(i % 10, ran.append, (i,)) for i in range(1000)])
        d.shutdown(wait=False, cancel_pending=True)
        assert d.backlog == 0
        for g in gates:
            g.release.set()
        assert_cancelled_cleanly(d, ran, thread_errors)
    finally:
        for g in gates:
            g.release.set()
        d.shutdown(wait=True, timeout=WAIT)


def test_shutdown_cancel_pending_while_key_is_held(thread_errors: list[BaseException | None]) -> None:
    ran: list[int] = []
    gate = Gate()
    d = Dispatcher(1)
    try:
        d.submit("a", gate)  # the worker takes key a ...
        gate.wait_started()
        for i in range(3 * BURST):
            d.submit("a", ran.append, i)  # ... while more of a's jobs queue up
        d.shutdown(wait=False, cancel_pending=True)
        gate.release.set()
        assert_cancelled_cleanly(d, ran, thread_errors)
        assert d.statistics().backlog == 0
    finally:
        gate.release.set()
        d.shutdown(wait=True, timeout=WAIT)


@pytest.mark.parametrize("workers", [1, 3])
def test_shutdown_from_inside_a_worker(workers: int) -> None:
    returned = threading.Event()
    after: list[str] = []
    d = Dispatcher(workers)
    try:

        def stop() -> None:
            d.shutdown(wait=True, timeout=WAIT)  # must not join itself
            returned.set()

        cd = Countdown(10)
        for i in range(10):
            d.submit(f"k{i}", cd.tick)
        cd.wait()
        d.submit("stop", stop)
        d.submit("stop", after.append, "queued-before-shutdown")
        assert returned.wait(WAIT), "shutdown from a worker deadlocked"
        join_workers(d)
        # the job queued before shutdown (same key, behind stop) still ran
        assert after == ["queued-before-shutdown"]
    finally:
        d.shutdown(wait=True, timeout=WAIT)


def test_statistics_counts() -> None:
    cd = Countdown(30)

    def bad() -> None:
        cd.tick()
        raise KeyError("x")

    with dispatcher(2) as d:
        logging.getLogger("caclient.dispatch").disabled = True
        try:
            d.submit_many([(i % 3, cd.tick, ()) for i in range(25)])
            d.submit_many([("bad", bad, ())] * 5)
            cd.wait()
            d.submit("z", int)
            fin = threading.Event()
            d.watch_drain(0, fin.set)  # (at once if the backlog is already 0)
            assert fin.wait(WAIT)
            stats = d.statistics()
        finally:
            logging.getLogger("caclient.dispatch").disabled = False
    assert stats.workers == 2
    assert stats.jobs_run == 31
    assert stats.errors == 5
    assert stats.backlog == 0
    assert stats.keys_waiting == 0


def test_submit_from_a_callback() -> None:
    """A job may submit more jobs (to its own key and others) without deadlock."""
    order: list[str] = []
    cd = Countdown(3)

    def first() -> None:
        d.submit("k", second)
        d.submit("other", third)
        order.append("first")
        cd.tick()

    def second() -> None:
        order.append("second")
        cd.tick()

    def third() -> None:
        cd.tick()

    with dispatcher(2) as d:
        d.submit("k", first)
        cd.wait()
    assert order == ["first", "second"]


def test_many_submitters() -> None:
    """Concurrent submitters: every job runs once, per-(submitter) key order kept."""
    n_threads, per = 4, 2000
    got: dict[int, list[int]] = defaultdict(list)
    cd = Countdown(n_threads * per)
    barrier = threading.Barrier(n_threads)

    def job(key: int, i: int) -> None:
        got[key].append(i)
        cd.tick()

    def submitter(key: int, d: Dispatcher) -> None:
        barrier.wait(WAIT)
        for i in range(0, per, 4):
            d.submit(key, job, key, i)
            d.submit_many([(key, job, (key, j)) for j in range(i + 1, i + 4)])

    with dispatcher(3) as d:
        threads = [threading.Thread(target=submitter, args=(k, d), name=f"submitter-{k}") for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        cd.wait()
    for k in range(n_threads):
        assert got[k] == list(range(per))
