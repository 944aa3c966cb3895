"""Fault injection with a scripted server: what real IOCs do not send on demand."""

from __future__ import annotations

import logging
import queue
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from engine_support import connected, connection_states, open_context
from fakeserver import HDR, FakeServer, msg

from caclient import AccessDeniedError, AccessRights, Context, RemoteError


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer({"FAKE:a": 1.5, "FAKE:b": 2.5}) as s:
        yield s


@pytest.fixture
def ctx(server: FakeServer) -> Iterator[Context]:
    yield from open_context(server.env, 5)


def test_create_channel_failure_is_retried(server: FakeServer, ctx: Context) -> None:
    server.create_fail["FAKE:a"] = 1
    pv = connected(ctx, "FAKE:a")
    assert pv.read().data[0] == 1.5
    creates = [h for h in server.received if h[0] == 18]
    assert len(creates) == 2  # refused once, then searched again and created


def test_server_disconn_then_reconnect(server: FakeServer, ctx: Context) -> None:
    pv = connected(ctx, "FAKE:a")
    states = connection_states(pv)
    server.drop_channel("FAKE:a")
    assert states.get(timeout=5) == "disconnected"
    assert states.get(timeout=5) == "connected"
    assert pv.read().data[0] == 1.5


def test_access_rights_change_live(server: FakeServer, ctx: Context) -> None:
    pv = connected(ctx, "FAKE:a")
    rights: queue.Queue[AccessRights] = queue.Queue()
    pv.access_rights_callback.add_callback(lambda p, r: rights.put(r))
    server.set_rights("FAKE:a", 1)
    assert rights.get(timeout=5) == AccessRights.READ
    with pytest.raises(AccessDeniedError):
        pv.write(3.0)
    server.set_rights("FAKE:a", 3)
    assert rights.get(timeout=5) == AccessRights.READ_WRITE
    assert pv.write(3.0).status == 1


def test_protocol_error_fails_the_read_at_once(server: FakeServer, ctx: Context) -> None:
    server.read_error.add("FAKE:a")
    pv = connected(ctx, "FAKE:a")
    with pytest.raises(RemoteError) as info:
        pv.read(timeout=60)  # must not wait for the timeout
    assert info.value.status == 114 and "FAKE:a" in str(info.value) and "no reads today" in str(info.value)
    assert pv.circuit_manager._ioids == {}


