"""Protocol coverage against real servers: large arrays, special DBR types,
server errors, many names, duplicate servers, server death."""

from __future__ import annotations

import gc
import logging
import queue
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from engine_support import connected, connection_states, open_context

from caclient import BlockingCallError, CATimeoutError, ChannelType, Context, DisconnectedError, RemoteError
from caclient._sync import IOThread, ensure_not_io_thread
from caclient.testing import CaprotoIOC, EpicsIOC, IOCHandle, make_numbered_db


@pytest.fixture
def ectx(epics_ioc: IOCHandle) -> Iterator[Context]:
    yield from open_context(epics_ioc.env, 10.0)


@pytest.mark.parametrize("n", [1_000_000, 10_000_000])
def test_large_waveform_round_trip(ectx: Context, epics_ioc: IOCHandle, n: int) -> None:
    name = "wf1m" if n == 1_000_000 else "wf10m"
    pv = connected(ectx, epics_ioc.pv(name))
    assert pv.native_data_count == n
    data = np.random.default_rng(1).random(n)
    pv.write(data, wait=True, timeout=30)
    resp = pv.read(timeout=30)
    assert resp.data_count == n
    np.testing.assert_array_equal(resp.data, data)
    assert resp.data.flags.writeable and resp.data.dtype.isnative
    resp = pv.read(data_type="time", timeout=30)
    np.testing.assert_array_equal(resp.data, data)


def test_long_string_field_dollar(ectx: Context, epics_ioc: IOCHandle) -> None:
    pv = connected(ectx, epics_ioc.pv("lstr.VAL$"))
    assert pv.native_data_type == ChannelType.CHAR
    text = bytes(pv.read().data).split(b"\0")[0].decode()
    assert text == "A long string value that is longer than forty characters."
    long_text = "x" * 200
    pv.write(long_text, wait=True)
    assert bytes(pv.read().data).split(b"\0")[0].decode() == long_text
    pv.write(text, wait=True)  # the IOC is shared by the session
    desc = connected(ectx, epics_ioc.pv("ai.DESC$"))
    assert bytes(desc.read().data).split(b"\0")[0] == b"Analog input for caclient tests"


def test_class_name_and_stsack(ectx: Context, epics_ioc: IOCHandle) -> None:
    pv = connected(ectx, epics_ioc.pv("ai"))
    assert pv.read(data_type=ChannelType.CLASS_NAME).data == ["ai"]
    resp = pv.read(data_type=ChannelType.STSACK_STRING)
    md = resp.metadata
    assert resp.data == ["3.500"]
    assert md.status == 0 and md.severity == 0 and md.ackt is not None and md.acks is not None


def test_put_ackt_and_acks(ectx: Context, epics_ioc: IOCHandle) -> None:
    ao = connected(ectx, epics_ioc.pv("ao"))
    ao.write(85.0, wait=True)  # above HIHI: MAJOR alarm
    md = ao.read(data_type=ChannelType.STSACK_STRING).metadata
    assert md.severity == 2 and md.acks == 2
    ao.write(2, data_type=ChannelType.PUT_ACKS, wait=True)  # acknowledge MAJOR
    assert ao.read(data_type=ChannelType.STSACK_STRING).metadata.acks == 0
    ao.write(0, data_type=ChannelType.PUT_ACKT, wait=True)
    assert ao.read(data_type=ChannelType.STSACK_STRING).metadata.ackt == 0
    ao.write(1, data_type=ChannelType.PUT_ACKT, wait=True)
    ao.write(0.0, wait=True)


def test_server_error_fails_the_operation_at_once(ectx: Context, epics_ioc: IOCHandle) -> None:
    # A write of a string that is not a number: the C IOC answers WRITE_NOTIFY
    # with a failure status, which must fail now with the ECA code.
    pv = connected(ectx, epics_ioc.pv("ao"))
    with pytest.raises(RemoteError) as info:
        pv.write("not a number", data_type=ChannelType.STRING, wait=True, timeout=30)
    assert info.value.status != 1 and info.value.pv == pv.name
    assert pv.circuit_manager._ioids == {}
    assert pv.read().status == 1


def test_many_names_at_once(tmp_path: Path) -> None:
    db = make_numbered_db(tmp_path / "many.db", 10_000, kind="ai")
    with EpicsIOC(db_path=str(db), macros="P=M:") as ioc, Context(env=ioc.env, timeout=60) as ctx:
        names = [f"M:n{i}" for i in range(10_000)]
        results = ctx.read_many(names, timeout=60)
        failures = [r for r in results if isinstance(r, Exception)]
        assert not failures, failures[:3]
        assert ctx.broadcaster.unanswered == 0


