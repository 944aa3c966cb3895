"""ophyd and bluesky on compat, against the EPICS C IOC and caproto's fake motor record IOC.

ophyd runs on its pyepics control layer with ``import epics`` resolving to
compat (``compat.install()``), in a child process (:mod:`ophyd_child`), so
that the test process never loads libca.  The same scenarios run through
real pyepics in a second child: that is the reference the compat results
are compared with, value for value, wherever the outcome does not depend on
timing.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from caclient.testing import TEST_DB_PATH, CaprotoIOC, EpicsIOC, IOCHandle, make_numbered_db

pytest.importorskip("ophyd")
pytest.importorskip("bluesky")

HERE = Path(__file__).resolve().parent
CHILD = HERE / "ophyd_child.py"
N_BIG = 200

EXTRA_DB = """
record(ao, "$(P)rbv") {
    field(PREC, "3")
    field(EGU,  "mm")
    field(DRVH, "50")
    field(DRVL, "-50")
    field(FLNK, "$(P)rbv_RBV")
}
record(ai, "$(P)rbv_RBV") {
    field(INP,  "$(P)rbv")
    field(PREC, "3")
    field(EGU,  "mm")
}
record(ai, "$(P)alarm") {
    field(INP,  "9")
    field(PINI, "YES")
    field(PREC, "1")
    field(HIHI, "8")
    field(HHSV, "MAJOR")
}
"""

SCENARIOS: dict[str, str] = {
    "signal": """
from ophyd import EpicsSignal, EpicsSignalRO
from ophyd.utils import ReadOnlyError
s = EpicsSignal(P + 'ao', name='s')
s.wait_for_connection(timeout=10)
s.put(1.5, wait=True)
record('get', s.get())
st = s.set(2.5)
st.wait(10)
record('set', (st.success, s.get()))
record('describe', s.describe())
record('precision', s.precision)
record('limits', s.limits)
md = s.metadata
record('metadata', {k: md[k] for k in ('units', 'precision', 'lower_ctrl_limit', 'upper_ctrl_limit',
                                       'write_access', 'read_access', 'connected', 'severity', 'status')})
record('read', s.read()['s']['value'])
from ophyd.utils import LimitError
lim = EpicsSignal(P + 'ao', name='lim', limits=True)
lim.wait_for_connection(timeout=10)
try:
    lim.put(95.0)
except LimitError as exc:
    record('beyond limits', type(exc).__name__)
record('not written', lim.get())
ro = EpicsSignalRO(P + 'ai', name='ro')
ro.wait_for_connection(timeout=10)
record('ro', ro.get())
record('ro describe', ro.describe())
try:
    ro.put(1.0)
except ReadOnlyError as exc:
    record('ro put', type(exc).__name__)
""",
    "put_complete": """
from ophyd import EpicsSignal
slow = EpicsSignal(P + 'slow', name='slow', put_complete=True)
slow.wait_for_connection(timeout=10)
start = time.monotonic()
st = slow.set(slow.get() + 1)
record('done at once', st.done)
st.wait(10)
record('waited for completion', time.monotonic() - start >= 0.4)
record('success', st.success)
""",
    "enum": """
from ophyd import EpicsSignal
e = EpicsSignal(P + 'enum', name='e', string=True)
e.wait_for_connection(timeout=10)
e.put('zero', wait=True)
record('enum_strs', e.enum_strs)
record('get', e.get())
e.put('two', wait=True)
record('after put', e.get())
record('as number', e.get(as_string=False))
record('describe', e.describe())
""",
    "string_waveform": """
from ophyd import EpicsSignal
s = EpicsSignal(P + 'str', name='st', string=True)
s.wait_for_connection(timeout=10)
s.put('from ophyd', wait=True)
record('str', s.get())
record('str describe', s.describe())
w = EpicsSignal(P + 'wf', name='w')
w.wait_for_connection(timeout=10)
w.put(np.arange(5.0) * 1.5, wait=True)
v = w.get()
record('wf', v)
record('wf describe', w.describe())
""",
    "alarm": """