@pytest.mark.parametrize(
    "garbage",
    [
        msg(0x7777),  # unknown command
        HDR.pack(15, 0xFFFF, 6, 0, 1, 1) + struct.pack(">II", 0xF0000000, 1),  # absurd payload claim
    ],
    ids=["unknown-command", "absurd-size"],
)
def test_malformed_frame_drops_only_that_circuit(
    garbage: bytes, server: FakeServer, ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeServer({"OTHER:x": 9.0}) as other:
        a = connected(ctx, "FAKE:a")
        states = connection_states(a)
        with Context(env=other.env, timeout=5) as ctx2:
            x = connected(ctx2, "OTHER:x")
            conn, _, _ = server.channel("FAKE:a")
            with caplog.at_level(logging.ERROR, logger="caclient.circuit"):
                conn.sendall(garbage)
                assert states.get(timeout=5) == "disconnected"
            assert "protocol error" in caplog.text
            assert states.get(timeout=5) == "connected"  # searched again and reconnected
            assert a.read().data[0] == 1.5
            assert x.read().data[0] == 9.0  # the other circuit never noticed


def test_heartbeat_keeps_a_quiet_circuit(server: FakeServer) -> None:
    env = {**server.env, "EPICS_CA_CONN_TMO": "0.2", "CACLIENT_ECHO_TIMEOUT": "0.5"}
    with Context(env=env, timeout=5) as ctx:
        pv = connected(ctx, "FAKE:a")
        states = connection_states(pv)
        with pytest.raises(queue.Empty):
            states.get(timeout=1.0)  # five quiet periods: echoes answered, no disconnect
        assert sum(1 for h in server.received if h[0] == 23) >= 2
        assert pv.connected and pv.time_since_last_heard() < 1.0


def test_unresponsive_server_is_dropped_and_found_again(server: FakeServer) -> None:
    env = {**server.env, "EPICS_CA_CONN_TMO": "0.2", "CACLIENT_ECHO_TIMEOUT": "0.3"}
    with Context(env=env, timeout=5) as ctx:
        pv = connected(ctx, "FAKE:a")
        states = connection_states(pv)
        server.stalled = True
        assert states.get(timeout=5) == "disconnected"
        server.stalled = False
        assert states.get(timeout=5) == "connected"
        assert pv.read().data[0] == 1.5


def test_name_server_link_reconnects(server: FakeServer) -> None:
    env = {**server.env, "EPICS_CA_ADDR_LIST": "", "EPICS_CA_NAME_SERVERS": f"127.0.0.1:{server.port}"}
    with Context(env=env, timeout=5) as ctx:
        a = connected(ctx, "FAKE:a")
        assert a.read().data[0] == 1.5
        states = connection_states(a)
        server.drop_clients()  # the name-server link and the circuit both go
        assert states.get(timeout=5) == "disconnected"
        assert states.get(timeout=10) == "connected"  # found again over the reconnected link
        b = connected(ctx, "FAKE:b")
        assert b.read().data[0] == 2.5
        assert not [h for h in server.received if h[0] == 6 and h[1] == 0]  # searches carry a name


def test_forged_huge_header_allocates_nothing(server: FakeServer, ctx: Context) -> None:
    """Sizes that add up, for 2 GiB the channel cannot hold: dropped, not allocated."""
    import psutil

    pv = connected(ctx, "FAKE:a")
    states = connection_states(pv)
    sub = pv.subscribe()
    got: queue.Queue[Any] = queue.Queue()
    sub.add_callback(lambda s, r: got.put(r))
    subid = next(iter(pv.circuit_manager._subs))
    n = 0x0FFFFFFE
    vms = psutil.Process().memory_info().vms
    conn, _, _ = server.channel("FAKE:a")
    conn.sendall(struct.pack(">HHHHIIII", 1, 0xFFFF, 6, 0, 1, subid, n * 8, n) + b"\0" * 1024)
    assert states.get(timeout=5) == "disconnected"
    assert psutil.Process().memory_info().vms - vms < 512 * 2**20
    assert states.get(timeout=5) == "connected"
    sub.clear()


def test_late_large_reply_is_skipped(server: FakeServer, ctx: Context) -> None:
    """A large reply for an operation nobody waits for any more is read past, not kept."""
    pv = connected(ctx, "FAKE:a")
    states = connection_states(pv)
    conn, _, _ = server.channel("FAKE:a")
    n = 200_000  # 1.6 MB, larger than the receive buffer
    conn.sendall(struct.pack(">HHHHIIII", 15, 0xFFFF, 6, 0, 1, 987654, n * 8, n) + b"\0" * (n * 8))
    assert pv.read().data[0] == 1.5  # the stream is still in step
    assert states.empty()


def test_max_array_bytes_caps_any_message_when_auto_is_off(server: FakeServer) -> None:
    env = {**server.env, "EPICS_CA_AUTO_ARRAY_BYTES": "NO", "EPICS_CA_MAX_ARRAY_BYTES": "16384"}
    with Context(env=env, timeout=5) as ctx:
        pv = connected(ctx, "FAKE:a")
        states = connection_states(pv)
        conn, _, _ = server.channel("FAKE:a")
        n = 5000  # 40,000 bytes: a plain header, over the 16 KiB limit
        conn.sendall(HDR.pack(15, n * 8, 6, n, 1, 424242) + b"\0" * (n * 8))
        assert states.get(timeout=5) == "disconnected"
        assert states.get(timeout=5) == "connected"
