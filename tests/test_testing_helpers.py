"""Tests of caclient.testing: loopback environment, ports and the test IOCs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from caproto import ChannelType
from caproto.sync.client import read, write

from caclient.testing import (
    TEST_DB_PATH,
    CaprotoIOC,
    EpicsIOC,
    IOCHandle,
    apply_loopback_env,
    free_port,
    free_port_pair,
    loopback_env,
    make_numbered_db,
)
from caclient.testing.env import DEFAULT_PORTS

LOOPBACK_KEYS = {
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_CA_ADDR_LIST": "127.0.0.1",
    "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": "127.0.0.1",
    "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
    "EPICS_CA_MAX_ARRAY_BYTES": "200000000",
    "CACLIENT_NO_REPEATER": "1",
}
PORT_KEYS = (
    "EPICS_CA_SERVER_PORT",
    "EPICS_CA_REPEATER_PORT",
    "EPICS_CAS_SERVER_PORT",
    "EPICS_CAS_BEACON_PORT",
    "EPICS_PVA_SERVER_PORT",
    "EPICS_PVA_BROADCAST_PORT",
)
TIMEOUT = 5.0


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Return a function that points os.environ (so caproto's client) at an IOC."""

    def _use(handle: IOCHandle) -> None:
        for key, value in handle.env.items():
            if key.startswith("EPICS_"):
                monkeypatch.setenv(key, value)

    yield _use


def caread(name: str, **kwargs: Any) -> Any:
    """caproto synchronous read that never spawns a caproto-repeater."""
    return read(name, repeater=False, timeout=TIMEOUT, **kwargs)