from ophyd import EpicsSignalRO
a = EpicsSignalRO(P + 'alarm', name='a')
a.wait_for_connection(timeout=10)
record('value', a.get())
record('severity', a.alarm_severity)
record('status', a.alarm_status)
""",
    "alarm_change": """
from ophyd import EpicsSignal
s = EpicsSignal(P + 'ao', name='s')
s.wait_for_connection(timeout=10)
s.put(0.0, wait=True)
s.get()
record('quiet', (s.alarm_severity, s.alarm_status))
s.put(85.0, wait=True)
s.get()
record('hihi', (s.alarm_severity, s.alarm_status))
m = EpicsSignal(P + 'ao', name='m', auto_monitor=True)
m.wait_for_connection(timeout=10)
record('monitored hihi', (m.alarm_severity, m.alarm_status))
normal = threading.Event()
def on_value(value=None, **kw):
    if value == 0.0:
        normal.set()
m.subscribe(on_value, run=False)
s.put(0.0, wait=True)
record('back to normal seen', normal.wait(10))
record('monitored severity', m.alarm_severity)
""",
    "with_rbv": """
from ophyd import EpicsSignalWithRBV
r = EpicsSignalWithRBV(P + 'rbv', name='r')
r.wait_for_connection(timeout=10)
r.put(3.25, wait=True)
record('setpoint', r.get_setpoint())
st = r.set(4.5)
st.wait(10)
record('after set', (r.get_setpoint(), r.get()))
record('describe', r.describe())
record('limits', r.limits)
""",
    "subscription": """
from ophyd import EpicsSignalRO
c = EpicsSignalRO(P + 'counter', name='c')
c.wait_for_connection(timeout=10)
got = []
enough = threading.Event()
def cb(value, **kw):
    got.append((value, kw['obj'].name))
    if len(got) >= 4:
        enough.set()
cid = c.subscribe(cb)
record('updates', enough.wait(10))
c.unsubscribe(cid)
values = [v for v, _ in got]
record('types', sorted({type(v).__name__ for v in values}))
record('increasing', values[1:4] == sorted(values[1:4]) and values[3] > values[1])
record('names', sorted({n for _, n in got}))
""",
    "device_200": """
from ophyd import Component as Cpt, Device, EpicsSignal
Big = type('Big', (Device,), {f'c{i}': Cpt(EpicsSignal, f'n{i}') for i in range(N_BIG)})
big = Big(P, name='big')
big.wait_for_connection(timeout=60)
record('connected', big.connected)
record('components', len(big.component_names))
record('values', [float(v) for v in big.get()][:3])
record('read keys', len(big.read()))
big.c7.put(7.5, wait=True)
record('c7', big.c7.get())
big.destroy()
""".replace("N_BIG", str(N_BIG)),
    "timeouts": """
from ophyd import Component as Cpt, Device, EpicsSignal
s = EpicsSignal(P + 'nothere', name='x')
start = time.monotonic()
try:
    s.wait_for_connection(timeout=0.5)
except TimeoutError as exc:
    record('signal', type(exc).__name__)
record('bounded', time.monotonic() - start < 5)
class D(Device):
    ok = Cpt(EpicsSignal, 'ao')
    bad = Cpt(EpicsSignal, 'nothere2')
d = D(P, name='d')
try:
    d.wait_for_connection(timeout=1.0)
except TimeoutError as exc:
    record('device', (type(exc).__name__, 'nothere2' in str(exc)))
try:
    s.get(connection_timeout=0.3)
except TimeoutError as exc:
    record('get', type(exc).__name__)
""",
    "motor": """
