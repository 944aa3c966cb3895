"""compat behaviour that pyepics cannot show: re-entrant callbacks, lifetimes, fork, deadlines.

Where pyepics is unsafe or buggy compat does better on purpose; these tests
pin that down (the differential tests cover everything that must match).
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import queue
import select
import signal
import threading
import time
import weakref
from typing import Any

import numpy as np
import pytest
from compat_support import cioc_fixture, epics_caproto_fixture, epics_fixture  # noqa: F401

from caclient.testing import IOCHandle


def _first_event(pv: Any) -> None:
    got: queue.Queue[int] = queue.Queue()
    index = pv.add_callback(lambda **kw: got.put(1), with_ctrlvars=False)
    got.get(timeout=5)
    pv.remove_callback(index)


# -- callbacks may call anything ----------------------------------------------------------------------
def test_callbacks_may_call_caget_caput_and_make_pvs(epics: Any, cioc: IOCHandle) -> None:
    P = cioc.prefix
    results: queue.Queue[Any] = queue.Queue()

    def on_change(pvname: str = "", value: Any = None, **kw: Any) -> None:
        # pyepics: "cannot reliably make any other CA calls" here.
        try:
            out = {
                "caget": epics.caget(P + "ai"),
                "caput": epics.caput(P + "cb", value % 7, wait=True),
                "readback": epics.PV(P + "cb").get(),
                "many": epics.caget_many([P + "longin", P + "stringin"]),
                "put_many": epics.caput_many([P + "ao", P + "long"], [1.5, 2], wait="all"),
                "new_pv": epics.PV(P + "mbbi").get(as_string=True),
                "value": value,
            }
        except Exception as exc:  # report it to the test thread
            out = {"error": repr(exc)}
        results.put(out)

    pv = epics.PV(P + "counter", callback=on_change)
    for _ in range(3):
        out = results.get(timeout=10)
        assert "error" not in out, out
        assert out["caget"] == 3.5
        assert out["caput"] == 1
        assert out["readback"] == out["value"] % 7
        assert out["many"] == [42, "hello"]
        assert out["put_many"] == [1, 1]
        assert out["new_pv"] == "two"
    pv.clear_callbacks()


def test_many_callbacks_each_calling_caget(epics: Any, cioc: IOCHandle) -> None:
    P = cioc.prefix
    seen: queue.Queue[Any] = queue.Queue()

    def nested(pvname: str = "", **kw: Any) -> None:
        seen.put(epics.caget(P + "longin"))

    pvs = [epics.PV(P + name, callback=nested) for name in ("counter", "ai", "bi", "mbbi", "calc")]
    values = [seen.get(timeout=10) for _ in range(20)]
    assert values == [42] * 20
    for pv in pvs:
        pv.clear_callbacks()


def test_a_failing_callback_does_not_stop_the_others(
    epics: Any, cioc: IOCHandle, caplog: pytest.LogCaptureFixture
) -> None:
    got: queue.Queue[Any] = queue.Queue()

    def broken(**kw: Any) -> None:
        raise RuntimeError("callback bug")

    pv = epics.PV(cioc.pv("counter"))
    pv.add_callback(broken)
    pv.add_callback(lambda value=None, **kw: got.put(value))
    with caplog.at_level(logging.ERROR, logger="compat"):
        first = got.get(timeout=5)
        second = got.get(timeout=5)
    assert second > first
    assert any("callback bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    pv.clear_callbacks()


def test_callbacks_removed_during_delivery_are_not_called_again(epics: Any, cioc: IOCHandle) -> None:
    calls: queue.Queue[str] = queue.Queue()
    pv = epics.PV(cioc.pv("counter"))

    def first(cb_info: Any = None, **kw: Any) -> None:
        calls.put("first")
        pv.remove_callback(2)  # removes 'second' before its turn in this very round

    pv.add_callback(first, index=1)
    pv.add_callback(lambda **kw: calls.put("second"), index=2)
    assert calls.get(timeout=5) == "first"
    assert calls.get(timeout=5) == "first"
    pv.clear_callbacks()
    assert "second" not in list(calls.queue)


# -- values right after puts, and puts with completion -------------------------------------------------
def test_get_after_put_returns_the_new_value(epics: Any, cioc: IOCHandle) -> None:
    pv = epics.PV(cioc.pv("wf"))
    pv.wait_for_connection()
    other = epics.get_pv(cioc.pv("wf"))  # another object on the same channel
    for n in range(1, 15):
        data = np.arange(float(n))
        assert pv.put(data, wait=True) == 1
        assert np.array_equal(pv.get(), data)
        assert np.array_equal(other.get(), data)
        assert np.array_equal(epics.caget(cioc.pv("wf")), data)


def test_put_complete_and_put_callback(epics: Any, cioc: IOCHandle) -> None:
    done = threading.Event()
    got: list[dict[str, Any]] = []
    pv = epics.PV(cioc.pv("slow"))
    pv.wait_for_connection()

    def on_done(**kw: Any) -> None:
        got.append(kw)
        done.set()

    assert pv.put(1.5, use_complete=True, callback=on_done, callback_data={"tag": 7}) == 1
    assert done.wait(5)
    assert pv.put_complete is True
    assert got == [{"pvname": cioc.pv("slow"), "tag": 7}]


def test_caput_many_all_does_not_wait_for_callback_threads(epics: Any, cioc: IOCHandle) -> None:
    # Called from a callback with a single callback thread: must not deadlock.
    P = cioc.prefix
    out: queue.Queue[Any] = queue.Queue()
    pv = epics.PV(P + "counter", callback=lambda **kw: out.put(epics.caput_many([P + "ao", P + "lo"], [3.0, 4], "all")))
    try:
        assert out.get(timeout=5) == [1, 1]
    finally:
        pv.clear_callbacks()


# -- lifetimes -----------------------------------------------------------------------------------------
def test_a_pv_without_callbacks_is_freed(epics: Any, cioc: IOCHandle) -> None:
    pv = epics.PV(cioc.pv("counter"))
    assert pv.wait_for_connection()
    _first_event(pv)
    ref = weakref.ref(pv)
    del pv
    gc.collect()
    assert ref() is None


def test_a_pv_with_callbacks_keeps_running_unreferenced(epics: Any, cioc: IOCHandle) -> None:
    got: queue.Queue[Any] = queue.Queue()
    epics.PV(cioc.pv("counter"), callback=lambda value=None, **kw: got.put(value))
    gc.collect()
    values = [got.get(timeout=5) for _ in range(3)]
    assert values == sorted(values)


def test_disconnect_detaches_and_use_reattaches(epics: Any, cioc: IOCHandle) -> None:
    got: queue.Queue[Any] = queue.Queue()
    pv = epics.get_pv(cioc.pv("counter"), callback=lambda **kw: got.put(1), connect=True)
    got.get(timeout=5)
    pv.disconnect()
    assert not pv.connected
    assert pv.callbacks == {} and pv.connection_callbacks == []
    assert epics.get_pv(cioc.pv("counter")) is not pv  # gone from the cache
    assert pv.get() is not None  # using it attaches it again
    assert pv.connected
    assert pv.reconnect() is True


def test_many_pvs_in_a_loop_share_one_channel(epics: Any, cioc: IOCHandle) -> None:
    for _ in range(50):
        assert epics.PV(cioc.pv("longin")).get() == 42
    gc.collect()
    ctx = epics._runtime.context()
    assert len([c for c in ctx.get_pvs(cioc.pv("longin"))]) == 1
    assert repr(ctx).startswith("<Context circuits=1")


# -- deadlines ------------------------------------------------------------------------------------------
def test_caget_many_has_one_connection_deadline(epics: Any, cioc: IOCHandle) -> None:
    names = [cioc.pv(f"missing{i}") for i in range(6)] + [cioc.pv("ai")]
    start = time.monotonic()
    values = epics.caget_many(names, connection_timeout=0.5, timeout=0.5)
    assert time.monotonic() - start < 2.5
    assert values == [None] * 6 + [3.5]


def test_caput_many_has_one_connection_deadline(epics: Any, cioc: IOCHandle) -> None:
    names = [cioc.pv(f"missing{i}") for i in range(6)] + [cioc.pv("ao")]
    start = time.monotonic()
    rets = epics.caput_many(names, [1.0] * 7, wait="each", connection_timeout=0.5)
    assert time.monotonic() - start < 2.5  # pyepics: one connection timeout per PV
    assert rets == [-1] * 6 + [1]


def test_read_timeouts_warn_and_return_none(epics: Any, cioc: IOCHandle) -> None:
    epics.caput(cioc.pv("wf10m"), np.ones(10_000_000), wait=True, timeout=30)
    pv = epics.PV(cioc.pv("wf10m"))
    assert pv.wait_for_connection() and pv.auto_monitor is False
    with pytest.warns(UserWarning, match=r"ca.get\('.*wf10m'\) timed out after 0.00 seconds"):
        assert pv.get(timeout=0.0001) is None
    value = pv.get(timeout=30)  # the default timeout scales with the array
    assert value is not None and len(value) == 10_000_000


# -- monitors -------------------------------------------------------------------------------------------
def test_monitor_delta_is_written_to_mdel(epics: Any, cioc: IOCHandle) -> None:
    P = cioc.prefix
    epics.caput(P + "cb.MDEL", 0.0, wait=True)
    pv = epics.PV(P + "cb", monitor_delta=0.5)
    assert pv.wait_for_connection()
    deadline = time.monotonic() + 5
    while epics.caget(P + "cb.MDEL", use_monitor=False) != 0.5 and time.monotonic() < deadline:
        pass
    assert epics.caget(P + "cb.MDEL", use_monitor=False) == 0.5
    assert pv.monitor_delta == 0.5
    epics.caput(P + "cb.MDEL", 0.0, wait=True)


def test_monitor_delta_filters_in_the_client_when_mdel_is_not_there(epics_cp: Any, caproto_ioc: IOCHandle) -> None:
    # caproto's server has no record fields: compat filters updates itself.
    P = caproto_ioc.prefix
    epics_cp.caput(P + "ao", 0.0, wait=True)
    got: queue.Queue[float] = queue.Queue()
    pv = epics_cp.PV(
        P + "ao", monitor_delta=0.5, connection_timeout=0.5, callback=lambda value=None, **kw: got.put(value)
    )
    # caproto's server may first send a stale value to a new DBR_TIME
    # subscription (seen after test_engine's EVENTS_OFF test wrote 21.0 with
    # events off): wait for the 0.0 written above.
    while got.get(timeout=5) != 0.0:
        pass
    for value in (0.1, 0.2, 0.9, 1.0, 1.6):
        epics_cp.caput(P + "ao", value, wait=True)
    assert got.get(timeout=5) == 0.9
    assert got.get(timeout=5) == 1.6
    assert got.empty()
    pv.clear_callbacks()


def test_camonitor_watches_large_arrays(epics: Any, cioc: IOCHandle) -> None:
    # pyepics leaves PVs of AUTOMONITOR_MAXLENGTH elements or more unmonitored,
    # so camonitor prints nothing for them (pyepics#84).
    P = cioc.prefix
    lines: queue.Queue[str] = queue.Queue()
    epics.camonitor(P + "wf1m", writer=lines.put)
    epics.caput(P + "wf1m", np.arange(100_000.0), wait=True)
    line = lines.get(timeout=10)
    while not line.endswith("<array size=100000, type=time_double>"):
        line = lines.get(timeout=10)  # (the monitor's first update, the value before the put)
    epics.camonitor_clear(P + "wf1m")


def test_camonitor_prints_every_line_with_the_records_precision(epics: Any, cioc: IOCHandle) -> None:
    # The counter is a DOUBLE calc record with PREC 0: each line ends in a whole number,
    # the first included (pyepics may print its first line as '72.0': the update it
    # formatted before camonitor's get() had read the precision).
    name = cioc.pv("counter")
    lines: queue.Queue[str] = queue.Queue()
    epics.camonitor(name, writer=lines.put)
    shown = [lines.get(timeout=5) for _ in range(3)]
    epics.camonitor_clear(name)
    for line in shown:
        assert line.startswith(name + " ")
        assert line.rsplit(" ", 1)[1].isdigit(), line


def test_verbose_pv_prints_updates(epics: Any, cioc: IOCHandle, capsys: pytest.CaptureFixture[str]) -> None:
    pv = epics.PV(cioc.pv("counter"), verbose=True)
    got: queue.Queue[int] = queue.Queue()
    pv.add_callback(lambda **kw: got.put(1))
    got.get(timeout=5)
    pv.clear_callbacks()
    assert f"{cioc.pv('counter')}: " in capsys.readouterr().out


# -- fork -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_builds_its_own_context(epics: Any, cioc: IOCHandle) -> None:
    pv = epics.PV(cioc.pv("ai"))
    assert pv.get() == 3.5
    parent_ctx = epics._runtime.context()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running any cleanup
        code = 1
        try:
            out = {
                "fresh": epics._runtime.RUNTIME.engine_context is None,
                "caget": epics.caget(cioc.pv("longin")),
                "old_pv": pv.get(),
                "new_ctx": epics._runtime.RUNTIME.engine_context is not parent_ctx,
            }
            os.write(wfd, pickle.dumps(out))
            epics._runtime._reset()
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    data = b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([rfd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(rfd, 65536) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rfd)
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # the child is stuck: do not leave it behind
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert pickle.loads(data) == {"fresh": True, "caget": 42, "old_pv": 3.5, "new_ctx": True}
    # the parent's connection was not disturbed
    assert epics._runtime.context() is parent_ctx
    assert epics.caget(cioc.pv("longin"), use_monitor=False) == 42
    assert pv.get(use_monitor=False) == 3.5


# -- a cut read is not the PV's value ------------------------------------------------------------------
def test_count_limited_read_after_foreign_write_does_not_become_the_value(epics: Any, cioc: IOCHandle) -> None:
    # A write through another PV object marks this monitored PV stale, so
    # get(count=3) reads from the server; the next plain get() must still
    # give the whole array, not the three elements of that read.
    name = cioc.prefix + "wf"
    watcher = epics.PV(name, auto_monitor=True)
    writer = epics.PV(name, auto_monitor=False)
    assert watcher.wait_for_connection(timeout=5) and writer.wait_for_connection(timeout=5)
    full = np.arange(10, dtype=float) + 100.0
    assert writer.put(full, wait=True, timeout=5) == 1
    cut = watcher.get(count=3, timeout=5)
    assert list(cut) == [100.0, 101.0, 102.0]
    whole = watcher.get(timeout=5)
    assert len(whole) == 10 and list(whole) == list(full)
