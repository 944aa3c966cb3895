"""compat from many Python threads: no context juggling, no deadlock, callbacks that do I/O."""

from __future__ import annotations

import io
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from compat_support import cioc_fixture, epics_fresh_ca_fixture  # noqa: F401

import compat
from caclient.testing import IOCHandle


def _run_threads(n: int, work: Callable[[int], None], timeout: float) -> None:
    """Start *n* threads together (Barrier) on ``work(i)``; join them and re-raise the first error."""
    barrier = threading.Barrier(n)
    errors: queue.Queue[BaseException] = queue.Queue()

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            work(i)
        except BaseException as exc:  # re-raised in the test thread
            errors.put(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"worker-{i}", daemon=True) for i in range(n)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + timeout
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
    stuck = [th.name for th in threads if th.is_alive()]
    if not errors.empty():
        raise errors.get()
    assert not stuck, f"threads still running (deadlock?): {stuck}"


@pytest.mark.timeout(90)
def test_sixteen_threads_hammering_before_any_main_thread_call(epics: Any, cioc: IOCHandle) -> None:
    P = cioc.prefix
    assert compat._runtime.RUNTIME.engine_context is None  # nothing in this process has used CA yet
    callback_results: queue.Queue[Any] = queue.Queue()

    def reentrant(pvname: str = "", value: Any = None, **kw: Any) -> None:
        # a monitor callback doing blocking I/O of its own
        try:
            callback_results.put((epics.caget(P + "ai", timeout=5), epics.caput(P + "cb", value % 10, wait=True)))
        except BaseException as exc:
            callback_results.put(exc)

    def work(i: int) -> None:
        for j in range(25):
            assert epics.caget(P + "ai", timeout=10) == 3.5
            assert epics.caget(P + "longin", use_monitor=False, timeout=10) == 42
            assert epics.caput(P + "long", 100 * i + j, wait=True, timeout=10) == 1
            mine = epics.PV(P + "ao", auto_monitor=(j % 2 == 0))  # made and dropped each time
            assert mine.wait_for_connection(timeout=10)
            assert mine.put(float(i), wait=True, timeout=10) == 1
            assert isinstance(mine.get(timeout=10), float)
            got = epics.PV(P + "stringin").get(timeout=10)
            assert got == "hello" or isinstance(got, str)
            if j % 4 == i % 4:
                watched = epics.PV(P + "counter", callback=reentrant)
                assert watched.wait_for_connection(timeout=10)
                first = callback_results.get(timeout=10)
                if isinstance(first, BaseException):
                    raise first
                assert first == (3.5, 1)
                watched.clear_callbacks()
                watched.disconnect()
            del mine

    _run_threads(16, work, timeout=75)
    while not callback_results.empty():
        item = callback_results.get()
        if isinstance(item, BaseException):
            raise item
    assert epics.caget(P + "ai") == 3.5


# The threading example of pyepics' documentation (thread A and thread B monitor overlapping PV
# lists for different times), with its durations shortened.  It is written the way that chapter
# writes it: CAThread targets, PV callbacks, clear_callbacks at the end.
def _threading_example(epics: Any, prefix: str, out: io.StringIO, durations: tuple[float, float]) -> None:
    from compat.ca import CAThread

    pvlist_a = [prefix + "counter", prefix + "ai", prefix + "longin"]
    pvlist_b = [prefix + "counter", prefix + "longin", prefix + "ao"]

    def run_test(runtime: float = 1, pvnames: list[str] | None = None, run_name: str = "thread c") -> None:
        out.write(f'-> thread "{run_name}" will run for {runtime:.3f} sec, monitoring {pvnames}\n')

        def onChanges(pvname: str | None = None, value: Any = None, char_value: Any = None, **kw: Any) -> None:
            out.write(f"   {pvname} = {char_value} ({run_name})\n")

        epics.ca.use_initial_context()
        start = time.time()
        pvs = [epics.PV(name, callback=onChanges) for name in pvnames or []]
        while time.time() - start < runtime:
            time.sleep(0.1)
        [p.clear_callbacks() for p in pvs]
        out.write(f"Completed Thread  {run_name}\n")

    out.write("First, create a PV in the main thread:\n")
    epics.PV(pvlist_a[0])
    out.write("Run 2 Background Threads simultaneously:\n")
    th1 = CAThread(target=run_test, args=(durations[0], pvlist_a, "A"))
    th1.start()
    th2 = CAThread(target=run_test, args=(durations[1], pvlist_b, "B"))
    th2.start()
    th2.join()
    th1.join()
    out.write("Done\n")


@pytest.mark.timeout(60)
def test_two_thread_example_from_the_docs(epics: Any, cioc: IOCHandle) -> None:
    out = io.StringIO()
    _threading_example(epics, cioc.prefix, out, (1.5, 3.0))
    lines = out.getvalue().splitlines()
    counter = cioc.pv("counter")
    a_lines = [ln for ln in lines if ln.endswith("(A)")]
    b_lines = [ln for ln in lines if ln.endswith("(B)")]
    assert any(ln.strip().startswith(f"{counter} = ") for ln in a_lines)
    assert any(ln.strip().startswith(f"{counter} = ") for ln in b_lines)
    assert any(cioc.pv("ai") in ln for ln in a_lines) and not any(cioc.pv("ai") in ln for ln in b_lines)
    assert any(cioc.pv("ao") in ln for ln in b_lines) and not any(cioc.pv("ao") in ln for ln in a_lines)
    # the 10 Hz counter: both threads get updates while both run, B alone afterwards
    assert sum(counter in ln for ln in a_lines) >= 5
    done_a, done_b = lines.index("Completed Thread  A"), lines.index("Completed Thread  B")
    assert done_a < done_b and lines[-1] == "Done"
    assert sum(counter in ln for ln in lines[done_a:done_b] if ln.endswith("(B)")) >= 5
    assert not any(ln.endswith("(A)") for ln in lines[done_a + 1 :])


@pytest.mark.timeout(60)
def test_cathreads_before_any_main_thread_call(epics: Any, cioc: IOCHandle) -> None:
    """pyepics crashes (or hangs) here: the CA library is first used inside worker threads."""
    values: queue.Queue[Any] = queue.Queue()

    def work(i: int) -> None:
        values.put((epics.ca.current_context(), epics.caget(cioc.pv("ai")), epics.PV(cioc.pv("longin")).get()))

    threads = [epics.ca.CAThread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    got = [values.get(timeout=1) for _ in threads]
    assert {g[1:] for g in got} == {(3.5, 42)}
    assert {g[0] for g in got} == {epics.ca.initial_context}


@pytest.mark.timeout(60)
def test_callback_threading_model(epics: Any, cioc: IOCHandle) -> None:
    """Callbacks run on caclient's worker thread, one PV's in order, never on the caller's thread."""
    seen: queue.Queue[tuple[str, float]] = queue.Queue()
    pv = epics.PV(
        cioc.pv("counter"), callback=lambda value=None, **kw: seen.put((threading.current_thread().name, value))
    )
    got = [seen.get(timeout=5) for _ in range(5)]
    pv.clear_callbacks()
    names = {name for name, _ in got}
    assert all(name.startswith("caclient-cb") for name in names)
    values = [v for _, v in got]
    assert values == sorted(values)