from ophyd import EpicsMotor
m = EpicsMotor(M + 'mtr1', name='m')
m.wait_for_connection(timeout=20)
m.move(1.0, wait=True, timeout=30)
record('position', round(m.position, 3))
record('limits', m.limits)
st = m.set(2.0)
st.wait(30)
record('after set', (round(m.position, 3), st.success, m.moving))
# (the fake motor record has no DRVH/DRVL: ophyd's soft limits are (0, 0), i.e. off)
record('travel limits', (m.low_limit_travel.get(), m.high_limit_travel.get()))
far = threading.Event()
def watch(value, **kw):
    if value > 3.0:
        far.set()
cid = m.user_readback.subscribe(watch)
st = m.set(9.0)
record('saw it move', far.wait(20))
m.stop()
try:
    st.wait(20)
except Exception as exc:
    record('stopped status', type(exc).__name__)
m.user_readback.unsubscribe(cid)
record('stopped short', m.position < 8.5)
record('done', st.done)
m.move(0.0, wait=True, timeout=30)
""",
    "run_engine": """
from ophyd import Component as Cpt, Device, EpicsMotor, EpicsSignal, EpicsSignalRO
RE = RunEngine({})
docs = []
RE.subscribe(lambda name, doc: docs.append((name, doc)))
det = EpicsSignalRO(P + 'ai', name='det')
m = EpicsMotor(M + 'mtr2', name='m2')
m.wait_for_connection(timeout=20)
RE(bp.scan([det], m, 0, 1, 3))
record('scan names', [n for n, _ in docs])
events = [d for n, d in docs if n == 'event']
record('scan det', [e['data']['det'] for e in events])
record('scan motor', [round(e['data']['m2'], 2) for e in events])
record('scan keys', sorted(events[0]['data']))
desc = [d for n, d in docs if n == 'descriptor'][0]
record('scan descriptor', {k: (v['dtype'], v['shape'], v['source']) for k, v in desc['data_keys'].items()})
record('scan stop', [d['exit_status'] for n, d in docs if n == 'stop'])
record('scan num_events', [d['num_events'] for n, d in docs if n == 'stop'])
Big = type('Big', (Device,), {f'c{i}': Cpt(EpicsSignal, f'n{i}') for i in range(N_BIG)})
big = Big(P, name='big')
big.wait_for_connection(timeout=60)
docs.clear()
RE(bp.count([big, det], num=3))
events = [d for n, d in docs if n == 'event']
record('count names', [n for n, _ in docs])
record('count keys', len(events[0]['data']))
record('count det', [e['data']['det'] for e in events])
record('count stop', [d['exit_status'] for n, d in docs if n == 'stop'])
m.move(0.0, wait=True, timeout=30)
""".replace("N_BIG", str(N_BIG)),
}

#: Labels whose value depends on timing or on the layer, not compared with pyepics.
NOT_COMPARED = {("signal", "metadata")}


@pytest.fixture(scope="module")
def ophyd_iocs() -> Iterator[tuple[IOCHandle, IOCHandle]]:
    """The C IOC (test database, extras and N_BIG numbered records) and the fake motor IOC."""
    with tempfile.TemporaryDirectory(prefix="ophyd-db-") as tmp:
        extra = Path(tmp) / "extra.db"
        extra.write_text(EXTRA_DB, encoding="ascii")
        numbered = make_numbered_db(Path(tmp) / "numbered.db", N_BIG, kind="ao")
        with (
            EpicsIOC([(TEST_DB_PATH, None), (str(extra), None), (numbered, None)]) as ioc,
            CaprotoIOC(module="tests.ophyd_motor_ioc") as motors,
        ):
            yield ioc, motors


def run_child(layer: str, ioc: IOCHandle, motors: IOCHandle, scenarios: dict[str, str]) -> dict[str, Any]:
    """Run *scenarios* through ophyd on *layer* ('compat' or 'pyepics') in a child process."""
    with tempfile.TemporaryDirectory(prefix="ophyd-child-") as tmp:
        job, out = os.path.join(tmp, "in.pickle"), os.path.join(tmp, "out.pickle")
        with open(job, "wb") as fh:
            pickle.dump({"prefix": ioc.prefix, "motor": motors.prefix, "scenarios": scenarios}, fh)
        env = ioc.env
        # (both IOCs on loopback: the client searches each one's port)
        env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{ioc.port} 127.0.0.1:{motors.port}"
        root = str(HERE.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), root, env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run(
            [sys.executable, str(CHILD), layer, job, out], env=env, capture_output=True, text=True, timeout=240
        )
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"ophyd child ({layer}) failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        with open(out, "rb") as fh:
            results: dict[str, Any] = pickle.load(fh)
    return results


@pytest.fixture(scope="module")
def on_compat(ophyd_iocs: tuple[IOCHandle, IOCHandle]) -> dict[str, Any]:
    """Every scenario's results with ophyd on compat."""
    return run_child("compat", *ophyd_iocs, SCENARIOS)


