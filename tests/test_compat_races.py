"""Races in compat's PV binding and callbacks, each forced with a hook, not timing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from compat_support import cioc_fixture, epics_fixture  # noqa: F401

import compat
from caclient.testing import IOCHandle


def test_rebinding_from_two_threads_binds_once(epics: Any, cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a new Context, two threads that use the same PV must not both bind it.

    The hook runs the second thread while the first is inside its bind.
    """
    pv = compat.PV(cioc.pv("ai"), auto_monitor=False)
    pv._chan()  # bound to the first Context
    compat._runtime._reset()  # a new Context (as after fork() or a reset)
    ctx = compat._runtime.context()
    real_get_pvs = ctx.get_pvs
    second: list[threading.Thread] = []

    def get_pvs(*names: str, **kw: Any) -> Any:
        if not second:
            other = threading.Thread(target=pv._chan, name="second-binder")
            second.append(other)
            other.start()
            other.join(0.5)  # (with the fix it waits for the first binder's lock: let it)
        return real_get_pvs(*names, **kw)

    monkeypatch.setattr(ctx, "get_pvs", get_pvs)
    eng = pv._chan()
    second[0].join(5)
    assert not second[0].is_alive()
    assert pv._eng is eng
    assert len(eng.connection_state_callback) == 1  # one relay, not a stray second one


def test_host_lookup_runs_without_the_pv_lock(epics: Any, cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow reverse lookup must not hold the PV's lock, and its cache is written under the runtime lock."""
    runtime = compat._runtime.RUNTIME
    in_lookup = threading.Event()
    release = threading.Event()
    held_during_lookup: list[bool] = []
    pv_box: list[Any] = []

    def slow_gethostbyaddr(addr: str) -> Any:
        in_lookup.set()
        if pv_box:
            lock = pv_box[0]._lock
            free = lock.acquire(timeout=2)
            if free:
                lock.release()
            held_during_lookup.append(not free)
        release.wait(10)
        return ("slowhost", [], [addr])

    unlocked_writes: list[str] = []

    class CheckedDict(dict[str, str]):
        def __setitem__(self, key: str, value: str) -> None:
            if not runtime.lock.locked():
                unlocked_writes.append(key)
            super().__setitem__(key, value)

    monkeypatch.setattr(runtime, "hostnames", CheckedDict())
    monkeypatch.setattr(compat._runtime.socket, "gethostbyaddr", slow_gethostbyaddr)
    pv = compat.PV(cioc.pv("ai"), auto_monitor=False)
    pv_box.append(pv)
    pv._chan()
    assert in_lookup.wait(10)
    release.set()
    assert pv.wait_for_connection(timeout=10)
    assert held_during_lookup and not any(held_during_lookup)  # (the caller may look up too)
    assert pv.host is not None and pv.host.startswith("slowhost:")
    assert unlocked_writes == []


def test_connection_callback_added_while_the_connect_event_runs_is_called_once(
    epics: Any, cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_pv() adds a connection callback to a connected PV whose connect event is still running.

    The hook holds that event on its callback thread inside the PV's set-up
    (the reverse lookup), after it has taken the callbacks it owes.  get_pv
    calls the new callback itself, as pyepics does, so the event must not
    call it again when it goes on.
    """
    runtime = compat._runtime.RUNTIME
    real_host_name = runtime.host_name
    real_event = compat.PV._on_connection_event
    caller = threading.current_thread()
    name = cioc.pv("ro")
    held, release, event_done = threading.Event(), threading.Event(), threading.Event()

    def host_name(address: Any) -> Any:
        if threading.current_thread() is not caller and not release.is_set():
            held.set()
            release.wait(10)
        return real_host_name(address)

    def on_connection_event(self: Any, eng: Any, state: str) -> None:
        try:
            real_event(self, eng, state)
        finally:
            if self.pvname == name:
                event_done.set()

    monkeypatch.setattr(runtime, "host_name", host_name)
    monkeypatch.setattr(compat.PV, "_on_connection_event", on_connection_event)
    pv = compat.get_pv(name, connect=True)
    assert held.wait(10), "the connect event did not reach the PV's set-up"
    calls: list[bool] = []
    assert compat.get_pv(name, connection_callback=lambda **kw: calls.append(kw["conn"])) is pv
    assert calls == [True]  # called at once: the PV is connected
    release.set()
    assert event_done.wait(10)
    assert calls == [True]
