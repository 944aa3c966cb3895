"""The CA repeater (caclient._repeater): registration, fan-out, pruning, a real IOC's beacons.

Every repeater here binds 127.0.0.1 on a fresh port; nothing uses 5065.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from net_support import assert_quiet
from signal_support import HAS_WCHAN, run_child

from caclient import Context
from caclient._repeater import Repeater, cli_main, repeater_port_from_env, run_repeater
from caclient.testing import EpicsIOC, free_port, loopback_env

HDR = struct.Struct(">HHHHII")
REGISTER = HDR.pack(24, 0, 0, 0, 0, 0)
NOOP = HDR.pack(0, 0, 0, 0, 0, 0)
LOOPBACK_INT = 0x7F000001
WAIT = 5.0
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


def beacon(port: int, beacon_id: int, address: int = LOOPBACK_INT, version: int = 13) -> bytes:
    """A CA_PROTO_RSRV_IS_UP message as a server sends it."""
    return HDR.pack(13, 0, version, port, beacon_id, address)


@pytest.fixture
def repeater() -> Iterator[Repeater]:
    rep = Repeater(free_port("udp")).start()
    try:
        yield rep
    finally:
        rep.close()


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Make UDP sockets on 127.0.0.1 with ``make()``; all are closed at the end."""
    made: list[socket.socket] = []
    try:
        yield made
    finally:
        for sock in made:
            sock.close()