@pytest.fixture(scope="module")
def on_pyepics(ophyd_iocs: tuple[IOCHandle, IOCHandle], on_compat: dict[str, Any]) -> dict[str, Any]:
    """Every scenario's results with ophyd on real pyepics (run after the compat child)."""
    return run_child("pyepics", *ophyd_iocs, SCENARIOS)


def recorded(results: dict[str, Any], sid: str) -> dict[str, Any]:
    """The records of scenario *sid*, failing the test if it raised."""
    res = results[sid]
    assert res["error"] is None, res["error"][2]
    return dict(res["records"])


def test_ophyd_uses_compat_and_no_libca(on_compat: dict[str, Any]) -> None:
    layer = on_compat["_layer"]
    assert layer == {"epics": "compat", "libca": False, "cl": "pyepics"}


def test_signal_get_put_set_metadata(on_compat: dict[str, Any]) -> None:
    got = recorded(on_compat, "signal")
    assert got["get"] == 1.5
    assert got["set"] == (True, 2.5)
    assert got["precision"] == 2
    assert got["limits"] == (-90.0, 90.0)
    assert got["describe"]["s"]["units"] == "V"
    assert got["describe"]["s"]["dtype"] == "number"
    assert got["metadata"] == {
        "units": "V",
        "precision": 2,
        "lower_ctrl_limit": -90.0,
        "upper_ctrl_limit": 90.0,
        "write_access": True,
        "read_access": True,
        "connected": True,
        "severity": 0,
        "status": 0,
    }
    assert got["beyond limits"] == "LimitError"
    assert got["not written"] == 2.5
    assert got["ro"] == 3.5
    assert got["ro put"] == "ReadOnlyError"


def test_put_completion(on_compat: dict[str, Any]) -> None:
    got = recorded(on_compat, "put_complete")
    assert got == {"done at once": False, "waited for completion": True, "success": True}


def test_enum_string_waveform_alarm_rbv(on_compat: dict[str, Any]) -> None:
    enum = recorded(on_compat, "enum")
    assert enum["enum_strs"] == ("zero", "one", "two")
    assert (enum["get"], enum["after put"]) == ("zero", "two")
    strings = recorded(on_compat, "string_waveform")
    assert strings["str"] == "from ophyd"
    assert strings["str describe"]["st"]["dtype"] == "string"
    assert list(strings["wf"]) == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert strings["wf describe"]["w"]["dtype"] == "array"
    alarm = recorded(on_compat, "alarm")
    assert alarm == {"value": 9.0, "severity": 2, "status": 3}
    change = recorded(on_compat, "alarm_change")
    assert change == {
        "quiet": (0, 0),
        "hihi": (2, 3),
        "monitored hihi": (2, 3),
        "back to normal seen": True,
        "monitored severity": 0,
    }
    rbv = recorded(on_compat, "with_rbv")
    assert rbv["setpoint"] == 3.25
    assert rbv["after set"] == (4.5, 4.5)


def test_subscription(on_compat: dict[str, Any]) -> None:
    got = recorded(on_compat, "subscription")
    assert got == {"updates": True, "types": ["float"], "increasing": True, "names": ["c"]}


