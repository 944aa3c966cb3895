"""The TCP fault proxy (tools/faultproxy.py), alone and between caclient and a real IOC.

The first group checks the proxy itself with plain sockets; the second puts it
between the engine and the EPICS C IOC (searches relayed through the proxy so
the client connects through it) and checks what the engine does when the
circuit stalls, is cut, reset, or fed bytes that break the protocol.
"""

from __future__ import annotations

import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from net_support import assert_quiet

from caclient import CATimeoutError, Context
from caclient.testing import IOCHandle
from tools.faultproxy import FaultProxy, rewrite_search_replies

WAIT = 5.0  # deadline for things that should happen at once

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- plain sockets
@contextmanager
def proxied_pair(**kwargs: Any) -> Iterator[tuple[FaultProxy, socket.socket, socket.socket]]:
    """A server socket, a proxy in front of it, and one connection through it.

    Yields ``(proxy, client, upstream)``: ``client`` is connected to the proxy,
    ``upstream`` is the server's end of the proxy's connection.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    proxy: FaultProxy | None = None
    client: socket.socket | None = None
    upstream: socket.socket | None = None
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(WAIT)
        proxy = FaultProxy(server.getsockname(), **kwargs)
        client = socket.create_connection(proxy.address, timeout=WAIT)
        upstream, _ = server.accept()
        upstream.settimeout(WAIT)
        assert proxy.wait_until(lambda p: p.connections == 1, WAIT)
        yield proxy, client, upstream
    finally:
        for sock in (client, upstream):
            if sock is not None:
                sock.close()
        if proxy is not None:
            proxy.close()
        server.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"EOF after {data!r}")
        data += chunk
    return data


def test_forwards_both_ways() -> None:
    with proxied_pair() as (proxy, client, upstream):
        client.sendall(b"ping")
        assert recv_exactly(upstream, 4) == b"ping"
        upstream.sendall(b"pong!")
        assert recv_exactly(client, 5) == b"pong!"
        assert proxy.wait_until(lambda p: p.bytes_forwarded == 9, WAIT)
        assert (proxy.bytes_to_server, proxy.bytes_to_client) == (4, 5)
        assert proxy.connections == 1 and proxy.accepted == 1
        assert proxy.address == ("127.0.0.1", proxy.port)


def test_large_transfer_in_order() -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB
    with proxied_pair() as (proxy, client, upstream):
        sender = threading.Thread(target=upstream.sendall, args=(payload,), name="test-sender")
        sender.start()
        try:
            assert recv_exactly(client, len(payload)) == payload
        finally:
            sender.join(WAIT)
        assert proxy.wait_until(lambda p: p.bytes_to_client == len(payload), WAIT)


def test_stall_holds_bytes_and_resume_delivers_them() -> None:
    with proxied_pair() as (proxy, client, upstream):
        proxy.stall()
        assert proxy.stalled
        client.sendall(b"request")
        upstream.sendall(b"reply")
        assert_quiet(upstream)
        assert_quiet(client)
        assert proxy.connections == 1  # the sockets stay open
        proxy.resume()
        assert recv_exactly(upstream, 7) == b"request"
        assert recv_exactly(client, 5) == b"reply"


def test_delay_applies_to_server_data_only() -> None:
    with proxied_pair() as (proxy, client, upstream):
        proxy.delay(0.4)
        start = time.monotonic()
        client.sendall(b"up")
        assert recv_exactly(upstream, 2) == b"up"
        up_latency = time.monotonic() - start
        start = time.monotonic()
        upstream.sendall(b"down")
        assert recv_exactly(client, 4) == b"down"
        down_latency = time.monotonic() - start
        assert down_latency >= 0.4
        assert up_latency < 0.4
        proxy.delay(0)
        start = time.monotonic()
        upstream.sendall(b"fast")
        assert recv_exactly(client, 4) == b"fast"
        assert time.monotonic() - start < 0.4
        with pytest.raises(ValueError):
            proxy.delay(-1)


def test_cut_closes_with_eof_and_accepts_new_connections() -> None:
    with proxied_pair() as (proxy, client, upstream):
        assert proxy.cut() == 1
        assert client.recv(1) == b""
        assert upstream.recv(1) == b""
        assert proxy.connections == 0
        with socket.create_connection(proxy.address, timeout=WAIT):
            assert proxy.wait_until(lambda p: p.accepted == 2, WAIT)


def test_reset_closes_with_rst() -> None:
    with proxied_pair() as (proxy, client, upstream):
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            client.recv(1)
        with pytest.raises(ConnectionResetError):
            upstream.recv(1)
        assert proxy.connections == 0


def test_inject_to_client() -> None:
    with proxied_pair() as (proxy, client, upstream):
        upstream.sendall(b"a")
        assert recv_exactly(client, 1) == b"a"
        assert proxy.inject_to_client(b"\x77\x77garbage") == 1
        assert recv_exactly(client, 9) == b"\x77\x77garbage"
        upstream.sendall(b"b")
        assert recv_exactly(client, 1) == b"b"
        assert proxy.wait_until(lambda p: p.bytes_to_client == 2, WAIT)  # injected bytes not counted


def test_refuse_and_accept_again() -> None:
    with proxied_pair() as (proxy, client, upstream):
        proxy.refuse(True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.address, timeout=WAIT).close()
        client.sendall(b"still")  # existing connections carry on
        assert recv_exactly(upstream, 5) == b"still"
        proxy.refuse(False)
        with socket.create_connection(proxy.address, timeout=WAIT):
            assert proxy.wait_until(lambda p: p.accepted == 2, WAIT)


def test_half_close_is_forwarded() -> None:
    with proxied_pair() as (proxy, client, upstream):
        client.shutdown(socket.SHUT_WR)
        assert upstream.recv(1) == b""
        upstream.sendall(b"late")
        assert recv_exactly(client, 4) == b"late"
        upstream.close()
        assert client.recv(1) == b""
        assert proxy.wait_until(lambda p: p.connections == 0, WAIT)


def test_unreachable_target_closes_client() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()  # bound but not listening: connections are refused
    try:
        with FaultProxy(dead) as proxy, socket.create_connection(proxy.address, timeout=WAIT) as client:
            assert client.recv(1) == b""
            assert proxy.wait_until(lambda p: p.connections == 0, WAIT)
    finally:
        probe.close()


def test_close_stops_thread_and_controls() -> None:
    with proxied_pair() as (proxy, client, _upstream):
        thread = next(t for t in threading.enumerate() if t.name == f"faultproxy-loop[{proxy.port}]")
        proxy.close()
        assert not thread.is_alive()
        assert client.recv(1) == b""
        with pytest.raises(RuntimeError):
            proxy.stall()
        proxy.close()  # idempotent


def test_rewrite_search_replies() -> None:
    header = struct.Struct(">HHHHII")
    version = header.pack(0, 0, 0, 13, 0, 0)
    reply = header.pack(6, 8, 5064, 0, 0x0A000001, 42) + struct.pack(">H6x", 13)
    not_found = header.pack(14, 0, 10, 13, 7, 7)
    data = version + reply + not_found
    out = rewrite_search_replies(data, 40000)
    assert len(out) == len(data)
    assert out[:16] == version and out[-16:] == not_found
    cmd, size, dtype, count, p1, p2 = header.unpack_from(out, 16)
    assert (cmd, size, dtype, count, p2) == (6, 8, 40000, 0, 42)
    assert socket.inet_ntoa(p1.to_bytes(4, "big")) == "127.0.0.1"
    assert out[32:40] == reply[16:]
    assert rewrite_search_replies(b"\0" * 5, 1) == b"\0" * 5  # truncated: untouched


# ---------------------------------------------------------------- the engine through the proxy
class States:
    """Connection-state callback that records states and lets tests wait for them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.seen: list[str] = []

    def __call__(self, pv: Any, state: str) -> None:
        with self._cond:
            self.seen.append(state)
            self._cond.notify_all()

    def wait_for(self, expected: list[str], start: int, timeout: float = WAIT) -> list[str]:
        """Wait until ``seen[start:]`` is at least `expected` long; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.seen) - start < len(expected):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self.seen[start:]


@pytest.fixture
def proxy(epics_ioc: IOCHandle) -> Iterator[FaultProxy]:
    with FaultProxy(epics_ioc.address, relay_search=True) as p:
        yield p


@pytest.fixture
def engine(epics_ioc: IOCHandle, proxy: FaultProxy) -> Iterator[Context]:
    env = epics_ioc.env
    env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{proxy.port}"
    env["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
    ctx = Context(env=env, timeout=5)
    try:
        yield ctx
    finally:
        ctx.close()


def connect(ctx: Context, name: str) -> tuple[Any, States]:
    """Connect a PV with a recording connection callback; wait for 'connected'."""
    states = States()
    (pv,) = ctx.get_pvs(name, connection_state_callback=states)
    pv.wait_for_connection()
    assert states.wait_for(["connected"], 0) == ["connected"]
    return pv, states


def test_engine_reads_through_proxy(epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context) -> None:
    pv, _ = connect(engine, epics_ioc.pv("ai"))
    assert pv.read().data[0] == 3.5
    assert pv.server_address == proxy.address  # the rewritten search reply was used
    assert proxy.accepted == 1
    assert proxy.searches_relayed >= 1 and proxy.search_replies_relayed >= 1
    assert proxy.bytes_to_client > 0 and proxy.bytes_to_server > 0


def test_stall_times_out_a_read_and_resume_recovers(epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context) -> None:
    pv, states = connect(engine, epics_ioc.pv("ai"))
    proxy.stall()
    with pytest.raises(CATimeoutError):
        pv.read(timeout=0.5)
    proxy.resume()  # the late reply arrives and is dropped
    assert pv.read().data[0] == 3.5
    assert states.seen == ["connected"]
    assert proxy.accepted == 1


def test_stall_past_the_heartbeat_disconnects_and_resume_recovers(epics_ioc: IOCHandle, proxy: FaultProxy) -> None:
    env = epics_ioc.env
    env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{proxy.port}"
    env["EPICS_CA_CONN_TMO"] = "0.3"  # ECHO after 0.3 s of silence...
    env["CACLIENT_ECHO_TIMEOUT"] = "0.3"  # ...unanswered for 0.3 s: unresponsive
    ctx = Context(env=env, timeout=5)
    try:
        pv, states = connect(ctx, epics_ioc.pv("ai"))
        proxy.stall()
        assert states.wait_for(["disconnected"], 1) == ["disconnected"]
        proxy.resume()
        assert states.wait_for(["disconnected", "connected"], 1) == ["disconnected", "connected"]
        assert pv.read().data[0] == 3.5
        assert states.seen == ["connected", "disconnected", "connected"]
    finally:
        ctx.close()


def test_delay_slows_reads(epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context) -> None:
    pv, _ = connect(engine, epics_ioc.pv("ai"))
    proxy.delay(0.3)
    start = time.monotonic()
    assert pv.read().data[0] == 3.5
    assert time.monotonic() - start >= 0.3
    proxy.delay(0)


@pytest.mark.parametrize("fault", ["cut", "reset"])
def test_lost_circuit_disconnects_and_reconnects(
    epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context, fault: str
) -> None:
    pv, states = connect(engine, epics_ioc.pv("ai"))
    updates: queue.Queue[float] = queue.Queue()
    pv.subscribe().add_callback(lambda resp: updates.put(float(resp.data[0])))
    assert updates.get(timeout=WAIT) == 3.5
    searches = proxy.searches_relayed
    assert getattr(proxy, fault)() == 1
    assert states.wait_for(["disconnected", "connected"], 1) == ["disconnected", "connected"]
    assert proxy.searches_relayed > searches  # searched again, through the relay
    assert proxy.accepted == 2
    assert updates.get(timeout=WAIT) == 3.5  # the subscription was re-established
    assert pv.read().data[0] == 3.5
    assert states.seen == ["connected", "disconnected", "connected"]


def test_bad_command_drops_and_reestablishes_the_circuit(
    epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context, caplog: pytest.LogCaptureFixture
) -> None:
    pv, states = connect(engine, epics_ioc.pv("ai"))
    with caplog.at_level(logging.ERROR, logger="caclient.circuit"):
        assert proxy.inject_to_client(b"\x77\x77" + b"\0" * 14) == 1
        assert states.wait_for(["disconnected", "connected"], 1) == ["disconnected", "connected"]
    assert any("unknown command 30583" in r.getMessage() for r in caplog.records)
    assert proxy.accepted == 2
    assert pv.read().data[0] == 3.5


def test_refused_reconnect_recovers_when_accepting_again(
    epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context
) -> None:
    pv, states = connect(engine, epics_ioc.pv("ai"))
    proxy.refuse(True)
    proxy.cut()
    assert states.wait_for(["disconnected"], 1) == ["disconnected"]
    proxy.refuse(False)
    assert states.wait_for(["disconnected", "connected"], 1, timeout=15) == ["disconnected", "connected"]
    assert pv.read().data[0] == 3.5


def test_refused_connections_are_retried_with_backoff(epics_ioc: IOCHandle, proxy: FaultProxy, engine: Context) -> None:
    _pv, states = connect(engine, epics_ioc.pv("ai"))
    proxy.refuse(True)
    try:
        proxy.cut()
        assert states.wait_for(["disconnected"], 1) == ["disconnected"]
        before = proxy.searches_relayed
        deadline = time.monotonic() + 1.0
        proxy.wait_until(lambda p: time.monotonic() >= deadline or p.searches_relayed - before > 50, 2.0)
        assert proxy.searches_relayed - before <= 50
    finally:
        proxy.refuse(False)
