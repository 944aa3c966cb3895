"""Integration tests of the engine against both real IOCs (C and caproto)."""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from engine_support import connected, open_context

from caclient import (
    AccessDeniedError,
    AccessRights,
    CATimeoutError,
    ChannelType,
    Context,
    ContextClosedError,
    ReadResponse,
    WriteResponse,
)
from caclient.testing import IOCHandle


@pytest.fixture
def ctx(ioc: IOCHandle) -> Iterator[Context]:
    yield from open_context(ioc.env, 5.0)


def pv1(ctx: Context, ioc: IOCHandle, name: str) -> Any:
    """The connected PV of *ioc*'s record *name*."""
    return connected(ctx, ioc.pv(name))


# ---------------------------------------------------------------- connecting
def test_get_pvs_caches_and_connects(ctx: Context, ioc: IOCHandle) -> None:
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    a, b = ctx.get_pvs(ioc.pv("ai"), ioc.pv("ao"), connection_state_callback=lambda pv, st: events.put((pv.name, st)))
    assert "searching" in repr(a) or "connect" in repr(a)
    a.wait_for_connection()
    b.wait_for_connection()
    assert ctx.get_pvs(ioc.pv("ai"))[0] is a
    got = {events.get(timeout=5), events.get(timeout=5)}
    assert got == {(a.name, "connected"), (b.name, "connected")}
    assert events.empty()
    assert a.connected and "connected" in repr(a)
    assert a.native_data_type == ChannelType.DOUBLE and a.native_data_count == 1
    assert a.access_rights == AccessRights.READ_WRITE
    assert a.server_address == ioc.address
    assert repr(ctx).startswith("<Context circuits=1 pvs=2")


def test_priority_gets_its_own_circuit(ctx: Context, ioc: IOCHandle) -> None:
    (p0,) = ctx.get_pvs(ioc.pv("ai"))
    (p5,) = ctx.get_pvs(ioc.pv("ai"), priority=5)
    assert p0 is not p5
    p0.wait_for_connection()
    p5.wait_for_connection()
    assert p0.circuit_manager is not p5.circuit_manager
    assert p5.circuit_manager.priority == 5
    assert p5.read().data[0] == p0.read().data[0]


def test_unknown_pv_times_out_naming_the_pv(ctx: Context) -> None:
    (pv,) = ctx.get_pvs("NO:SUCH:PV:anywhere")
    with pytest.raises(CATimeoutError, match="NO:SUCH:PV:anywhere"):
        pv.read(timeout=0.3)
    with pytest.raises(TimeoutError):
        pv.wait_for_connection(timeout=0.1)


