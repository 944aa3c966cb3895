"""compat.Alarm and the ca.sg_* synchronous groups, on the EPICS C IOC, and differentially against pyepics."""

from __future__ import annotations

import ctypes
import queue
import re
import threading
import time
from typing import Any

import numpy as np
import pytest
from compat_oracle import execute
from compat_support import cioc_fixture, compat_ioc, differences, epics_fixture, run_pyepics  # noqa: F401

from caclient.testing import IOCHandle


def _put(epics: Any, name: str, value: Any) -> None:
    p = epics.PV(name, auto_monitor=False)
    assert p.wait_for_connection(5)
    assert p.put(value, wait=True) == 1


# -- Alarm ----------------------------------------------------------------------------------------------
def test_alarm_fires_once_per_crossing_with_pyepics_arguments(epics: Any, cioc: IOCHandle) -> None:
    name = cioc.pv("alarmtest")
    _put(epics, name, 0.0)
    got: queue.Queue[dict[str, Any]] = queue.Queue()
    alarm = epics.Alarm(name, comparison="gt", trip_point=5.0, callback=lambda **kw: got.put(kw), alert_delay=0)
    assert repr(alarm) == f"<Alarm pvname='{name}',comp='gt','trip_point=5.0>"
    _put(epics, name, 6.0)
    kw = got.get(timeout=10)
    assert (kw["pvname"], kw["value"], kw["char_value"], kw["trip_point"], kw["comparison"]) == (
        name, 6.0, "6.00", 5.0, "gt",
    )  # fmt: skip
    assert {"status", "severity", "timestamp", "units", "precision"} <= set(kw)
    for value in (7.0, 1.0, 8.0):  # 7: still in alarm (no alert); 1: clear; 8: a new crossing
        _put(epics, name, value)
    assert got.get(timeout=10)["value"] == 8.0
    assert got.empty()


def test_alarm_alert_delay_and_reset(epics: Any, cioc: IOCHandle) -> None:
    name = cioc.pv("alarmtest")
    _put(epics, name, 0.0)
    slow: list[float] = []
    marks: queue.Queue[float] = queue.Queue()
    delayed = epics.Alarm(name, "ge", 5.0, callback=lambda value=None, **kw: slow.append(value), alert_delay=600)
    # A second alarm on the same PV runs after the first for each update: a marker that it has been seen.
    epics.Alarm(name, ">=", 5.0, callback=lambda value=None, **kw: marks.put(value), alert_delay=0)
    for value in (5.0, 0.0, 9.0):
        _put(epics, name, value)
    assert marks.get(timeout=10) == 5.0 and marks.get(timeout=10) == 9.0
    assert slow == [5.0]  # (9.0 came within alert_delay)
    delayed.reset()
    _put(epics, name, 0.0)
    _put(epics, name, 7.0)
    assert marks.get(timeout=10) == 7.0
    assert slow == [5.0, 7.0]


def test_alarm_comparisons_and_bad_arguments(epics: Any, cioc: IOCHandle) -> None:
    name = cioc.pv("alarmtest")
    _put(epics, name, 0.0)

    def close_to(value: float, trip: float) -> bool:
        return abs(value - trip) < 0.5

    got: queue.Queue[dict[str, Any]] = queue.Queue()
    alarm = epics.Alarm(epics.PV(name), comparison=close_to, trip_point=3.0, callback=lambda **kw: got.put(kw))
    assert alarm.comp_name == "close_to"
    unknown = epics.Alarm(name, comparison="bigger", trip_point=1.0, callback=lambda **kw: got.put({"bad": kw}))
    assert unknown.cmp is None and unknown.comp_name == "Not Defined"
    _put(epics, name, 3.25)
    kw = got.get(timeout=10)
    assert kw["comparison"] == "close_to" and kw["value"] == 3.25
    for missing in ({"comparison": None}, {"trip_point": None}):
        args: dict[str, Any] = {"comparison": "lt", "trip_point": 1.0, **missing}
        with pytest.raises(UserWarning, match="alarm requires valid PV, comparison, and trip_point"):
            epics.Alarm(name, **args)
    with pytest.raises(UserWarning):
        epics.Alarm(12, "lt", 1.0)


