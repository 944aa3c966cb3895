"""compat.ca: pyepics' low-level channel functions, contexts, decorators and knobs."""

from __future__ import annotations

import queue
import threading
import warnings
from typing import Any

import pytest
from compat_oracle import execute
from compat_support import (  # noqa: F401
    cioc_fixture,
    compat_ioc,
    differences,
    epics_fresh_ca_fixture,
    run_pyepics,
)

from caclient.testing import IOCHandle

# -- differential: the same code through pyepics and compat ------------------------------------------
S: dict[str, str] = {}
S["method-3"] = """
ca = epics.ca
record('put', write('wf', [1.5, 2.5, 3.25]))
names = [P + n for n in ('ai', 'longin', 'stringin', 'mbbi', 'bi', 'calc', 'wf', 'ro')]
chids = [ca.create_channel(name, connect=False, auto_cb=False) for name in names]
record('connected', [ca.connect_channel(chid) for chid in chids])
ca.poll()
record('no wait', [ca.get(chid, wait=False) for chid in chids])
ca.poll()
data = {}
for chid in chids:
    data[ca.name(chid)] = ca.get_complete(chid)
record('values', [data[name] for name in names])
record('again', [ca.get_complete(chid) for chid in chids])
record('same chid', ca.create_channel(names[0]) == chids[0])
"""
S["channel-info"] = """
ca = epics.ca
for n in ('ai', 'longin', 'stringin', 'mbbi', 'chwf', 'wf', 'ro'):
    chid = ca.create_channel(P + n, connect=True)
    record(n, (ca.name(chid), ca.field_type(chid), ca.element_count(chid), ca.state(chid), ca.isConnected(chid),
               ca.read_access(chid), ca.write_access(chid), ca.access(chid), ca.promote_type(chid),
               ca.promote_type(chid, use_time=True), ca.promote_type(chid, use_ctrl=True)))
    record(n + ' string', ca.get(chid, as_string=True))
    record(n + ' ctrl', ca.get_ctrlvars(chid))
    record(n + ' prec', (ca.get_precision(chid), ca.get_enum_strings(chid)))
    tv = ca.get_timevars(chid)
    record(n + ' time keys', sorted(tv))
    md = ca.get_with_metadata(chid, ftype=ca.promote_type(chid, use_time=True))
    record(n + ' md', sorted(md))
record('version', ca.version())
record('message', ca.message(1))
record('promote', [ca.promote_fieldtype(t, use_time=True) for t in range(7)])
"""
S["put-and-subscribe"] = """
ca = epics.ca
chid = ca.create_channel(P + 'cb', connect=True)
record('put', ca.put(chid, 1.25, wait=True))
record('get', ca.get(chid))
got = queue.Queue()
ref = ca.create_subscription(chid, use_time=True, callback=lambda **kw: got.put(kw))
record('tuple', (len(ref), callable(ref[0])))
first = got.get(timeout=5)
record('first', sorted(first))
record('first value', first['value'])
done = queue.Queue()
record('put cb', ca.put(chid, 2.5, callback=lambda **kw: done.put(kw), callback_data={'x': 1}))
record('done', sorted(done.get(timeout=5)))
record('second value', got.get(timeout=5)['value'])
ca.clear_subscription(ref[2])
record('ctx', type(ca.current_context()).__name__)
"""


@pytest.fixture(scope="module")
def pyepics_results(request: pytest.FixtureRequest) -> dict[str, Any]:
    return run_pyepics(compat_ioc(request.config), S)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", sorted(S))
def test_same_as_pyepics(scenario: str, epics: Any, cioc: IOCHandle, pyepics_results: dict[str, Any]) -> None:
    theirs = dict(pyepics_results[scenario])
    ours = execute(S[scenario], epics, cioc.prefix)
    theirs.pop("elapsed")
    ours.pop("elapsed")
    diff = differences(theirs, ours, "pyepics vs compat")
    assert not diff, "\n".join(diff)


# -- chids ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_chids_are_ints_shared_with_pv(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    chid = ca.create_channel(cioc.pv("ai"), connect=True)
    assert isinstance(chid, int) and chid.value == int(chid)
    assert {chid: "x"}[int(chid)] == "x"  # a dict key, equal to its int
    assert ca.create_channel(cioc.pv("ai")) is chid or ca.create_channel(cioc.pv("ai")) == chid
    pv = epics.PV(cioc.pv("ai"))
    assert pv.wait_for_connection(5)
    assert pv.chid == chid
    assert ca.name(pv.chid) == cioc.pv("ai")
    assert ca.get(int(chid)) == 3.5
    with pytest.raises(ca.ChannelAccessException):
        ca.name(12345)
    with pytest.raises(ca.ChannelAccessException):
        ca.name("not a chid")
    assert ca.clear_channel(chid) == 1
    with pytest.raises(ca.ChannelAccessException):
        ca.name(chid)
    assert ca.get(ca.create_channel(cioc.pv("ai"))) == 3.5  # a new chid for the name
    conn: queue.Queue[dict[str, Any]] = queue.Queue()
    other = ca.create_channel(cioc.pv("ai"), callback=lambda **kw: conn.put(kw))
    assert conn.get(timeout=5) == {"pvname": cioc.pv("ai"), "chid": int(other), "conn": True}


