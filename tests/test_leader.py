"""Leader/follower: a caller that waits alone on a circuit reads its own reply.

Each test makes the circuit thread stand by first (``standing_by``), with a
lease long enough that only the code under test can end the stand-by, and
watches the leader through a ``select`` spy instead of relying on timing.
"""

from __future__ import annotations

import queue
import select as _select
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import connected
from fakeserver import FakeServer, msg

import caclient._leader as leader_module
from caclient import CATimeoutError, Context, DisconnectedError
from caclient._circuit import Circuit
from caclient._sync import IOThread


class SelectSpy:
    """Stands in for the ``select`` module in ``caclient._leader``; notes caller-thread selects."""

    def __init__(self) -> None:
        self.leading = threading.Event()
        self.leader_selects = 0

    def select(self, r: Any, w: Any, x: Any, timeout: float | None = None) -> Any:
        if not isinstance(threading.current_thread(), IOThread):
            self.leader_selects += 1
            self.leading.set()
        return _select.select(r, w, x, timeout)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SelectSpy:
    # A stand-by that only the code under test can end.
    monkeypatch.setattr(leader_module, "STANDBY_LEASE", 60.0)
    s = SelectSpy()
    monkeypatch.setattr(leader_module, "select", s)
    return s


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer({"LEAD:a": 1.5, "LEAD:b": 2.5}) as s:
        yield s


@pytest.fixture
def ctx(server: FakeServer) -> Iterator[Context]:
    with Context(env=server.env, timeout=5.0) as c:
        yield c


def standing_by(pv: Any) -> Circuit:
    """Read until the circuit thread stands by, so that the next blocking request leads."""
    circuit: Circuit = pv._circuit
    deadline = time.monotonic() + 10.0
    while not circuit._standby:
        assert time.monotonic() < deadline, "the circuit thread never stood by"
        pv.read()
    return circuit


def read_in_thread(pv: Any, timeout: float) -> queue.Queue[Any]:
    """Start a read on a thread of its own; its result or exception goes to the queue."""
    out: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            out.put(pv.read(timeout=timeout))
        except Exception as exc:
            out.put(exc)

    threading.Thread(target=run, name="test-leader").start()
    return out


def test_sequential_reads_lead(spy: SelectSpy, ctx: Context) -> None:
    pv = connected(ctx, "LEAD:a")
    circuit = standing_by(pv)
    leads = circuit._leads
    for _ in range(20):
        assert pv.read().data[0] == 1.5
    assert circuit._leads > leads
    assert spy.leader_selects > 0


def test_leader_handles_monitors_on_its_circuit(spy: SelectSpy, epics_ioc: Any) -> None:
    """Monitor updates a leader reads reach the callback, in order, on a callback thread."""
    with Context(env=epics_ioc.env, timeout=5.0) as ctx, Context(env=epics_ioc.env, timeout=5.0) as writer:
        ai = connected(ctx, epics_ioc.pv("ai"))
        ao = connected(ctx, epics_ioc.pv("ao"))
        ao_w = connected(writer, epics_ioc.pv("ao"))
        seen: queue.Queue[tuple[float, str]] = queue.Queue()
        sub = ao.subscribe()
        sub.add_callback(lambda _sub, r: seen.put((float(r.data[0]), threading.current_thread().name)))
        seen.get(timeout=5.0)  # the first update
        circuit = standing_by(ai)
        leads = circuit._leads
        for i in range(1, 31):
            ao_w.write(float(i), wait=True)  # an update for ctx's circuit
            assert ai.read().data[0] == 3.5  # led, reading the update too
        assert circuit._leads > leads
        values = []
        while not values or values[-1] != 30.0:
            value, thread = seen.get(timeout=5.0)
            assert thread.startswith("caclient-cb")
            values.append(value)
        assert values == sorted(values)
        sub.clear()


def test_circuit_dies_while_a_caller_leads(spy: SelectSpy, server: FakeServer, ctx: Context) -> None:
    pv = connected(ctx, "LEAD:a")
    standing_by(pv)
    server.stalled = True
    spy.leading.clear()
    out = read_in_thread(pv, timeout=30.0)
    assert spy.leading.wait(10.0)
    server.drop_clients()
    assert isinstance(out.get(timeout=20.0), DisconnectedError)
    server.stalled = False
    pv.wait_for_connection(timeout=10.0)
    assert pv.read().data[0] == 1.5


def test_close_while_a_caller_leads(spy: SelectSpy, server: FakeServer) -> None:
    ctx = Context(env=server.env, timeout=5.0)
    try:
        pv = connected(ctx, "LEAD:a")
        standing_by(pv)
        server.stalled = True
        spy.leading.clear()
        out = read_in_thread(pv, timeout=30.0)
        assert spy.leading.wait(10.0)
    finally:
        ctx.close()
    assert isinstance(out.get(timeout=20.0), DisconnectedError)