def test_alarm_without_callback_prints(epics: Any, cioc: IOCHandle, capsys: pytest.CaptureFixture[str]) -> None:
    name = cioc.pv("alarmtest")
    _put(epics, name, 0.0)
    done = threading.Event()
    epics.Alarm(name, "__lt__", -1.0)
    epics.Alarm(name, "lt", -1.0, callback=lambda **kw: done.set())
    _put(epics, name, -2.5)
    assert done.wait(10)
    out = capsys.readouterr().out
    assert re.fullmatch(rf"Alarm: {re.escape(name)}=-2\.50 \(\w{{3}} \w{{3}} [ \d]\d [\d:]{{8}} \d{{4}}\)\n", out), out


# -- synchronous groups ---------------------------------------------------------------------------------
def _channels(epics: Any, cioc: IOCHandle, *names: str) -> list[Any]:
    chids = [epics.ca.create_channel(cioc.pv(n)) for n in names]
    for chid in chids:
        assert epics.ca.connect_channel(chid, timeout=5)
    return chids


def test_sg_put_get_block(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    ao, wf, st = _channels(epics, cioc, "sgao", "sgwf", "sgstr")
    gid = ca.sg_create()
    assert gid.value == int(gid) > 0
    assert ca.sg_put(gid, ao, 2.5) == 1
    assert ca.sg_put(gid, wf, [1.0, 2.0, 3.0]) == 1
    assert ca.sg_put(gid, st, "text") == 1  # (pyepics raises TypeError for a str: it wants bytes)
    assert ca.sg_block(gid, 5.0) == 1
    assert ca.sg_test(gid) == epics.dbr.ECA_IODONE
    # What a correct sg_get returns: the value the server sent (see the migration guide).
    assert ca.sg_get(gid, ao) == "2.5"
    assert ca.sg_get(gid, ao, as_string=False) == 2.5
    value = ca.sg_get(gid, wf, as_string=False)
    assert isinstance(value, np.ndarray) and value.tolist() == [1.0, 2.0, 3.0, 0.0, 0.0]
    plain = ca.sg_get(gid, wf, as_numpy=False, as_string=False)  # (a ctypes array, as ca.get gives)
    assert isinstance(plain, ctypes.Array) and list(plain) == [1.0, 2.0, 3.0, 0.0, 0.0]
    data = ca.sg_get(gid, st)
    assert ca.sg_block(gid) == 1
    assert ca._unpack(st, data) == "text"
    assert ca.sg_reset(gid) == 1 and ca.sg_delete(gid) == 1


def test_sg_block_waits_for_put_completion(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    (slow,) = _channels(epics, cioc, "slow")
    _settle_slow(epics, cioc)
    gid = ca.sg_create()
    try:
        assert ca.sg_put(gid, slow, 1.5) == 1
        with pytest.raises(ca.CASeverityException, match="sg_test returned 'IO operations are in progress'"):
            ca.sg_test(gid)
        with pytest.raises(ca.CASeverityException, match="sg_block returned 'User specified timeout"):
            ca.sg_block(gid, 0.01)
        assert ca.sg_block(gid, 10.0) == 1
        assert ca.sg_test(gid) == epics.dbr.ECA_IODONE
        assert ca.sg_put(gid, slow, 0.0) == 1
        assert ca.sg_reset(gid) == 1  # (forgets the outstanding put)
        assert ca.sg_test(gid) == epics.dbr.ECA_IODONE
    finally:
        ca.sg_delete(gid)
        _settle_slow(epics, cioc)


def _settle_slow(epics: Any, cioc: IOCHandle) -> None:
    """Wait until the 'slow' record's 0.5 s delay is over (a put during it completes at once)."""
    busy = epics.PV(cioc.pv("slow:delay.PACT"), auto_monitor=False)
    assert busy.wait_for_connection(5)
    deadline = time.monotonic() + 10
    while busy.get():
        assert time.monotonic() < deadline


def test_sg_bad_input(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    (ao,) = _channels(epics, cioc, "sgao")
    gid = ca.sg_create()
    assert ca.sg_delete(gid) == 1
    for call in (
        lambda: ca.sg_block(gid),
        lambda: ca.sg_test(gid),
        lambda: ca.sg_reset(gid),
        lambda: ca.sg_delete(gid),
        lambda: ca.sg_put(gid, ao, 1.0),
        lambda: ca.sg_get(gid, ao),
        lambda: ca.sg_block("nonsense"),
    ):
        with pytest.raises(ca.CASeverityException, match="returned 'Invalid synchronous group identifier'"):
            call()
    gid = ca.sg_create()
    try:
        with pytest.raises(ca.ChannelAccessException, match="not a valid chid!"):
            ca.sg_get(gid, 12345)
        with pytest.raises(ca.ChannelAccessException, match="not a valid chid!"):
            ca.sg_put(gid, "name", 1.0)
        with pytest.raises(ca.ChannelAccessException, match="Cannot put value 'abc' to PV of type 'double'"):
            ca.sg_put(gid, ao, "abc")
        assert ca.sg_block(gid, 1.0) == 1
    finally:
        ca.sg_delete(gid)


# -- the same through pyepics ------------------------------------------------------------------------
SCENARIOS: dict[str, str] = {
    "alarm": """
got = queue.Queue()
write('alarmtest', 0.0)
a = epics.Alarm(P + 'alarmtest', comparison='gt', trip_point=5.0, callback=lambda **kw: got.put(kw), alert_delay=0)
record('repr', repr(a))
write('alarmtest', 6.0)
kw = got.get(timeout=10)
record('kw', (kw['pvname'], kw['value'], kw['char_value'], kw['trip_point'], kw['comparison']))
for v in (7.0, 1.0, 8.0):
    write('alarmtest', v)
record('again', got.get(timeout=10)['value'])
record('quiet', got.empty())
a.reset()
record('state', (a.alarm_state, a.last_alert, a.alert_delay, a.comp_name))
try:
    epics.Alarm(P + 'alarmtest', trip_point=1.0)
except UserWarning as exc:
    record('missing', exc)
""",
    "sg": """
ca = epics.ca
chids = [ca.create_channel(P + n) for n in ('sgao', 'sgwf', 'slow')]
record('connect', [ca.connect_channel(c, timeout=5) for c in chids])
ao, wf, slow = chids
g = ca.sg_create()
record('gid', g.value > 0)
record('put', (ca.sg_put(g, ao, 4.25), ca.sg_put(g, wf, [5.0, 6.0])))
record('block', ca.sg_block(g, 5.0))
record('test', ca.sg_test(g))
record('back', (ca.get(ao), ca.get(wf)))
settle_slow()  # (a put while the record is still busy from an earlier one completes at once)
record('slow put', ca.sg_put(g, slow, 2.5))
for t in (lambda: ca.sg_test(g), lambda: ca.sg_block(g, 0.01)):
    try:
        t()
    except ca.CASeverityException as exc:
        record('busy', str(exc))
record('block slow', ca.sg_block(g, 10.0))
record('reset', ca.sg_reset(g))
record('delete', ca.sg_delete(g))
try:
    ca.sg_block(g)
except ca.CASeverityException as exc:
    record('deleted', str(exc))
try:
    ca.sg_get(ca.sg_create(), 12345)
except ca.ChannelAccessException as exc:
    record('bad chid', exc)
""",
}


@pytest.fixture(scope="module")
def pyepics_results(request: pytest.FixtureRequest) -> dict[str, Any]:
    return run_pyepics(compat_ioc(request.config), SCENARIOS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_as_pyepics(scenario: str, epics: Any, cioc: IOCHandle, pyepics_results: dict[str, Any]) -> None:
    theirs = dict(pyepics_results[scenario])
    ours = execute(SCENARIOS[scenario], epics, cioc.prefix)
    for result in (theirs, ours):
        result.pop("elapsed")
    diff = differences(theirs, ours, "pyepics vs compat")
    assert not diff, "\n".join(diff)