@pytest.mark.timeout(30)
def test_unconnected_channel(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    ca.DEFAULT_CONNECTION_TIMEOUT = 0.2
    try:
        chid = ca.create_channel(cioc.prefix + "does-not-exist")
        assert not ca.connect_channel(chid, timeout=0.2)
        assert ca.get(chid) is None
        assert (ca.field_type(chid), ca.element_count(chid), ca.state(chid), ca.access(chid)) == (-1, 0, 0, "no access")
        assert ca.host_name(chid) == "<disconnected>"
        with pytest.raises(ca.ChannelAccessException):
            ca.put(chid, 1)
        with pytest.raises(ca.ChannelAccessException):
            ca.create_subscription(chid, timeout=0.1)
    finally:
        ca.DEFAULT_CONNECTION_TIMEOUT = 2.0


@pytest.mark.timeout(30)
def test_get_complete_without_get_warns(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    chid = ca.create_channel(cioc.pv("longin"), connect=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ca.get_complete(chid) is None
    assert "without initial get" in str(caught[0].message)
    with pytest.raises(ca.CASeverityException, match="Write access denied"):
        ca.put(ca.create_channel(cioc.pv("ro"), connect=True), 2.0)


# -- contexts ---------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_context_values_follow_pyepics(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    main = ca.current_context()
    assert isinstance(main, int) and main == ca.initial_context
    seen: dict[str, Any] = {}

    def plain() -> None:
        seen["fresh"] = ca.current_context()  # pyepics: a new thread has no context
        seen["caget"] = epics.caget(cioc.pv("ai"))  # ... but here it works anyway
        seen["use"] = ca.use_initial_context()
        seen["after use"] = ca.current_context()
        seen["detach"] = ca.detach_context()
        seen["detached"] = ca.current_context()
        ca.create_context()
        seen["own"] = ca.current_context()
        seen["attach other"] = ca.attach_context(main)
        seen["own get"] = ca.get(ca.create_channel(cioc.pv("longin")))
        seen["use again"] = ca.use_initial_context()  # pyepics raises here; never fails here
        seen["back"] = ca.current_context()
        ca.destroy_context()
        seen["destroyed"] = ca.current_context()
        seen["bad attach"] = ca.attach_context(12345)
        seen["still works"] = epics.caget(cioc.pv("ai"))

    def in_cathread() -> None:
        seen["cathread"] = ca.current_context()

    @ca.withInitialContext
    def decorated() -> Any:
        return ca.current_context()

    for target in (plain, in_cathread):
        th = ca.CAThread(target=target) if target is in_cathread else threading.Thread(target=target)
        th.start()
        th.join(20)
    out: list[Any] = []
    th = threading.Thread(target=lambda: out.append(decorated()))
    th.start()
    th.join(20)
    assert seen["fresh"] is None and seen["caget"] == 3.5
    assert seen["use"] == 1 and seen["after use"] == main
    assert seen["detach"] == 1 and seen["detached"] is None
    assert isinstance(seen["own"], int) and seen["own"] != main
    assert seen["attach other"] == epics.dbr.ECA_ISATTACHED
    assert seen["own get"] == 42
    assert seen["use again"] == 1 and seen["back"] == main
    assert seen["destroyed"] is None and seen["bad attach"] != 1 and seen["still works"] == 3.5
    assert seen["cathread"] == main and out == [main]
    assert ca.current_context() == main


@pytest.mark.timeout(30)
def test_finalize_then_initialize(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    chid = ca.create_channel(cioc.pv("ai"), connect=True)
    assert ca.get(chid) == 3.5
    ca.finalize_libca()
    assert ca.get(chid) is None and ca.current_context() is None and ca.create_channel("x") is None
    ca.initialize_libca()
    assert ca.get(ca.create_channel(cioc.pv("ai"))) == 3.5


@pytest.mark.timeout(30)
def test_clear_cache_gives_a_fresh_session(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    chid = ca.create_channel(cioc.pv("ai"), connect=True)
    pv = epics.get_pv(cioc.pv("longin"), connect=True)
    before = ca.current_context()
    ca.clear_cache()
    assert ca.current_context() != before and ca.current_context() == ca.initial_context
    with pytest.raises(ca.ChannelAccessException):
        ca.get(chid)
    assert pv.get() == 42  # a PV made before reconnects
    assert epics.caget(cioc.pv("ai")) == 3.5


def test_knobs_are_read_at_call_time(epics: Any, cioc: IOCHandle) -> None:
    ca = epics.ca
    chid = ca.create_channel(cioc.pv("wf"), connect=True)
    ca.HAS_NUMPY = False
    try:
        assert type(ca.get(chid, count=3)).__name__.endswith("_Array_3")  # a ctypes array, as pyepics
    finally:
        ca.HAS_NUMPY = True
    assert not isinstance(ca.get(chid, count=3), list)
    assert ca.withSEVCHK(lambda: 1)() == 1
    with pytest.raises(ca.CASeverityException):
        ca.PySEVCHK("put", 376)
    assert ca.show_cache(print_out=False).count("\n") >= 2