def test_timeout_while_leading_and_the_late_reply(spy: SelectSpy, server: FakeServer, ctx: Context) -> None:
    pv = connected(ctx, "LEAD:a")
    circuit = standing_by(pv)
    server.stalled = True
    spy.leading.clear()
    with pytest.raises(CATimeoutError):
        pv.read(timeout=0.3)
    assert spy.leading.is_set()
    ioid = [h for h in server.received if h[0] == 15][-1][5]
    server.stalled = False
    conn, _, _ = server.channel("LEAD:a")
    # The late reply is dropped by whoever reads; the next read gets its own.
    server.inject(conn, msg(15, struct.pack(">d", 99.0), dtype=6, count=1, p1=1, p2=ioid))
    for _ in range(5):
        assert pv.read().data[0] == 1.5
    assert circuit.ready


def test_two_callers_at_once(spy: SelectSpy, ctx: Context) -> None:
    a = connected(ctx, "LEAD:a")
    b = connected(ctx, "LEAD:b")
    standing_by(a)
    errors: list[BaseException] = []

    def reader(pv: Any, want: float) -> None:
        try:
            for _ in range(200):
                value = pv.read(timeout=10.0).data[0]
                if value != want:
                    raise AssertionError(f"{pv.name}: {value} != {want}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(pv, want)) for pv, want in ((a, 1.5), (b, 2.5), (a, 1.5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60.0)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_requests_that_do_not_lead_are_read_while_standing_by(spy: SelectSpy, ctx: Context) -> None:
    """A callback read wakes the standing-by circuit thread, which reads its reply."""
    pv = connected(ctx, "LEAD:a")
    for _ in range(3):
        standing_by(pv)
        got: queue.Queue[Any] = queue.Queue()
        pv.read(wait=False, callback=got.put)
        assert got.get(timeout=10.0).data[0] == 1.5


def test_sends_from_many_threads_coalesce_and_keep_order(
    ctx: Context, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads that find the send lock taken hand their message over; none is lost or reordered."""
    pv = connected(ctx, "LEAD:a")
    circuit: Circuit = pv._circuit
    written: list[float] = []
    real = server._tcp_message

    def record(conn: Any, hdr: Any, payload: bytes) -> None:
        if hdr[0] == 4:  # WRITE
            written.append(struct.unpack(">d", payload[:8])[0])
        real(conn, hdr, payload)

    monkeypatch.setattr(server, "_tcp_message", record)
    per_thread, n_threads = 100, 6
    start = threading.Barrier(n_threads)

    def writer(k: int) -> None:
        start.wait(10.0)
        for i in range(per_thread):
            pv.write(float(k * 1000 + i), wait=False)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60.0)
    assert not any(t.is_alive() for t in threads)
    assert pv.read().data[0] == 1.5  # sent after every write, so answered after they arrived
    assert not circuit._handoff
    by_thread: dict[int, list[int]] = {}
    for value in written:
        by_thread.setdefault(int(value) // 1000, []).append(int(value) % 1000)
    assert by_thread == {k: list(range(per_thread)) for k in range(n_threads)}


def test_a_silent_server_under_a_leader_is_caught_by_the_heartbeat(spy: SelectSpy, server: FakeServer) -> None:
    """A leader waits in select at most EPICS_CA_CONN_TMO, then the circuit thread's heartbeat takes over."""
    env = {**server.env, "EPICS_CA_CONN_TMO": "0.3", "CACLIENT_ECHO_TIMEOUT": "0.5"}
    with Context(env=env, timeout=5.0) as ctx:
        pv = connected(ctx, "LEAD:a")
        standing_by(pv)
        server.stalled = True  # (ECHO unanswered too)
        spy.leading.clear()
        with pytest.raises(DisconnectedError):
            pv.read(timeout=60.0)
        assert spy.leading.is_set()


def test_interrupted_leader_ends_the_circuit_and_it_reconnects(
    spy: SelectSpy, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt in the middle of a message reaches the caller; the circuit starts over."""
    pv = connected(ctx, "LEAD:a")
    circuit = standing_by(pv)
    real = circuit._protocol.received

    def received(n: int) -> bool:
        if not isinstance(threading.current_thread(), IOThread):
            raise KeyboardInterrupt
        return real(n)

    monkeypatch.setattr(circuit._protocol, "received", received)
    with pytest.raises(KeyboardInterrupt):
        pv.read(timeout=10.0)
    circuit.thread.join(10.0)
    assert circuit.closed
    pv.wait_for_connection(timeout=10.0)
    assert pv._circuit is not circuit
    assert pv.read().data[0] == 1.5


def test_leader_times_out_in_the_middle_of_a_large_reply(spy: SelectSpy, epics_ioc: Any) -> None:
    """A leader stops reading at its deadline, even inside a large message; the circuit thread reads on."""
    import numpy as np

    with Context(env=epics_ioc.env, timeout=10.0) as ctx:
        wf = connected(ctx, epics_ioc.pv("wf1m"))
        wf.write(np.arange(1e6), wait=True)
        for timeout in (0.0001, 0.001):  # 8 MB cannot arrive in 1 ms (the best seen here is ~6 ms)
            circuit = standing_by(wf)
            with pytest.raises(CATimeoutError):
                wf.read(timeout=timeout)
            data = wf.read().data  # the late reply was dropped; this one is whole
            assert data.shape == (1_000_000,) and data[-1] == 999_999.0
            assert circuit.ready