def cawrite(name: str, value: Any, **kwargs: Any) -> Any:
    """caproto synchronous write (put with notify) without a repeater."""
    return write(name, value, notify=True, repeater=False, timeout=TIMEOUT, **kwargs)


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Return True once no process `pid` exists (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- env
def test_loopback_env_sets_every_variable() -> None:
    base = {"PATH": "/bin", "EPICS_CA_NAME_SERVERS": "10.0.0.1:5064", "EPICS_CA_ADDR_LIST": "x"}
    env = loopback_env(base=base)
    for key, value in LOOPBACK_KEYS.items():
        assert env[key] == value, key
    ports = {key: int(env[key]) for key in PORT_KEYS}
    assert not set(ports.values()) & DEFAULT_PORTS
    assert ports["EPICS_CAS_SERVER_PORT"] == ports["EPICS_CA_SERVER_PORT"]
    assert ports["EPICS_CAS_BEACON_PORT"] == ports["EPICS_CA_REPEATER_PORT"]
    distinct = {
        ports[k]
        for k in (
            "EPICS_CA_SERVER_PORT",
            "EPICS_CA_REPEATER_PORT",
            "EPICS_PVA_SERVER_PORT",
            "EPICS_PVA_BROADCAST_PORT",
        )
    }
    assert len(distinct) == 4
    assert "EPICS_CA_NAME_SERVERS" not in env
    assert env["PATH"] == "/bin"
    # the base mapping is copied, not changed
    assert base["EPICS_CA_ADDR_LIST"] == "x" and "EPICS_CA_NAME_SERVERS" in base


def test_loopback_env_explicit_ports_and_default_base() -> None:
    env = loopback_env(server_port=40001, repeater_port=40002)
    assert env["EPICS_CA_SERVER_PORT"] == env["EPICS_CAS_SERVER_PORT"] == "40001"
    assert env["EPICS_CA_REPEATER_PORT"] == env["EPICS_CAS_BEACON_PORT"] == "40002"
    assert env["PATH"] == os.environ["PATH"]


def test_session_environment_is_loopback() -> None:
    # installed by tests/conftest.py at import time
    for key, value in LOOPBACK_KEYS.items():
        assert os.environ[key] == value, key
    for key in PORT_KEYS:
        assert int(os.environ[key]) not in DEFAULT_PORTS
    assert "EPICS_CA_NAME_SERVERS" not in os.environ


def test_apply_loopback_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPICS_CA_NAME_SERVERS", "10.0.0.1")
    monkeypatch.setenv("EPICS_CA_ADDR_LIST", "10.255.255.255")
    env = loopback_env(server_port=40011, repeater_port=40012)
    for key in env:
        if key.startswith(("EPICS_", "CACLIENT_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EPICS_CA_NAME_SERVERS", "10.0.0.1")
    apply_loopback_env(env)
    assert os.environ["EPICS_CA_ADDR_LIST"] == "127.0.0.1"
    assert os.environ["EPICS_CA_SERVER_PORT"] == "40011"
    assert os.environ["CACLIENT_NO_REPEATER"] == "1"
    assert "EPICS_CA_NAME_SERVERS" not in os.environ


def test_free_port_distinct_and_usable() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1
    a, b = free_port_pair()
    assert a != b
    for port in (a, b, *ports):
        assert port not in DEFAULT_PORTS
        assert 1024 < port < 65536
    # free for both TCP and UDP on loopback right now
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", a))
    assert free_port("udp") not in DEFAULT_PORTS
    # Outside the kernel's ephemeral range, unless asked for an ephemeral one.
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert all(not low <= port <= high for port in (a, b, *ports))
    assert low <= free_port(ephemeral=True) <= high
    assert free_port("tcp") not in DEFAULT_PORTS
    with pytest.raises(ValueError):
        free_port("sctp")


# ---------------------------------------------------------------- both IOCs
def test_ioc_attributes(ioc: IOCHandle) -> None:
    assert ioc.running
    assert ioc.address == ("127.0.0.1", ioc.port)
    assert ioc.port not in DEFAULT_PORTS
    env = ioc.env
    assert env["EPICS_CA_ADDR_LIST"] == "127.0.0.1"
    assert env["EPICS_CA_SERVER_PORT"] == str(ioc.port)
    assert env["EPICS_CA_AUTO_ADDR_LIST"] == "NO"
    assert ioc.prefix.endswith(":") and ioc.pv("ai") == ioc.prefix + "ai"
    assert psutil.pid_exists(ioc.pid)
    # The server port (TCP and UDP) is bound on loopback only; any other
    # socket is on an ephemeral port (libCom's internal UDP sockets are
    # bound to 0.0.0.0:0), never on a well-known EPICS port.
    conns = psutil.Process(ioc.pid).net_connections(kind="inet")
    on_port = [c for c in conns if c.laddr and c.laddr.port == ioc.port]
    assert {c.laddr.ip for c in on_port} == {"127.0.0.1"}, conns
    assert {c.type for c in on_port} == {socket.SOCK_STREAM, socket.SOCK_DGRAM}, conns
    assert ioc.port in {c.laddr.port for c in on_port if c.status == psutil.CONN_LISTEN}
    assert not {c.laddr.port for c in conns if c.laddr} & DEFAULT_PORTS, conns
    assert all(c.raddr.ip == "127.0.0.1" for c in conns if c.raddr), conns


def test_ioc_serves_common_pvs(ioc: IOCHandle, use_env: Any) -> None:
    use_env(ioc)
    ai = caread(ioc.pv("ai"), data_type="control")
    assert ai.data[0] == pytest.approx(3.5)
    assert ai.metadata.precision == 3
    assert ai.metadata.units == b"mm"
    assert ai.metadata.upper_disp_limit == pytest.approx(10.0)
    assert ai.metadata.lower_disp_limit == pytest.approx(-10.0)
    assert ai.metadata.upper_alarm_limit == pytest.approx(8.0)
    assert ai.metadata.upper_warning_limit == pytest.approx(6.0)
    assert ai.metadata.lower_warning_limit == pytest.approx(-6.0)
    assert ai.metadata.lower_alarm_limit == pytest.approx(-8.0)

    assert caread(ioc.pv("str")).data == [b"hello"]
    enum = caread(ioc.pv("enum"), data_type="control")
    assert list(enum.metadata.enum_strings[:3]) == [b"zero", b"one", b"two"]
    assert caread(ioc.pv("long")).data_type == ChannelType.LONG
    assert caread(ioc.pv("ro")).data[0] == pytest.approx(1.25)

    cawrite(ioc.pv("ao"), 4.25)
    assert caread(ioc.pv("ao")).data[0] == pytest.approx(4.25)

    data = np.arange(1000, dtype=float)
    cawrite(ioc.pv("wf"), data)
    wf = caread(ioc.pv("wf"))
    assert wf.data_count == 1000
    np.testing.assert_array_equal(wf.data, data)

    cawrite(ioc.pv("chwf"), np.frombuffer(b"bytes\0", dtype=np.uint8))
    chwf = caread(ioc.pv("chwf"))
    assert chwf.data_type == ChannelType.CHAR
    assert bytes(chwf.data[:5]) == b"bytes"

    first = caread(ioc.pv("counter")).data[0]
    deadline = time.monotonic() + 3.0
    while caread(ioc.pv("counter")).data[0] == first:
        assert time.monotonic() < deadline, "counter does not count"
        time.sleep(0.05)


def test_slow_put_with_wait(ioc: IOCHandle, use_env: Any) -> None:
    use_env(ioc)
    t0 = time.monotonic()
    resp = cawrite(ioc.pv("slow"), 1.5)
    elapsed = time.monotonic() - t0
    assert resp.status.success == 1
    assert elapsed >= 0.4, elapsed
    assert caread(ioc.pv("slow")).data[0] == pytest.approx(1.5)


# ---------------------------------------------------------------- EPICS C IOC
def test_epics_ioc_records(epics_ioc: IOCHandle, use_env: Any) -> None:
    use_env(epics_ioc)
    pv = epics_ioc.pv
    assert caread(pv("ai"), data_type="time").metadata.severity == 0
    assert list(caread(pv("bi"), data_type="control").metadata.enum_strings[:2]) == [b"Off", b"On"]
    mbbo = caread(pv("mbbo"), data_type="control")
    assert list(mbbo.metadata.enum_strings[:5]) == [b"zero", b"one", b"two", b"three", b"four"]
    assert caread(pv("longin")).data[0] == 42
    assert caread(pv("stringin")).data == [b"hello"]
    desc = caread(pv("ai.DESC")).data[0]
    assert desc == b"Analog input for caclient tests"
    lstr = caread(pv("lstr.VAL$"))
    assert bytes(lstr.data).rstrip(b"\0").decode().startswith("A long string value")
    assert len(bytes(lstr.data).rstrip(b"\0")) > 40
    ao = caread(pv("ao"), data_type="control")
    assert (ao.metadata.lower_ctrl_limit, ao.metadata.upper_ctrl_limit) == (-90.0, 90.0)
    # wf's FLNK processes the subArray
    cawrite(pv("wf"), np.arange(20, dtype=float) + 100)
    np.testing.assert_array_equal(caread(pv("subarr")).data, np.arange(10) + 100.0)
    # other waveform element types
    for name, ftype in [
        ("shortwf", ChannelType.INT),
        ("longwf", ChannelType.LONG),
        ("floatwf", ChannelType.FLOAT),
        ("ucharwf", ChannelType.CHAR),
        ("strwf", ChannelType.STRING),
    ]:
        assert caread(pv(name)).data_type == ftype, name


def test_epics_ioc_large_waveform(epics_ioc: IOCHandle, use_env: Any) -> None:
    use_env(epics_ioc)
    data = np.arange(1_000_000, dtype=float)
    write(epics_ioc.pv("wf1m"), data, notify=True, repeater=False, timeout=30)
    back = read(epics_ioc.pv("wf1m"), repeater=False, timeout=30)
    assert back.data_count == 1_000_000
    np.testing.assert_array_equal(back.data, data)


def test_epics_ioc_read_only(epics_ioc: IOCHandle, use_env: Any) -> None:
    use_env(epics_ioc)
    assert caread(epics_ioc.pv("ro.ASG")).data == [b"READONLY"]
    # RSRV answers the put-notify with ECA_NOWTACCESS in the response's
    # status (caproto's sync client returns it rather than raising).
    resp = cawrite(epics_ioc.pv("ro"), 99.0)
    assert resp.status.name == "ECA_NOWTACCESS"
    assert caread(epics_ioc.pv("ro")).data[0] == pytest.approx(1.25)


_PYEPICS_SCRIPT = r"""
import json, sys, time
import epics
pv = sys.argv[1]
out = {"ai": epics.caget(pv + "ai", timeout=10)}
t0 = time.monotonic()
out["put_status"] = epics.caput(pv + "slow", 2.5, wait=True, timeout=10)
out["slow_elapsed"] = time.monotonic() - t0
ro = epics.PV(pv + "ro")
ro.wait_for_connection(10)
out["ro_write_access"] = ro.write_access
out["ro_read_access"] = ro.read_access
print("RESULT " + json.dumps(out), flush=True)
"""


def test_epics_ioc_with_pyepics(epics_ioc: IOCHandle, tmp_path: Path) -> None:
    # pyepics (libca) reads the environment once per process, so it runs in a
    # child that gets the IOC's environment.
    script = tmp_path / "pyepics_check.py"
    script.write_text(_PYEPICS_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), epics_ioc.prefix],
        env=epics_ioc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    out = json.loads(lines[-1][len("RESULT ") :])
    assert out["ai"] == pytest.approx(3.5)
    assert out["put_status"] == 1
    assert 0.4 <= out["slow_elapsed"] < 5.0, out
    assert out["ro_read_access"] is True
    assert out["ro_write_access"] is False


def test_make_numbered_db(tmp_path: Path, use_env: Any) -> None:
    path = make_numbered_db(tmp_path / "numbered.db", 3, kind="calc", scan=".1 second")
    text = Path(path).read_text()
    assert text.count("record(calc") == 3 and '"$(P)n2"' in text
    assert 'field(CALC, "A+1")' in text and 'field(INPA, "$(P)n0 NPP")' in text
    plain = make_numbered_db(tmp_path / "plain.db", 2)
    assert Path(plain).read_text().count("record(ai") == 2
    with EpicsIOC(db_path=[(path, None), (TEST_DB_PATH, None)]) as handle:
        use_env(handle)
        first = caread(handle.pv("n2")).data[0]
        deadline = time.monotonic() + 3.0
        while caread(handle.pv("n2")).data[0] == first:
            assert time.monotonic() < deadline, "numbered calc records do not count"
            time.sleep(0.05)
        assert caread(handle.pv("ai")).data[0] == pytest.approx(3.5)


# ---------------------------------------------------------------- caproto IOC
def test_caproto_ioc_numbered_and_read_only(use_env: Any) -> None:
    with CaprotoIOC(n_numbered=5, prefix="NUM:") as handle:
        assert handle.prefix == "NUM:"
        use_env(handle)
        assert caread("NUM:n4").data[0] == pytest.approx(4.0)
        assert caread("NUM:ai").data[0] == pytest.approx(3.5)
        with pytest.raises(Exception):  # noqa: B017 - caproto's error type
            cawrite("NUM:ro", 2.0)
        assert caread("NUM:ro").data[0] == pytest.approx(1.25)


# ---------------------------------------------------------------- lifecycle
@pytest.mark.parametrize("kind", [EpicsIOC, CaprotoIOC], ids=["epics", "caproto"])
def test_stop_leaves_no_process(kind: type[IOCHandle]) -> None:
    handle = kind()
    assert not handle.running
    with pytest.raises(RuntimeError):
        _ = handle.port
    assert handle.start() is handle
    pid = handle.pid
    assert psutil.pid_exists(pid)
    assert handle.start() is handle  # already running: no second child
    assert handle.pid == pid
    handle.stop()
    assert not handle.running
    assert wait_gone(pid)
    handle.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = handle.env
    # the reader thread is gone too
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("ioc-output") and handle.prefix in t.name]


def test_start_failure_reports_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text('record(nosuchtype, "$(P)x") {}\n')
    handle = EpicsIOC(db_path=bad)
    with pytest.raises(RuntimeError, match="before it was ready") as info:
        handle.start(timeout=20)
    assert "nosuchtype" in str(info.value) or "Error" in str(info.value)
    assert not handle.running


def test_start_timeout(tmp_path: Path) -> None:
    class Silent(IOCHandle):
        kind = "silent"

        def command(self) -> list[str]:
            return [sys.executable, "-c", "import sys; sys.stdin.read()"]

    handle = Silent()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="not ready within"):
        handle.start(timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert not handle.running