def test_duplicate_server_warns_once_and_first_wins(caplog: pytest.LogCaptureFixture) -> None:
    with CaprotoIOC(prefix="DUP:") as a, CaprotoIOC(prefix="DUP:") as b:
        env = dict(a.env)
        env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{a.port} 127.0.0.1:{b.port}"
        with caplog.at_level(logging.WARNING, logger="caclient.search"):
            with Context(env=env, timeout=5) as ctx:
                pv = connected(ctx, "DUP:ai")
                assert pv.server_address in (a.address, b.address)
                assert pv.read().data[0] == pytest.approx(3.5)
                # wait for the second answer by searching again for a fresh name
                for name in ("DUP:ao", "DUP:long"):
                    connected(ctx, name)
    dup = [r for r in caplog.records if "multiple servers" in r.getMessage()]
    assert dup, "no duplicate-server warning"
    assert len({r.getMessage().split()[1] for r in dup}) == len(dup)  # one per name


def test_server_death_fails_pending_operations_at_once() -> None:
    with EpicsIOC() as ioc, Context(env=ioc.env, timeout=10) as ctx:
        slow = connected(ctx, ioc.pv("slow"))
        states = connection_states(slow)
        errors: queue.Queue[BaseException] = queue.Queue()

        def put() -> None:
            try:
                slow.write(5.0, wait=True, timeout=10)
            except BaseException as exc:
                errors.put(exc)

        t = threading.Thread(target=put)
        t.start()
        while not slow.circuit_manager._ioids:  # the write is on the wire
            threading.Event().wait(0.005)
        ioc.stop()
        t.join(5)
        assert not t.is_alive()
        err = errors.get(timeout=1)
        assert isinstance(err, DisconnectedError) and slow.name in str(err)
        assert states.get(timeout=5) == "disconnected"
        assert not slow.connected
        with pytest.raises(CATimeoutError):
            slow.read(timeout=0.2)


def test_blocking_call_on_io_thread_is_refused() -> None:
    caught: list[BaseException] = []

    def body() -> None:
        try:
            ensure_not_io_thread("read")
        except BlockingCallError as exc:
            caught.append(exc)

    t = IOThread(target=body, name="caclient-test-io")
    t.start()
    t.join(5)
    assert caught and isinstance(caught[0], RuntimeError)


def test_broadcaster_cancel_stops_a_search(ioc: IOCHandle) -> None:
    with Context(env=ioc.env) as ctx:
        ctx.get_pvs("NO:SUCH:cancelme")
        ctx.broadcaster.cancel("NO:SUCH:cancelme")
        ctx.get_pvs(ioc.pv("ai"))[0].wait_for_connection(timeout=5)  # a round through the UDP thread
        assert ctx.broadcaster.unanswered == 0


def test_closed_context_is_collectable(ioc: IOCHandle) -> None:
    ctx = Context(env=ioc.env)
    (pv,) = ctx.get_pvs(ioc.pv("ai"))
    pv.read(timeout=5)
    sub = pv.subscribe()
    sub.add_callback(lambda s, r: None)
    ctx.close()
    ref = weakref.ref(ctx)
    del ctx, pv, sub
    gc.collect()
    assert ref() is None


def test_large_response_decodes_once_in_place(ectx: Context, epics_ioc: IOCHandle) -> None:
    pv = connected(ectx, epics_ioc.pv("wf1m"))
    data = np.arange(1_000_000, dtype=float) * 0.25
    pv.write(data, wait=True, timeout=30)
    resp = pv.read(timeout=30)
    wire_before = bytes(resp)
    results: list[np.ndarray] = []
    barrier = threading.Barrier(4)

    def grab() -> None:
        barrier.wait(5)
        results.append(resp.data)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 4
    for got in results:
        assert got is results[0]
        np.testing.assert_array_equal(got, data)
    assert bytes(resp) == wire_before  # still the server's big-endian bytes
    np.testing.assert_array_equal(np.frombuffer(wire_before, ">f8"), data)


@pytest.mark.parametrize("kind", ["epics", "caproto"])
def test_name_server_only_search(kind: str, request: pytest.FixtureRequest) -> None:
    ioc: IOCHandle = request.getfixturevalue(f"{kind}_ioc")
    env = dict(ioc.env)
    env["EPICS_CA_ADDR_LIST"] = ""
    env["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
    env["EPICS_CA_NAME_SERVERS"] = f"127.0.0.1:{ioc.port}"
    with Context(env=env, timeout=10) as ctx:
        assert ctx.broadcaster._targets == []  # no UDP search at all
        pv = connected(ctx, ioc.pv("ai"))
        assert pv.read().data[0] == pytest.approx(3.5)
        results = ctx.read_many([ioc.pv("ao"), ioc.pv("str")], timeout=10)
        assert not [r for r in results if isinstance(r, Exception)]