def test_device_of_200_and_timeouts(on_compat: dict[str, Any]) -> None:
    big = recorded(on_compat, "device_200")
    assert big["connected"] is True
    assert big["components"] == N_BIG
    assert big["read keys"] == N_BIG
    assert big["c7"] == 7.5
    late = recorded(on_compat, "timeouts")
    assert late == {
        "signal": "TimeoutError",
        "bounded": True,
        "device": ("TimeoutError", True),
        "get": "ConnectionTimeoutError",
    }


def test_epics_motor(on_compat: dict[str, Any]) -> None:
    got = recorded(on_compat, "motor")
    assert got["position"] == 1.0
    assert got["after set"] == (2.0, True, False)
    assert got["travel limits"] == (0.0, 10.0)
    assert got["saw it move"] is True
    assert got["stopped short"] is True
    assert got["done"] is True


def test_run_engine_scan_and_count(on_compat: dict[str, Any]) -> None:
    got = recorded(on_compat, "run_engine")
    assert got["scan names"] == ["start", "descriptor", "event", "event", "event", "stop"]
    assert got["scan det"] == [3.5, 3.5, 3.5]
    assert got["scan motor"] == [0.0, 0.5, 1.0]
    assert got["scan stop"] == ["success"]
    assert got["scan num_events"] == [{"primary": 3}]
    assert got["count names"] == ["start", "descriptor", "event", "event", "event", "stop"]
    assert got["count keys"] == N_BIG + 1
    assert got["count stop"] == ["success"]


def test_same_as_ophyd_on_pyepics(on_compat: dict[str, Any], on_pyepics: dict[str, Any]) -> None:
    """Every scenario gives what it gives on real pyepics (the differential reference)."""
    from compat_support import differences

    assert on_pyepics["_layer"]["epics"] == "epics"
    problems = []
    for sid in SCENARIOS:
        ref, ours = on_pyepics[sid], on_compat[sid]
        if ref["error"] is not None or ours["error"] is not None:
            problems.append(f"{sid}: pyepics {ref['error']} vs compat {ours['error']}")
            continue
        ref_rec, our_rec = dict(ref["records"]), dict(ours["records"])
        for label in sorted(set(ref_rec) | set(our_rec)):
            if (sid, label) in NOT_COMPARED:
                continue
            problems += differences(ref_rec.get(label), our_rec.get(label), f"{sid}/{label}")
    assert not problems, "\n".join(problems)


DEAD_IOC = """
import os
import signal
from ophyd import EpicsSignal
s = EpicsSignal(P + 'ao', name='s')
s.wait_for_connection(timeout=10)
s.put(2.5, wait=True)
record('before', s.get())
lost = threading.Event()
def on_meta(connected=None, **kw):
    if connected is False:
        lost.set()
s.subscribe(on_meta, event_type=s.SUB_META, run=False)
os.kill(IOC_PID, signal.SIGKILL)
record('saw disconnect', lost.wait(30))
record('connected', s.connected)
try:
    record('get', s.get(connection_timeout=0.5))
except Exception as exc:
    record('get error', type(exc).__name__)
"""


@pytest.mark.timeout(180)
def test_dead_ioc_seen_by_ophyd_as_on_pyepics() -> None:
    """ophyd on compat notices an IOC that died and refuses to read it, as ophyd on pyepics does."""
    results = {}
    for layer in ("compat", "pyepics"):
        with EpicsIOC() as ioc:
            code = DEAD_IOC.replace("IOC_PID", str(ioc.pid))
            results[layer] = run_child(layer, ioc, ioc, {"dead": code})["dead"]
    ours = results["compat"]
    assert ours["error"] is None, ours["error"][2]
    assert dict(ours["records"]) == {
        "before": 2.5,
        "saw disconnect": True,
        "connected": False,
        "get error": "ConnectionTimeoutError",
    }
    assert results["pyepics"]["error"] is None, results["pyepics"]["error"][2]
    assert results["pyepics"]["records"] == ours["records"]