def udp(made: list[socket.socket]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    made.append(sock)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(WAIT)
    return sock


def register(sock: socket.socket, rep: Repeater | tuple[str, int], message: bytes = REGISTER) -> tuple[int, ...]:
    """Register `sock` with a repeater (or at an address); return the confirm's header fields."""
    sock.sendto(message, rep.address if isinstance(rep, Repeater) else rep)
    data = sock.recv(1024)
    assert len(data) == 16
    return HDR.unpack(data)


def addr(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()
    return (host, port)


# ---------------------------------------------------------------- registration
def test_register_gets_confirm_with_client_address(repeater: Repeater, sockets: list[socket.socket]) -> None:
    client = udp(sockets)
    assert register(client, repeater) == (17, 0, 0, 0, 0, LOOPBACK_INT)
    assert repeater.clients == [addr(client)]
    assert repeater.address == ("127.0.0.1", repeater.port)


def test_zero_length_datagram_registers(repeater: Repeater, sockets: list[socket.socket]) -> None:
    client = udp(sockets)
    assert register(client, repeater, b"") == (17, 0, 0, 0, 0, LOOPBACK_INT)
    assert repeater.clients == [addr(client)]


def test_registering_again_keeps_one_entry(repeater: Repeater, sockets: list[socket.socket]) -> None:
    client = udp(sockets)
    register(client, repeater)
    assert register(client, repeater)[0] == 17
    assert repeater.clients == [addr(client)]
    assert repeater.registrations == 2


def test_new_client_sends_noop_to_the_others(repeater: Repeater, sockets: list[socket.socket]) -> None:
    first, second = udp(sockets), udp(sockets)
    register(first, repeater)
    register(second, repeater)
    assert first.recv(1024) == NOOP
    assert_quiet(second)  # no no-op back to the one that registered
    assert repeater.clients == [addr(first), addr(second)]


def test_registration_from_a_non_local_address_is_ignored(sockets: list[socket.socket]) -> None:
    # A datagram cannot come from a foreign address on loopback: feed one to the handler.
    rep = Repeater(free_port("udp"))
    try:
        rep.bind()
        rep._datagram(REGISTER, ("192.0.2.1", 40000))  # TEST-NET-1: never local
        assert rep.clients == []
        assert rep.registrations == 1
    finally:
        rep.close()


# ---------------------------------------------------------------- fan-out
def test_datagrams_fan_out_to_every_client_but_the_sender(repeater: Repeater, sockets: list[socket.socket]) -> None:
    a, b, server = udp(sockets), udp(sockets), udp(sockets)
    register(a, repeater)
    register(b, repeater)
    assert a.recv(1024) == NOOP
    message = beacon(40000, 7)
    server.sendto(message, repeater.address)
    assert a.recv(1024) == message
    assert b.recv(1024) == message
    odd = b"not a CA message at all"
    a.sendto(odd, repeater.address)  # anything is forwarded, never back to its sender
    assert b.recv(1024) == odd
    assert_quiet(a)
    assert_quiet(server)  # not registered
    assert repeater.fanned_out == 2


def test_beacon_without_address_gets_the_senders(repeater: Repeater, sockets: list[socket.socket]) -> None:
    client, server = udp(sockets), udp(sockets)
    register(client, repeater)
    server.sendto(beacon(40001, 3, address=0), repeater.address)
    assert HDR.unpack(client.recv(1024)) == (13, 0, 13, 40001, 3, LOOPBACK_INT)


def test_registration_followed_by_more_is_split(repeater: Repeater, sockets: list[socket.socket]) -> None:
    a, b = udp(sockets), udp(sockets)
    register(a, repeater)
    trailer = beacon(40002, 9)
    assert register(b, repeater, REGISTER + trailer)[0] == 17
    assert a.recv(1024) == NOOP
    assert a.recv(1024) == trailer
    assert_quiet(b)


# ---------------------------------------------------------------- pruning
def test_departed_client_is_pruned_when_a_new_one_registers(repeater: Repeater, sockets: list[socket.socket]) -> None:
    gone, stays = udp(sockets), udp(sockets)
    register(gone, repeater)
    gone_addr = addr(gone)
    gone.close()
    register(stays, repeater)
    assert repeater.wait_for_clients(lambda clients: clients == [addr(stays)], WAIT), repeater.clients
    assert gone_addr not in repeater.clients


def test_departed_client_is_pruned_when_sending_to_it_fails(repeater: Repeater, sockets: list[socket.socket]) -> None:
    stays, gone, server = udp(sockets), udp(sockets), udp(sockets)
    register(stays, repeater)
    register(gone, repeater)
    assert stays.recv(1024) == NOOP
    gone.close()
    # The first send to the closed port "succeeds"; its ICMP error makes a later one fail.
    for beacon_id in range(20):
        message = beacon(40003, beacon_id)
        server.sendto(message, repeater.address)
        assert stays.recv(1024) == message
        if repeater.wait_for_clients(lambda clients: clients == [addr(stays)], 0.2):
            break
    assert repeater.clients == [addr(stays)]


# ---------------------------------------------------------------- lifecycle
def test_second_repeater_on_the_same_port_cannot_bind(repeater: Repeater) -> None:
    other = Repeater(repeater.port)
    try:
        with pytest.raises(OSError) as info:
            other.bind()
        assert info.value.errno == errno.EADDRINUSE
    finally:
        other.close()
    # The command exits quietly with status 0, like caRepeater.
    assert cli_main(["--port", str(repeater.port)]) == 0


def test_close_stops_the_thread(sockets: list[socket.socket]) -> None:
    rep = Repeater(free_port("udp")).start()
    client = udp(sockets)
    register(client, rep)
    thread = next(t for t in threading.enumerate() if t.name == f"caclient-repeater[{rep.port}]")
    rep.close()
    assert not thread.is_alive()
    assert rep.clients == []
    rep.close()  # idempotent
    with pytest.raises(RuntimeError):
        rep.start()


def test_run_repeater_until_stop_is_set(sockets: list[socket.socket]) -> None:
    port = free_port("udp")
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_repeater(port, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="test-run-repeater", daemon=True)
    thread.start()
    try:
        client = udp(sockets)
        client.settimeout(0.2)
        deadline = time.monotonic() + WAIT
        confirm = b""
        while not confirm and time.monotonic() < deadline:  # until it is bound
            client.sendto(REGISTER, ("127.0.0.1", port))
            try:
                confirm = client.recv(1024)
            except TimeoutError:
                pass
        assert HDR.unpack(confirm)[0] == 17
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert errors == []


def test_repeater_port_from_env() -> None:
    assert repeater_port_from_env({}) == 5065
    assert repeater_port_from_env({"EPICS_CA_REPEATER_PORT": " 15065 "}) == 15065
    for bad in ("x", "0", "70000"):
        with pytest.raises(ValueError):
            repeater_port_from_env({"EPICS_CA_REPEATER_PORT": bad})


def test_cli_rejects_host_with_any() -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["--any", "--host", "127.0.0.1"])
    assert info.value.code == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_command_exits_cleanly_on_signal(sockets: list[socket.socket], sig: signal.Signals) -> None:
    port = free_port("udp")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    code = "import sys; from caclient._repeater import cli_main; sys.exit(cli_main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client = udp(sockets)
        client.settimeout(0.2)
        deadline = time.monotonic() + 20
        confirm = b""
        while not confirm and time.monotonic() < deadline and proc.poll() is None:
            client.sendto(REGISTER, ("127.0.0.1", port))
            try:
                confirm = client.recv(1024)
            except TimeoutError:
                pass
        assert HDR.unpack(confirm) == (17, 0, 0, 0, 0, LOOPBACK_INT)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert out == "" and err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


_SIGNAL_ON_ANOTHER_THREAD = """
import signal, sys
from signal_support import signal_when_main_sleeps
from caclient._repeater import Repeater

rep = Repeater(int(sys.argv[1]))
rep.bind()
restore = rep.stop_on_signals()
signal_when_main_sleeps(signal.SIGTERM, "poll_schedule_timeout")  # (in select())
try:
    rep.serve()
finally:
    restore()
    rep.close()
"""


@pytest.mark.skipif(not HAS_WCHAN, reason="needs Linux's /proc wchan")
def test_a_signal_that_does_not_interrupt_select_still_stops_the_command() -> None:
    # The CI failure this pins down: SIGTERM landing just before select() blocked
    # ran no handler until a datagram came, so the repeater never exited.
    done = run_child(_SIGNAL_ON_ANOTHER_THREAD, str(free_port("udp")), timeout=15)
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == b""


# ---------------------------------------------------------------- a real IOC's beacons
def test_epics_ioc_beacons_reach_a_registered_client(
    monkeypatch: pytest.MonkeyPatch, sockets: list[socket.socket]
) -> None:
    port = free_port("udp")
    # IOCs started now beacon to this port, at most every second.
    monkeypatch.setenv("EPICS_CA_REPEATER_PORT", str(port))
    monkeypatch.setenv("EPICS_CAS_BEACON_PERIOD", "1.0")
    with Repeater(port).start() as rep:
        client = udp(sockets)
        register(client, rep)
        ioc = EpicsIOC()
        try:
            ioc.start()
            ioc_port = ioc.port
            assert ioc.env["EPICS_CAS_BEACON_PORT"] == str(port)
            beacons: list[tuple[int, ...]] = []
            deadline = time.monotonic() + 10
            while len(beacons) < 3 and time.monotonic() < deadline:
                data = client.recv(1024)
                fields = HDR.unpack_from(data)
                if fields[0] == 13 and fields[3] == ioc_port:
                    beacons.append(fields)
        finally:
            ioc.stop()
    assert len(beacons) >= 3, beacons
    for cmd, size, version, server_port, _beacon_id, address in beacons:
        # RSRV_IS_UP: data type = minor protocol version, count = server TCP port,
        # parameter 1 = beacon id, parameter 2 = server IPv4 address.
        assert (cmd, size, server_port, address) == (13, 0, ioc_port, LOOPBACK_INT)
        assert version >= 11
    ids = [b[4] for b in beacons]
    assert ids == sorted(ids) and ids[-1] > ids[0]


# ---------------------------------------------------------------- the engine with the repeater
def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Wait for engine state that has no event to wait on (checked every 20 ms, with a deadline)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def test_engine_registers_and_receives_beacons(sockets: list[socket.socket]) -> None:
    port = free_port("udp")
    env = loopback_env(repeater_port=port)  # CACLIENT_NO_REPEATER=1: registers, never spawns
    with Repeater(port).start() as rep:
        ctx = Context(env=env, timeout=5)
        try:
            assert rep.wait_for_clients(lambda clients: len(clients) == 1, WAIT), rep.clients
            assert wait_for(lambda: ctx.broadcaster.repeater_registered)
            anomalies = ctx.broadcaster.beacon_anomalies
            server = udp(sockets)
            server.sendto(beacon(40010, 1, address=0), rep.address)  # a server never seen: an anomaly
            assert wait_for(lambda: ctx.broadcaster.beacon_anomalies > anomalies)
        finally:
            ctx.close()


def test_engine_spawns_this_repeater_when_none_runs(sockets: list[socket.socket]) -> None:
    port = free_port("udp")
    env = loopback_env(repeater_port=port)
    del env["CACLIENT_NO_REPEATER"]
    ctx = Context(env=env, timeout=5)
    pid: int | None = None
    exit_status: int | None = None

    def settled() -> bool:
        nonlocal pid, exit_status
        if ctx.broadcaster.repeater_registered:
            return True
        pid = ctx.broadcaster._repeater_pid
        if pid is not None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                exit_status, pid = raw, None
                return True
        return False

    try:
        # The engine runs ``python -m caclient repeater --port <port>``, detached.
        assert wait_for(settled, 15)
        assert exit_status is None, f"the spawned repeater exited with {os.waitstatus_to_exitcode(exit_status)}"
        pid = ctx.broadcaster._repeater_pid
        assert pid is not None
        client = udp(sockets)
        assert register(client, ("127.0.0.1", port)) == (17, 0, 0, 0, 0, LOOPBACK_INT)
    finally:
        ctx.close()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + WAIT
            status: int | None = None
            while status is None and time.monotonic() < deadline:
                done, raw = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = raw
                else:
                    time.sleep(0.02)
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            assert status is not None and os.waitstatus_to_exitcode(status) == 0
