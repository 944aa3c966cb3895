"""compat.Motor against simulated motor records and caproto's fake motor, and against pyepics' Motor.

The simulated records (``caclient.testing._record_ioc.SimMotor``) have
every field Motor uses, put completion and user/dial/raw coordinates; the
fake motor (caproto's example IOC) has only the basic fields, no put
completion, and LVIO stuck at 1.  The differential scenarios run the same
code through real pyepics (in a child process) and through compat.
"""

from __future__ import annotations

import queue
import re
import time
from typing import Any

import pytest
from compat_oracle import execute
from compat_support import differences, run_pyepics
from motor_support import RESET, record_ioc, repics_fixture, rioc_fixture  # noqa: F401

from caclient.testing import IOCHandle
from caclient.testing._record_ioc import HARD_HIGH


def _reset(epics: Any, prefix: str, name: str) -> Any:
    scope: dict[str, Any] = {"epics": epics, "P": prefix}
    exec(RESET, scope)
    return scope["reset"](name)


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _settles(read: Any, expected: Any) -> None:
    """*read()* becomes *expected* (values seen through monitors may lag a put's completion a little)."""
    _wait_for(lambda: read() == expected)


# -- construction and fields ---------------------------------------------------------------------------
def test_fields_by_name_alias_and_attribute(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m1")
    assert repr(m) == f"<epics.Motor: {rioc.prefix}m1.: 'sim motor m1'>"
    assert m.RTYP == "motor" and m.record_type == "motor"
    assert m.drive == m.VAL == m.get("VAL") == m.get("drive") == 0.0
    assert m.high_limit == 100.0 and m.get("LLM") == -100.0
    assert m.get("SET", as_string=True) == "Use"
    m.slew_speed = 40.0
    assert m.get_pv("VELO").get(use_monitor=False) == 40.0
    m.VELO = 50.0
    assert m.PV("slew_speed").get(use_monitor=False) == 50.0
    assert m.PV("drive") is m.PV("VAL")
    assert "readback" in dir(m)


def test_unknown_field_raises_motor_exception_also_attribute_error(repics: Any, rioc: IOCHandle) -> None:
    m = repics.Motor(rioc.pv("m1"))
    with pytest.raises(repics.motor.MotorException, match="EpicsMotor has no attribute NOPE") as info:
        m.NOPE  # noqa: B018  (waits for the connection timeout)
    assert isinstance(info.value, AttributeError)  # (so hasattr() gives False)
    assert not hasattr(m, "_private_thing")  # (no PV made for names starting with '_')


def test_unknown_prefix_times_out_with_motor_exception(repics: Any) -> None:
    start = time.monotonic()
    with pytest.raises(repics.motor.MotorException, match=r"^NOPE:m1 is not an Epics Motor$"):
        repics.Motor("NOPE:m1.VAL", timeout=0.5)
    assert time.monotonic() - start < 30  # (bounded: the connection timeout, not a hang)


def test_not_a_motor_record(repics: Any, rioc: IOCHandle) -> None:
    with pytest.raises(repics.motor.MotorException, match="is not an Epics Motor"):
        repics.Motor(rioc.pv("notmotor"))


def test_no_name(repics: Any) -> None:
    with pytest.raises(repics.motor.MotorException, match="must supply motor name"):
        repics.Motor()


# -- moves -------------------------------------------------------------------------------------------
def test_move_wait_user_dial_raw_relative(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m2")
    assert m.move(5, wait=True) == 0
    _settles(lambda: m.get_position(readback=True), 5.0)
    _settles(lambda: m.get_position(readback=True, dial=True), 5.0)
    _settles(lambda: m.get_position(readback=True, raw=True), 5000)
    assert m.move(1.5, relative=True, wait=True) == 0
    _settles(lambda: m.RBV, 6.5)
    m.OFF = 10.0  # user = dial + 10
    _wait_for(lambda: m.get_position() == 16.5)
    assert m.move(-3, dial=True, wait=True) == 0
    _settles(lambda: (m.get_position(readback=True), m.DRBV), (7.0, -3.0))
    assert m.move(2000, raw=True, wait=True) == 0
    _settles(lambda: (m.get_position(readback=True, step=True), m.RBV), (2000, 12.0))
    assert m.move(-500, step=True, relative=True, wait=True) == 0
    _settles(lambda: m.RRBV, 1500)


def test_move_beyond_soft_limits_moves_nothing(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m3")
    moves: queue.Queue[Any] = queue.Queue()
    m.set_callback("DMOV", lambda value=None, **kw: moves.put(value))
    assert m.move(100.5) == -12
    assert m.move(-101, wait=True) == -12
    assert m.move(90, relative=True, wait=True) == 0
    assert m.move(20, relative=True) == -12
    assert m.move(101, dial=True, wait=True) == -12
    _settles(lambda: (m.VAL, m.RBV, m.DMOV), (90.0, 90.0, 1))
    # Exactly one move happened (DMOV 1 -> 0 -> 1), none for the refused ones:
    seen = []
    while not moves.empty():
        seen.append(moves.get())
    assert seen.count(0) == 1, seen
    m.clear_callback("DMOV")


def test_move_bad_values(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m3")
    assert m.move(None) == -13
    assert m.move("abc") == -13  # (pyepics raises ValueError here: see the migration guide)
    assert m.move([1, 2]) == -13
    assert m.move("2.5", wait=True) == 0
    _settles(lambda: m.RBV, 2.5)


def test_soft_limit_seen_by_record_when_limits_ignored(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m4")
    assert m.move(150, wait=True, ignore_limits=True) == -4
    _settles(lambda: (m.RBV, m.LVIO), (0.0, 1))
    with pytest.raises(repics.motor.MotorLimitException, match="Soft limit violation"):
        m.check_limits()
    assert m.move(-150, ignore_limits=True) == 4
    assert m.move(1, wait=True) == 0
    _settles(lambda: m.LVIO, 0)
    m.check_limits()


def test_hard_limit_codes(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m5")
    m.put("VELO", 400.0, wait=True)
    try:
        m.put("DHLM", 1000.0, wait=True)
        _wait_for(lambda: m.high_limit == 1000.0)  # (the user limit follows, seen through its monitor)
        assert m.move(HARD_HIGH + 50, wait=True) == -3
        _wait_for(lambda: (m.DRBV, m.HLS, m.high_limit_set) == (HARD_HIGH, 1, 1))
        with pytest.raises(repics.motor.MotorLimitException, match="High hard limit violation"):
            m.check_limits()
        assert m.move(HARD_HIGH + 60) == 3  # (already on the switch: nothing moves)
        assert m.move(0, wait=True) == 0
        _settles(lambda: m.HLS, 0)
    finally:
        m.put("VELO", 50.0, wait=True)


def test_move_timeout_codes(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m6")
    m.put("VELO", 20.0, wait=True)
    try:
        assert m.move(60, wait=True, timeout=0.2) == -8
        _wait_for(lambda: m.get("DMOV") == 1 and m.RBV == 60.0)
    finally:
        m.put("VELO", 50.0, wait=True)


def test_move_without_wait_confirmed_then_stop(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m6")
    m.put("VELO", 20.0, wait=True)
    try:
        assert m.move(90, confirm_move=True) == 1
        assert m.done_moving == 0 and m.moving == 1
        m.stop()
        _wait_for(lambda: m.get("DMOV") == 1)
        assert 0.0 < m.RBV < 90.0
        assert m.VAL == m.RBV  # (the record's target became where it stopped)
    finally:
        m.put("VELO", 50.0, wait=True)


def test_within_limits(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m7")
    m.OFF = 50.0  # user limits follow the dial ones: -50 .. 150
    _wait_for(lambda: m.get("HLM") == 150.0)
    assert m.within_limits(120) and not m.within_limits(-60)
    assert not m.within_limits(120, dial=True) and m.within_limits(-60, dial=True)
    assert m.within_limits(150) and m.within_limits(-100, dial=True)


def test_tweak(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m7")
    m.tweak_val = 2.5
    assert m.tweak(wait=True) == 0
    _settles(lambda: m.RBV, 2.5)
    assert m.tweak("reverse", wait=True) == 0
    assert m.tweak("backward", wait=True) == 0
    _settles(lambda: m.RBV, -2.5)
    m.move(99, wait=True)
    m.TWV = 5.0
    assert m.tweak(wait=True) == -1  # (the record refuses: soft limit)
    _settles(lambda: m.RBV, 99.0)


def test_set_position(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m8")
    assert m.move(3, wait=True) == 0
    # (values are read through their monitors, which may lag the put's completion a little)
    m.set_position(10)
    _wait_for(lambda: (m.get_position(), m.get_position(readback=True), m.DRBV, m.OFF) == (10.0, 10.0, 3.0, 7.0))
    _wait_for(lambda: m.get("SET", as_string=True) == "Use")
    m.set_position(1, dial=True)
    _wait_for(lambda: (m.DRBV, m.RBV, m.RRBV) == (1.0, 8.0, 1000))
    m.set_position(4000, raw=True)
    _wait_for(lambda: (m.DRBV, m.RBV) == (4.0, 11.0))
    assert m.DMOV == 1 and m.MOVN == 0


def test_field_callbacks(repics: Any, rioc: IOCHandle) -> None:
    m = _reset(repics, rioc.prefix, "m9")
    got: queue.Queue[dict[str, Any]] = queue.Queue()
    m.set_callback("readback", lambda **kw: got.put(kw), kws={"tag": "rb"})
    assert m.move(2, wait=True) == 0
    seen = []
    deadline = time.monotonic() + 10
    while not seen or seen[-1]["value"] != 2.0:
        seen.append(got.get(timeout=max(0.0, deadline - time.monotonic())))
    assert all(kw["motor_field"] == "readback" and kw["tag"] == "rb" for kw in seen)
    assert seen[-1]["pvname"] == rioc.pv("m9.RBV")
    m.clear_callback("readback")
    # A callback added now runs after the cleared one would have, for each update of RBV:
    marker: queue.Queue[float] = queue.Queue()
    m.PV("RBV").add_callback(lambda value=None, **kw: marker.put(value))
    assert m.move(0, wait=True) == 0
    while marker.get(timeout=10) != 0.0:
        pass
    late = [got.get_nowait()["value"] for _ in range(got.qsize())]
    assert 0.0 not in late


def test_reports(repics: Any, rioc: IOCHandle, capsys: pytest.CaptureFixture[str]) -> None:
    m = _reset(repics, rioc.prefix, "m9")
    info = m.get_info()
    assert info["DESC"] == "sim motor m9" and info["VAL"] == "0" and info["VELO"] == "50.000" and info["SET"] == "Use"
    assert m.make_step_list() == [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    m.show_info()
    out = capsys.readouterr().out
    assert out.startswith(repr(m)) and re.search(r"^VELO +=  ?50\.000$", out, re.M)
    m.refresh()


# -- the same through pyepics ------------------------------------------------------------------------
SCENARIOS: dict[str, str] = {
    "sim-moves": RESET
    + """
m = reset('m1')
record('repr', repr(m))
record('fields', (m.RTYP, m.drive, m.readback, m.high_limit, m.get('SET', as_string=True)))
record('wait', m.move(5, wait=True))
record('pos', (m.get_position(), m.get_position(readback=True), m.get_position(dial=True, readback=True),
               m.get_position(raw=True, readback=True)))
record('relative', m.move(1.5, relative=True, wait=True))
record('beyond', (m.move(100.5), m.move(-101, wait=True), m.move(101, dial=True)))
record('bad', m.move(None))
record('limits', (m.within_limits(50), m.within_limits(500), m.within_limits(-100, dial=True)))
record('after', (m.VAL, m.RBV, m.DMOV))
record('back', m.move(0, wait=True))
record('confirm', m.move(30, confirm_move=True))
m.stop()
""",
    "sim-set-tweak": RESET
    + """
m = reset('m2')
record('move', m.move(3, wait=True))
m.set_position(10)
record('set', (m.VAL, m.RBV, m.DRBV, m.OFF, m.HLM, m.get('SET', as_string=True)))
m.set_position(1, dial=True)
record('set dial', (m.DRBV, m.RBV, m.RRBV))
m.TWV = 2.0
record('tweak', (m.tweak(wait=True), m.RBV, m.tweak('reverse', wait=True), m.RBV))
record('info', m.get_info())
record('steps', m.make_step_list())
m.show_info()
""",
    "bad-prefixes": """
for name in ('nomotor', 'notmotor'):
    try:
        epics.Motor(P + name, timeout=0.5)
    except Exception as exc:
        record(name, exc)
m = epics.Motor(P + 'm3.VAL')
record('name', repr(m))
""",
    "fake-motor": """
m = epics.Motor(P + 'mtr2')
record('repr', repr(m))
record('limits', (m.HLM, m.LLM, m.within_limits(5), m.within_limits(50)))
record('beyond', m.move(50))
record('move', m.move(1.25, wait=True))
record('lvio', m.LVIO)
record('tweak', m.tweak())
m.stop()
""",
}


@pytest.fixture(scope="module")
def pyepics_motor_results(request: pytest.FixtureRequest) -> dict[str, Any]:
    return run_pyepics(record_ioc(request.config), SCENARIOS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_pyepics(scenario: str, repics: Any, rioc: IOCHandle, pyepics_motor_results: dict[str, Any]) -> None:
    theirs = dict(pyepics_motor_results[scenario])
    ours = execute(SCENARIOS[scenario], repics, rioc.prefix)
    for result in (theirs, ours):
        result.pop("elapsed")
    diff = differences(theirs, ours, "pyepics vs compat")
    assert not diff, "\n".join(diff)