def test_late_connection_callback_runs_at_once(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ai")
    got: queue.Queue[str] = queue.Queue()
    pv.connection_state_callback.add_callback(lambda p, st: got.put(st), run=True)
    assert got.get(timeout=5) == "connected"
    rights: queue.Queue[AccessRights] = queue.Queue()
    pv.access_rights_callback.add_callback(lambda p, r: rights.put(r), run=True)
    assert rights.get(timeout=5) == AccessRights.READ_WRITE


# ---------------------------------------------------------------- reading
@pytest.mark.parametrize(
    "family,expected",
    [
        ("native", ChannelType.DOUBLE),
        ("status", ChannelType.STS_DOUBLE),
        ("time", ChannelType.TIME_DOUBLE),
        ("graphic", ChannelType.GR_DOUBLE),
        ("control", ChannelType.CTRL_DOUBLE),
    ],
)
def test_read_families(ctx: Context, ioc: IOCHandle, family: str, expected: ChannelType) -> None:
    pv = pv1(ctx, ioc, "ai")
    resp = pv.read(data_type=family)
    assert isinstance(resp, ReadResponse)
    assert resp.data_type == expected
    assert resp.status == 1
    assert resp.data.dtype == np.float64 and resp.data.dtype.isnative
    assert resp.data[0] == pytest.approx(3.5)
    md = resp.metadata
    if family != "native":
        assert md.status == 0 and md.severity == 0
    if family == "time":
        assert abs(md.timestamp - time.time()) < 3600 * 24 * 365
    if family in ("graphic", "control"):
        assert md.units == "mm" and md.precision == 3
        assert md.upper_disp_limit == 10.0 and md.lower_disp_limit == -10.0
        assert md.upper_alarm_limit == 8.0 and md.lower_warning_limit == -6.0
    if family == "control":
        assert md.upper_ctrl_limit is not None


def test_read_explicit_channel_type_and_int(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ai")
    assert pv.read(data_type=ChannelType.STRING).data == ["3.500"] or pv.read(data_type=0).data[0].startswith("3.5")
    assert pv.read(data_type=ChannelType.TIME_LONG).data.dtype == np.int32
    with pytest.raises(ValueError):
        pv.read(data_type="bogus")


def test_read_string_long_enum(ctx: Context, ioc: IOCHandle) -> None:
    s = pv1(ctx, ioc, "str")
    assert s.read().data == ["hello"]
    assert s.read(data_type="time").data == ["hello"]
    assert s.read(data_type="control").data == ["hello"]
    e = pv1(ctx, ioc, "enum")
    assert e.native_data_type == ChannelType.ENUM
    resp = e.read(data_type="control")
    assert resp.metadata.enum_strings[:3] == ("zero", "one", "two")
    e.write("two")
    assert e.read().data[0] == 2
    assert e.read(data_type=ChannelType.STRING).data == ["two"]
    e.write(1)
    assert e.read().data[0] == 1
    n = pv1(ctx, ioc, "long")
    n.write(-123456)
    assert n.read().data[0] == -123456 and n.read().data.dtype == np.int32


def test_read_with_callback_no_wait(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ai")
    got: queue.Queue[Any] = queue.Queue()
    assert pv.read(wait=False, callback=lambda r: got.put((r, threading.current_thread().name))) is None
    resp, thread = got.get(timeout=5)
    assert resp.data[0] == pytest.approx(3.5)
    assert thread.startswith("caclient-cb")


def test_read_many_in_order_with_failures_in_place(ctx: Context, ioc: IOCHandle) -> None:
    names = [ioc.pv("ai"), "NO:SUCH:PV:rm", ioc.pv("str"), ioc.pv("long")]
    results = ctx.read_many(names, timeout=1.0, data_type="time")
    assert results[0].data[0] == pytest.approx(3.5)
    assert isinstance(results[1], CATimeoutError) and "NO:SUCH:PV:rm" in str(results[1])
    assert results[2].data == ["hello"]
    assert results[3].data_type == ChannelType.TIME_LONG


# ---------------------------------------------------------------- writing
def test_write_wait_and_read_back(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    resp = pv.write(12.5, wait=True)
    assert isinstance(resp, WriteResponse) and resp.status == 1
    assert pv.read().data[0] == 12.5
    assert pv.write(13.5, wait=False) is None
    assert pv.read().data[0] == 13.5  # same circuit: the write went out first


def test_write_callback(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    got: queue.Queue[Any] = queue.Queue()
    assert pv.write(3.0, wait=False, callback=got.put) is None
    assert got.get(timeout=5).status == 1


def test_put_with_wait_waits_for_processing(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "slow")
    t0 = time.monotonic()
    pv.write(1.0, wait=True, timeout=5)
    assert time.monotonic() - t0 >= 0.4


def test_write_timeout_leaves_nothing_behind(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "slow")
    with pytest.raises(CATimeoutError, match="slow"):
        pv.write(2.0, wait=True, timeout=0.05)
    assert pv.circuit_manager._ioids == {}
    # The late completion arrives and is dropped; the circuit keeps working.
    pv.write(3.0, wait=True, timeout=5)
    assert pv.read().data[0] == 3.0


def test_bad_writes_raise_clear_errors(ctx: Context, ioc: IOCHandle) -> None:
    ao = pv1(ctx, ioc, "ao")
    with pytest.raises(ValueError, match="abc"):
        ao.write("abc")
    s = pv1(ctx, ioc, "str")
    with pytest.raises(ValueError, match="too long"):
        s.write("x" * 40)
    wf = pv1(ctx, ioc, "wf")
    with pytest.raises(ValueError, match="at most 1000"):
        wf.write(np.zeros(1001))
    with pytest.raises(TypeError):
        ao.write(1 + 2j)
    assert ao.write(5.0).status == 1  # nothing broke


def test_read_only_pv(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ro")
    assert pv.read().data[0] == pytest.approx(1.25)
    assert pv.access_rights == AccessRights.READ
    with pytest.raises(AccessDeniedError, match="ro"):
        pv.write(2.0)
    assert pv.read().data[0] == pytest.approx(1.25)


def test_arrays_and_dynamic_count(ctx: Context, ioc: IOCHandle) -> None:
    wf = pv1(ctx, ioc, "wf")
    data = np.arange(5, dtype=float) * 1.5
    wf.write(data)
    resp = wf.read(data_count=5)
    np.testing.assert_array_equal(resp.data, data)
    if ioc.kind == "epics":
        assert wf.read().data_count == 5  # count 0: the server sends NORD elements
    assert len(wf.read(data_count=3).data) == 3


def test_char_waveform_as_text(ctx: Context, ioc: IOCHandle) -> None:
    ch = pv1(ctx, ioc, "chwf")
    ch.write("hello world")
    raw = ch.read(data_count=12).data
    assert bytes(raw).rstrip(b"\0") == b"hello world"


# ---------------------------------------------------------------- subscriptions
def test_subscribe_updates_in_order(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    pv.write(0.0)
    got: queue.Queue[float] = queue.Queue()
    threads: set[str] = set()

    def cb(sub: Any, resp: ReadResponse) -> None:
        threads.add(threading.current_thread().name)
        got.put(float(resp.data[0]))

    sub = pv.subscribe(data_type="time")
    assert pv.subscribe(data_type="time") is sub
    sub.add_callback(cb)
    assert got.get(timeout=5) == 0.0
    for v in range(1, 21):
        pv.write(float(v), wait=False)
    assert [got.get(timeout=5) for _ in range(20)] == [float(v) for v in range(1, 21)]
    assert all(t.startswith("caclient-cb") for t in threads)
    sub.clear()


def test_lambda_callbacks_are_kept_and_weak_ones_are_not(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    sub = pv.subscribe()
    got: queue.Queue[Any] = queue.Queue()
    sub.add_callback(lambda resp: got.put(resp.data[0]))  # one-argument form
    assert got.get(timeout=5) is not None

    class Holder:
        def method(self, sub: Any, resp: Any) -> None:
            raise AssertionError("a dead weak callback must not run")

    h = Holder()
    sub.add_callback(h.method, weak=True)
    ref = weakref.ref(h)
    del h
    assert ref() is None
    pv.write(7.0)
    while got.get(timeout=5) != 7.0:
        pass
    assert len(sub.callbacks) == 1
    sub.clear()


def test_late_callback_gets_most_recent(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    pv.write(4.25)
    sub = pv.subscribe()
    first: queue.Queue[float] = queue.Queue()
    sub.add_callback(lambda s, r: first.put(r.data[0]))
    assert first.get(timeout=5) == 4.25
    second: queue.Queue[float] = queue.Queue()
    sub.add_callback(lambda s, r: second.put(r.data[0]))
    assert second.get(timeout=5) == 4.25
    sub.clear()


def test_remove_last_callback_cancels(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    sub = pv.subscribe()
    got: queue.Queue[float] = queue.Queue()
    tok = sub.add_callback(lambda s, r: got.put(r.data[0]))
    got.get(timeout=5)
    circuit = pv.circuit_manager
    assert len(circuit._subs) == 1
    sub.remove_callback(tok)
    assert circuit._subs == {}
    pv.write(89.0)
    pv.read()  # a round trip after the write: any update would have come before the reply
    assert got.empty()


def test_callback_may_call_blocking_api(ctx: Context, ioc: IOCHandle) -> None:
    ao = pv1(ctx, ioc, "ao")
    ai = pv1(ctx, ioc, "ai")
    got: queue.Queue[Any] = queue.Queue()

    def cb(sub: Any, resp: Any) -> None:
        got.put(ai.read().data[0])  # a blocking read from a callback worker
        (other,) = ctx.get_pvs(ai.name)
        got.put(other is ai)

    sub = ao.subscribe()
    sub.add_callback(cb)
    assert got.get(timeout=5) == pytest.approx(3.5)
    assert got.get(timeout=5) is True
    sub.clear()


def test_callback_exception_is_logged_and_worker_survives(
    ctx: Context, ioc: IOCHandle, caplog: pytest.LogCaptureFixture
) -> None:
    pv = pv1(ctx, ioc, "ao")
    got: queue.Queue[float] = queue.Queue()

    def bad(sub: Any, resp: Any) -> None:
        raise RuntimeError("boom in callback")

    sub = pv.subscribe()
    with caplog.at_level(logging.ERROR, logger="caclient.dispatch"):
        sub.add_callback(bad)
        sub.add_callback(lambda s, r: got.put(r.data[0]))
        got.get(timeout=5)
        pv.write(8.5)
        while got.get(timeout=5) != 8.5:
            pass
    assert "boom in callback" in caplog.text
    sub.clear()


def test_events_off_and_on(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    got: queue.Queue[float] = queue.Queue()
    sub = pv.subscribe()
    sub.add_callback(lambda s, r: got.put(r.data[0]))
    got.get(timeout=5)
    pv.circuit_manager.events_off()
    pv.write(21.0)
    pv.read()
    pv.circuit_manager.events_on()
    assert got.get(timeout=5) == 21.0
    sub.clear()


def test_most_recent_response_follows_updates_and_is_forgotten_when_cancelled(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ao")
    got: queue.Queue[float] = queue.Queue()
    sub = pv.subscribe(data_type="time")
    token = sub.add_callback(lambda s, r: got.put(r.data[0]))
    first = got.get(timeout=5)
    target = first + 1.5
    pv.write(target, wait=True)
    while got.get(timeout=5) != target:
        pass
    recent = sub.most_recent_response
    assert recent is not None and recent.data[0] == target and recent.data_type == ChannelType.TIME_DOUBLE
    assert sub.most_recent_response.metadata.timestamp == recent.metadata.timestamp  # (a new object, equal)
    # A kept update is plain bytes in a tuple: the cyclic garbage collector
    # stops tracking it, which is what keeps it cheap with thousands of PVs.
    gc.collect()
    assert not gc.is_tracked(sub._recent)
    sub.remove_callback(token)
    assert sub.most_recent_response is None  # (the monitor stopped: it would go stale)
    pv.write(first, wait=True)


# ---------------------------------------------------------------- lifecycle
def test_go_idle_and_transparent_reconnect(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ai")
    assert pv.time_since_last_heard() is not None
    pv.go_idle()
    assert "idle" in repr(pv) and not pv.connected
    assert pv.time_since_last_heard() is None
    assert pv.read().data[0] == pytest.approx(3.5)
    assert pv.connected


def test_go_idle_declined_with_subscription(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ai")
    sub = pv.subscribe()
    sub.add_callback(lambda s, r: None)
    pv.go_idle()
    assert pv.connected
    sub.clear()


def test_close_is_idempotent_and_final(ioc: IOCHandle) -> None:
    ctx = Context(env=ioc.env)
    (pv,) = ctx.get_pvs(ioc.pv("ai"))
    pv.wait_for_connection(timeout=5)
    t0 = time.monotonic()
    ctx.close()
    ctx.close()
    assert time.monotonic() - t0 < 5
    with pytest.raises(ContextClosedError):
        pv.read()
    with pytest.raises(ContextClosedError):
        ctx.get_pvs("x")
    assert "closed" in repr(ctx)


def test_subscribe_wakes_an_idle_pv(ctx: Context, ioc: IOCHandle) -> None:
    pv = pv1(ctx, ioc, "ai")
    pv.go_idle()
    got: queue.Queue[float] = queue.Queue()
    pv.subscribe().add_callback(lambda s, r: got.put(r.data[0]))
    assert got.get(timeout=5) == pytest.approx(3.5)
    assert pv.connected
    pv.unsubscribe_all()


def test_flow_control_pauses_and_resumes_without_losing_the_latest(epics_ioc: IOCHandle) -> None:
    with Context(env=epics_ioc.env, timeout=10) as ctx:
        ctx._backlog_high = 40
        (pv,) = ctx.get_pvs(epics_ioc.pv("long"))  # no drive limits
        pv.wait_for_connection()
        pv.write(0)
        seen: list[float] = []
        paused = threading.Event()
        last = threading.Event()
        circuit = pv.circuit_manager

        def slow(sub: Any, resp: Any) -> None:
            seen.append(float(resp.data[0]))
            if circuit._events_off:
                paused.set()
            if seen[-1] == 1999.0:
                last.set()
            time.sleep(0.0005)  # a consumer slower than the updates (work, not synchronisation)

        sub = pv.subscribe()
        sub.add_callback(slow)
        for v in range(2000):
            pv.write(v, wait=False)
        assert last.wait(30), f"latest value never delivered (last seen {seen[-1:]})"
        assert paused.is_set(), "EVENTS_OFF was never sent"
        assert not circuit._events_off  # EVENTS_ON once drained
        assert len(seen) < 2000  # the server coalesced while paused
        sub.clear()


def test_all_updates_false_coalesces_for_a_slow_callback(epics_ioc: IOCHandle) -> None:
    with Context(env=epics_ioc.env, timeout=10) as ctx:
        (pv,) = ctx.get_pvs(epics_ioc.pv("long"))
        pv.wait_for_connection()
        pv.write(0)
        seen: list[int] = []
        last = threading.Event()
        release = threading.Event()

        def slow(sub: Any, resp: Any) -> None:
            release.wait(10)  # hold the worker until all the writes are out
            seen.append(int(resp.data[0]))
            if seen[-1] == 499:
                last.set()

        sub = pv.subscribe(all_updates=False)
        assert pv.subscribe(all_updates=False) is sub and pv.subscribe() is not sub
        sub.add_callback(slow)
        for v in range(1, 500):
            pv.write(v, wait=False)
        pv.read()  # a round trip: every update before it has reached the client
        release.set()
        assert last.wait(10)
        assert seen[-1] == 499 and len(seen) <= 3  # the first (0), maybe one more, and the newest
        # Most of the 499 updates were replaced in the client; how many the
        # IOC itself coalesced first (its per-subscription queue) varies.
        assert sub.dropped > 0 and len(seen) + sub.dropped <= 500
        assert seen == sorted(seen)
        sub.clear()
