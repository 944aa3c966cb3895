"""How a compat PV's automatic monitor reaches it: pulled on read without value callbacks, pushed with them.

A PV without value callbacks only holds its subscription: updates wake no
callback thread and a read applies the newest one.  Adding a callback (by
``add_callback``, by changing ``pv.callbacks`` directly, or by setting
``verbose``) switches to delivering each update, from the next one on, as
pyepics does.  Run against the C IOC.
"""

from __future__ import annotations

import copy
import gc
import pickle
import queue
from collections.abc import Iterator
from typing import Any

import pytest
from compat_support import cioc_fixture, epics_fixture  # noqa: F401
from engine_support import connected, open_context, until

from caclient import Context
from caclient.testing import IOCHandle


@pytest.fixture
def writer(cioc: IOCHandle) -> Iterator[Context]:
    """A Context of its own, so that its writes are not compat's (which make compat read afresh)."""
    yield from open_context(cioc.env, 5.0)


def _held_value(pv: Any) -> Any:
    resp = pv._monref.most_recent_response
    return None if resp is None else resp.data[0]


def _engine_counters(epics: Any) -> tuple[int, int]:
    """(callback jobs run, messages sent) of compat's Context."""
    stats = epics._runtime.RUNTIME.context().statistics()
    return stats.callbacks.jobs_run, sum(c.messages_out for c in stats.circuits)


def _let_connection_jobs_finish(epics: Any, pv: Any) -> None:
    """Return once an update came and went with no callback job run.

    The jobs that connecting queued (connection and access-rights events) may
    still run after the first update arrived; a CI run once counted one of them.
    If every update made a job, this fails instead.
    """
    for _ in range(10):
        jobs = _engine_counters(epics)[0]
        seen = _held_value(pv)
        until(lambda seen=seen: _held_value(pv) > seen, "one more update of the 10 Hz counter")
        if _engine_counters(epics)[0] == jobs:
            return
    raise AssertionError("a callback job ran for each of 10 updates of a PV without callbacks")


def test_without_callbacks_updates_wake_no_callback_thread_and_a_get_reads_the_newest(
    epics: Any, cioc: IOCHandle
) -> None:
    pv = epics.PV(cioc.pv("counter"))
    assert pv.wait_for_connection(5)
    sub = pv._monref
    assert sub is not None and sub.wanted and sub.callbacks == {}
    until(lambda: _held_value(pv) is not None, "the first update")
    _let_connection_jobs_finish(epics, pv)
    start = _held_value(pv)
    jobs, sent = _engine_counters(epics)
    until(lambda: _held_value(pv) >= start + 3, "three more updates of the 10 Hz counter")
    assert _engine_counters(epics)[0] == jobs  # nothing ran on a callback thread
    newest = _held_value(pv)
    value = pv.get()
    assert value >= newest  # (one more update may have come meanwhile)
    assert pv.value >= value
    assert _engine_counters(epics)[1] == sent  # no read went to the server: the monitor's value
    assert pv.timestamp > 0 and pv.count == 1


def test_a_callback_added_later_gets_the_next_change_not_the_current_value(
    epics: Any, cioc: IOCHandle, writer: Context
) -> None:
    name = cioc.pv("ao")
    target = connected(writer, name)
    target.write(1.25, wait=True)
    pv = epics.PV(name)
    assert pv.wait_for_connection(5)
    until(lambda: _held_value(pv) == 1.25, "the written value")
    assert pv.get() == 1.25
    got: queue.Queue[Any] = queue.Queue()
    index = pv.add_callback(lambda value=None, **kw: got.put(value), with_ctrlvars=False)
    assert pv._monref.callbacks  # pushed now
    target.write(2.5, wait=True)
    assert got.get(timeout=5) == 2.5  # (not 1.25 first, as pyepics)
    pv.remove_callback(index)
    assert pv._monref.callbacks == {} and pv._monref.wanted  # held again, never stopped
    target.write(3.75, wait=True)
    until(lambda: _held_value(pv) == 3.75, "the next written value")
    assert pv.get() == 3.75
    assert got.empty()


def test_changing_the_callbacks_dict_directly_switches_delivery(epics: Any, cioc: IOCHandle) -> None:
    pv = epics.PV(cioc.pv("counter"))
    assert pv.wait_for_connection(5)
    got: queue.Queue[Any] = queue.Queue()

    def on_change(value: Any = None, **kw: Any) -> None:
        got.put(value)

    pv.callbacks[7] = (on_change, {})
    first = got.get(timeout=5)
    assert got.get(timeout=5) > first
    del pv.callbacks[7]
    assert pv._monref.callbacks == {}
    pv.callbacks = {3: (on_change, {})}
    assert type(pv.callbacks) is not dict and pv._monref.callbacks  # (assignment keeps it a table)
    while not got.empty():
        got.get_nowait()
    assert got.get(timeout=5) is not None
    pv.callbacks.clear()
    assert pv._monref.callbacks == {}
    pv.callbacks.update({1: (on_change, {})})
    assert pv._monref.callbacks
    plain = copy.copy(pv.callbacks)
    assert type(plain) is dict and plain == {1: (on_change, {})}
    table = type(pv.callbacks)(None, {1: (len, {})})
    assert pickle.loads(pickle.dumps(table)) == {1: (len, {})}
    assert type(pickle.loads(pickle.dumps(table))) is dict
    pv.clear_callbacks()
    assert pv._monref.callbacks == {}


def test_verbose_set_after_creation_prints_each_update(
    epics: Any, cioc: IOCHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    pv = epics.PV(cioc.pv("counter"))
    assert pv.wait_for_connection(5)
    assert pv._monref.callbacks == {}
    pv.verbose = True
    assert pv.verbose is True and pv._monref.callbacks
    name = cioc.pv("counter")
    until(lambda: capsys.readouterr().out.count(name + ":") > 0, "a printed update")
    pv.verbose = False
    assert pv._monref.callbacks == {}


def test_a_freed_pv_lets_its_monitor_and_engine_callbacks_go(epics: Any, cioc: IOCHandle) -> None:
    name = cioc.pv("longin")  # (a value that never changes: no update would tell a relay its PV is gone)
    pv = epics.PV(name)
    assert pv.wait_for_connection(5) and pv.get() == 42
    sub, eng = pv._monref, pv._eng
    assert sub.wanted
    before = len(eng.connection_state_callback)
    del pv
    gc.collect()
    epics.PV(cioc.pv("ai")).wait_for_connection(5)  # (binding another PV reaps the freed ones)
    assert not sub.wanted  # the monitor was cancelled
    assert len(eng.connection_state_callback) == before - 1
    for _ in range(50):  # a loop that makes a PV object each time does not pile up engine callbacks
        assert epics.PV(name).get() == 42
    gc.collect()
    epics.PV(cioc.pv("ai"))
    assert len(eng.connection_state_callback) <= before


def test_a_late_connection_event_does_not_undo_the_monitors_count(epics: Any, cioc: IOCHandle) -> None:
    # The engine's connection event may reach a PV after a read on another
    # thread applied the monitor's first update; setting the connection's
    # fields again (count = NELM) must not stick.
    pv = epics.PV(cioc.pv("emptywf"))
    assert pv.wait_for_connection(5)
    until(lambda: pv._monref.most_recent_response is not None, "the first update")
    assert pv.count == 0
    assert pv._setup_connected()  # (what the connection event does, run late)
    assert pv.count == 0 and pv.nelm > 1
    assert pv.get(as_string=True) == epics.caget(cioc.pv("emptywf"), as_string=True)
