"""Context.statistics(), ``caclient stats`` and the engine's DEBUG log lines.

Counters are checked against known traffic on real IOCs (the C IOC and
caproto's): N reads are N messages each way, monitor updates are counted
as delivered or dropped, a restarted IOC counts one reconnect, an unknown
name stays unanswered, a new server's beacon is an anomaly.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from engine_support import connected, connection_states, open_context

from caclient import (
    CallbackStatistics,
    CircuitStatistics,
    Context,
    SearchStatistics,
    Statistics,
)
from caclient._protocol import CircuitProtocol
from caclient._repeater import Repeater
from caclient._search import SearchScheduler
from caclient._stats import LATENCY_SAMPLES, LatencyRing
from caclient._stats_cli import main as stats_main
from caclient._stats_cli import pv_circuit_detail
from caclient.testing import EpicsIOC, IOCHandle, free_port, free_port_pair, loopback_env

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def ctx(ioc: IOCHandle) -> Iterator[Context]:
    yield from open_context(ioc.env, 5.0)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll *predicate* (counters have no event to wait on) until true or *timeout*."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def circuit_of(ctx: Context, pv: Any) -> CircuitStatistics:
    record = ctx.statistics().circuit(pv.server_address, pv.priority)
    assert record is not None
    return record


# ---------------------------------------------------------------- pure parts
def test_latency_ring_percentiles_and_bound() -> None:
    ring = LatencyRing()
    assert ring.percentiles() == (None, None)
    for i in range(1, 101):
        ring.add(i / 1000)
    p50, p99 = ring.percentiles()
    assert p50 == pytest.approx(0.050) and p99 == pytest.approx(0.099)
    for _ in range(LATENCY_SAMPLES):  # the old samples fall out of the ring
        ring.add(1.0)
    assert ring.percentiles() == (1.0, 1.0)
    assert ring.count == 100 + LATENCY_SAMPLES


def test_records_are_frozen_and_slotted() -> None:
    record = CallbackStatistics(1, 0, 0, 0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.backlog = 5  # type: ignore[misc]
    for cls in (Statistics, CircuitStatistics, SearchStatistics, CallbackStatistics):
        assert dataclasses.is_dataclass(cls) and "__slots__" in vars(cls)
        assert not hasattr(record, "__dict__")


def test_scheduler_counts_searches_and_names_each_datagram() -> None:
    sched = SearchScheduler(max_payload=200)
    sched.request([f"PV:{i:03d}" for i in range(20)], 0.0)
    names: list[list[str]] = []
    datagrams = sched.datagrams(0.0, names)
    assert len(names) == len(datagrams) > 1
    assert [n for group in names for n in group] == [f"PV:{i:03d}" for i in range(20)]
    assert sched.searches_sent == 20
    sched.datagrams(1.0)  # every name once more (backoff passed)
    assert sched.searches_sent == 40


class _Sink:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


def test_protocol_counts_messages_bytes_updates_and_drops_in_any_split() -> None:
    hdr = struct.Struct(">HHHHII")
    update = hdr.pack(1, 8, 6, 1, 1, 7) + struct.pack(">d", 1.5)  # EVENT_ADD for subid 7
    stray = hdr.pack(1, 8, 6, 1, 1, 99) + struct.pack(">d", 2.5)  # for a cancelled subscription
    ack = hdr.pack(1, 0, 6, 1, 1, 7)  # EVENT_CANCEL's acknowledgement: no update
    echo = hdr.pack(23, 0, 0, 0, 0, 0)
    data = update * 3 + stray + ack + echo
    for split in (len(data), 1, 5):
        proto = CircuitProtocol(_Sink())  # type: ignore[arg-type]
        proto.monitors[7] = lambda upd: (None, print, ())
        for i in range(0, len(data), split):
            proto.receive_data(data[i : i + split])
        assert proto.bytes_in == len(data)
        assert proto.messages_in == 6
        assert proto.updates == 4 and proto.updates_dropped == 1
        assert len(proto.jobs) == 3


# ---------------------------------------------------------------- against the IOCs
def test_reads_count_one_message_each_way(ctx: Context, ioc: IOCHandle) -> None:
    pv = connected(ctx, ioc.pv("ai"))
    pv.read()
    s0 = circuit_of(ctx, pv)
    pv.read()
    s1 = circuit_of(ctx, pv)
    reply_size = s1.bytes_in - s0.bytes_in
    assert s1.messages_out - s0.messages_out == 1 and s1.messages_in - s0.messages_in == 1
    assert s1.bytes_out - s0.bytes_out == 16  # READ_NOTIFY: a bare header
    assert reply_size >= 16 + 8  # header + one double
    n = 25
    for _ in range(n):
        pv.read()
    s2 = circuit_of(ctx, pv)
    assert s2.messages_out - s1.messages_out == n
    assert s2.messages_in - s1.messages_in == n
    assert s2.bytes_out - s1.bytes_out == 16 * n
    assert s2.bytes_in - s1.bytes_in == reply_size * n
    assert s2.latency_samples - s1.latency_samples == n
    assert s2.latency_p50 is not None and s2.latency_p99 is not None
    assert 0 < s2.latency_p50 <= s2.latency_p99 < 5.0
    assert s2.server == ioc.address and s2.state == "ready" and s2.reconnects == 0
    assert s2.channels == 1 and s2.events_off == 0 and not s2.events_paused


def test_read_many_counts_every_request(ctx: Context, ioc: IOCHandle) -> None:
    names = [ioc.pv(n) for n in ("ai", "ao", "long", "str")]
    assert all(not isinstance(r, Exception) for r in ctx.read_many(names))
    pv = ctx.get_pvs(names[0])[0]
    s0 = circuit_of(ctx, pv)
    ctx.read_many(names)
    s1 = circuit_of(ctx, pv)
    assert s1.messages_out - s0.messages_out == 4 and s1.messages_in - s0.messages_in == 4
    assert s1.bytes_out - s0.bytes_out == 4 * 16


def test_monitor_updates_counted_as_delivered(ctx: Context, ioc: IOCHandle) -> None:
    pv = connected(ctx, ioc.pv("long"))
    got: queue.Queue[int] = queue.Queue()
    sub = pv.subscribe()
    sub.add_callback(lambda s, r: got.put(int(r.data[0])))
    got.get(timeout=5)  # the first update
    for v in (11, 12, 13):
        pv.write(v, wait=True)
    while got.get(timeout=5) != 13:
        pass
    s = circuit_of(ctx, pv)
    assert s.updates_delivered == 4 and s.updates_dropped == 0
    assert s.subscriptions == 1
    assert ctx.statistics().callbacks.jobs_run >= 4
    sub.clear()


def test_coalesced_updates_counted_as_dropped(epics_ioc: IOCHandle) -> None:
    with Context(env=epics_ioc.env, timeout=10) as ctx:
        pv = connected(ctx, epics_ioc.pv("long"))
        pv.write(0, wait=True)
        release = threading.Event()
        seen: list[int] = []
        done = threading.Event()

        def slow(sub: Any, resp: Any) -> None:
            release.wait(10)
            seen.append(int(resp.data[0]))
            if seen[-1] == 50:
                done.set()

        sub = pv.subscribe(all_updates=False)
        sub.add_callback(slow)
        for v in range(1, 51):
            pv.write(v, wait=True)  # each confirmed: its update is in before the next write
        pv.read()  # a round trip after the last update
        release.set()
        assert done.wait(10)
        s = circuit_of(ctx, pv)
        assert s.updates_dropped == sub.dropped > 0
        assert s.updates_delivered + s.updates_dropped == 51  # the first value and 50 writes
        sub.clear()


def test_events_off_counted_under_a_slow_consumer(epics_ioc: IOCHandle) -> None:
    with Context(env=epics_ioc.env, timeout=10) as ctx:
        ctx._backlog_high = 40
        pv = connected(ctx, epics_ioc.pv("long"))
        pv.write(0, wait=True)
        last = threading.Event()

        def slow(sub: Any, resp: Any) -> None:
            if resp.data[0] == 999:
                last.set()
            time.sleep(0.0005)  # a consumer slower than the updates (work, not synchronisation)

        sub = pv.subscribe()
        sub.add_callback(slow)
        for v in range(1000):
            pv.write(v, wait=False)
        assert last.wait(30)
        stats = ctx.statistics()
        record = stats.circuit(epics_ioc.address)
        assert record is not None and record.events_off >= 1
        assert stats.callbacks.backlog_high_water > 40
        assert wait_for(lambda: not circuit_of(ctx, pv).events_paused)  # EVENTS_ON once drained
        sub.clear()


def test_unknown_name_is_unanswered_and_searched_again(ctx: Context, ioc: IOCHandle) -> None:
    connected(ctx, ioc.pv("ai"))
    before = ctx.statistics().search
    assert before.replies >= 1 and before.unanswered == 0
    missing = ioc.pv("no:such:record")
    ctx.get_pvs(missing)
    assert wait_for(lambda: ctx.statistics().search.searches_sent >= before.searches_sent + 3)
    after = ctx.statistics().search
    assert after.unanswered == 1 and after.unanswered_names == (missing,)
    assert after.datagrams_sent > before.datagrams_sent
    assert after.replies == before.replies


def test_reconnect_counted_after_an_ioc_restart(caplog: pytest.LogCaptureFixture) -> None:
    port, _ = free_port_pair()
    env = loopback_env(server_port=port)
    ioc = EpicsIOC()
    caplog.set_level(logging.DEBUG, logger="caclient")
    try:
        ioc.start(port=port)
        with Context(env=env, timeout=10) as ctx:
            pv = connected(ctx, ioc.pv("ai"))
            pv.read()
            assert circuit_of(ctx, pv).reconnects == 0
            states = connection_states(pv)
            ioc.stop()
            assert states.get(timeout=20) == "disconnected"
            ioc.start(port=port)
            assert states.get(timeout=30) == "connected"
            pv.read()
            s = circuit_of(ctx, pv)
            assert s.reconnects == 1
            assert s.messages_in < 10  # the new circuit counts from zero
        where = f"127.0.0.1:{port}"
        text = caplog.text
        assert f"circuit disconnected from {where} priority 0: server closed the connection" in text
        assert text.count(f"circuit connected to {where} priority 0") == 2
        assert f"circuit disconnected from {where} priority 0: closed by the client" in text
    finally:
        ioc.stop()


def beacon(port: int, beacon_id: int) -> bytes:
    return struct.pack(">HHHHII", 13, 0, 13, port, beacon_id, 0)


def test_beacon_anomaly_counted() -> None:
    port = free_port("udp")
    env = loopback_env(repeater_port=port)  # registers with this repeater, never spawns one
    with Repeater(port).start() as rep, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        ctx = Context(env=env, timeout=5)
        try:
            assert wait_for(lambda: ctx.statistics().search.repeater_registered)
            before = ctx.statistics().search
            server.sendto(beacon(40020, 5), rep.address)  # a server never seen: an anomaly
            assert wait_for(lambda: ctx.statistics().search.beacon_anomalies == before.beacon_anomalies + 1)
            assert ctx.statistics().search.beacons == before.beacons + 1
        finally:
            ctx.close()


def test_debug_log_names_pv_and_server(ioc: IOCHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="caclient")
    name = ioc.pv("ao")
    with Context(env=ioc.env, timeout=5) as ctx:
        connected(ctx, name)
    host, port = ioc.address
    where = f"{host}:{port}"
    search = [r.getMessage() for r in caplog.records if r.name == "caclient.search"]
    circuit = [r.getMessage() for r in caplog.records if r.name == "caclient.circuit"]
    assert any(m.startswith("search sent to ") and m.endswith(f": {name}") for m in search), search
    assert f"found {name} on {where} (protocol 4.13)" in "\n".join(search)
    # (whether the channel is already waiting when the TCP connection is up is a race)
    assert any(m.startswith(f"circuit connected to {where} priority 0 (") for m in circuit), circuit
    assert f"channel {name} connected on {where}" in "\n".join(circuit)
    assert f"circuit disconnected from {where} priority 0: closed by the client (1 channels: {name})" in circuit


# ---------------------------------------------------------------- caclient stats
@pytest.fixture
def cli_env(ioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> IOCHandle:
    for key, value in ioc.env.items():
        monkeypatch.setenv(key, value)
    return ioc


def test_stats_command_reports_pvs_and_counters(cli_env: IOCHandle, capsys: pytest.CaptureFixture[str]) -> None:
    ioc = cli_env
    good = [ioc.pv("ai"), ioc.pv("ao")]
    missing = ioc.pv("not:there")
    assert stats_main(["-w", "1.5", *good, missing]) == 1
    out = capsys.readouterr().out
    host, port = ioc.address
    assert out.startswith("PVs: 3, 2 connected and read, 1 not\n")
    for name in good:
        assert f"    {name}  " in out and f"{host}:{port}  read ok" in out
    assert f"{missing}  *** not found (no server answered the search)" in out
    assert f"Circuit to {host}:{port}, priority 0 (ready)" in out
    # handshake (3) + 2 CREATE_CHAN + 2 READ_NOTIFY out
    assert "messages out / in  7 / " in out
    assert "(1 samples)" in out or "(2 samples)" in out
    assert f"unanswered names  1: {missing}" in out
    assert "Callbacks" in out and "backlog   0" in out

    assert stats_main([*good]) == 0
    assert "PVs: 2, 2 connected and read, 0 not" in capsys.readouterr().out


def test_stats_command_debug_log_and_bad_options(cli_env: IOCHandle, capsys: pytest.CaptureFixture[str]) -> None:
    name = cli_env.pv("ai")
    assert stats_main(["-d", name]) == 0
    err = capsys.readouterr().err
    assert f"caclient.search: found {name} on" in err
    assert "caclient.circuit: circuit connected to" in err
    assert logging.getLogger("caclient").level == logging.NOTSET  # restored
    with pytest.raises(SystemExit) as exc:
        stats_main(["-w", "0", name])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        stats_main([])
    assert "usage: caclient stats" in capsys.readouterr().err


def test_cainfo_style_circuit_detail(ctx: Context, ioc: IOCHandle) -> None:
    pv = connected(ctx, ioc.pv("ai"))
    pv.read()
    text = pv_circuit_detail(ctx, pv)
    host, port = ioc.address
    lines = text.splitlines()
    assert lines[0] == f"Circuit to {host}:{port}, priority 0 (ready)"
    assert any(line.split() == ["channels", "1"] for line in lines)
    assert "round trip" in text and "reconnects" in text
    (idle,) = ctx.get_pvs(ioc.pv("ao"))
    idle.go_idle()
    assert pv_circuit_detail(ctx, idle) == f"{idle.name}: not connected (idle), no circuit"
