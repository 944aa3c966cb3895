"""compat's one runtime object: one reset restores every piece, fork gives a clean child, one hook each."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import weakref
from typing import Any

import pytest
from compat_support import cioc_fixture, epics_fresh_ca_fixture  # noqa: F401

import compat
from caclient import ContextClosedError
from caclient.testing import IOCHandle
from compat._runtime import RUNTIME, Runtime

#: Attributes of a Runtime that are not state to reset: the lock, the settings, the id counters, the parts.
NOT_STATE = {"lock", "settings", "_handles", "_group_ids", "parts"}


def _state_names() -> list[str]:
    return sorted(set(vars(Runtime())) - NOT_STATE)


def _is_table(value: Any) -> bool:
    return isinstance(value, (dict, set, weakref.WeakKeyDictionary))


def _dirty_everything(epics: Any, ioc: IOCHandle) -> None:
    """Use every piece of compat's process state through the public API."""
    ca = epics.ca
    chid = ca.create_channel(ioc.pv("longin"), connect=True)  # libca, contexts, tls, channel tables
    assert ca.get(chid) == 42
    ca.register_clear_cache(lambda: None)
    ca.sg_create()
    pv = epics.get_pv(ioc.pv("ai"), callback=lambda **kw: None, connect=True)  # pv_cache, keepalive
    assert pv.host  # hostnames
    epics.camonitor(ioc.pv("counter"), writer=lambda text: None)  # monitors
    assert epics.caput(ioc.pv("ao"), 1.5, wait=True) == 1  # writes
    assert epics.PV(ioc.pv("ao")).get() == 1.5  # (binds the channel the put counted)


@pytest.mark.timeout(60)
def test_one_reset_restores_every_piece(epics: Any, cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epics.ca, "AUTOMONITOR_MAXLENGTH", 1234)
    _dirty_everything(epics, cioc)
    fresh = Runtime()
    names = _state_names()
    plain = [n for n in names if n != "tls"]  # (tls, a threading.local, is checked by its value)
    dirty = [n for n in plain if getattr(RUNTIME, n) != getattr(fresh, n)]
    assert dirty == plain  # every piece is in use, so the reset below has something to undo
    assert getattr(RUNTIME.tls, "context", None) is not None
    old_context, old_generation = RUNTIME.engine_context, RUNTIME.generation
    assert old_context is not None

    compat._runtime._reset()

    for name in names:
        value = getattr(RUNTIME, name)
        if _is_table(value):
            assert len(value) == 0, name
        elif name == "generation":
            assert value > old_generation
        elif name == "tls":
            assert getattr(value, "context", None) is None
        else:
            assert value == getattr(fresh, name), name
    with pytest.raises(ContextClosedError):  # the reset closed the Context
        old_context.get_pvs("ANY")
    assert epics.ca.AUTOMONITOR_MAXLENGTH == 1234  # settings are the script's: a reset keeps them
    assert epics.ca.current_context() is not None  # and compat starts again on next use
    assert epics.caget(cioc.pv("longin")) == 42


def test_settings_are_read_from_the_runtime_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    ca = compat.ca
    for name in compat._runtime.Settings.__slots__:
        assert name not in vars(ca)  # (else an assignment would shadow the runtime's value)
        monkeypatch.setattr(ca, name, getattr(ca, name))
    monkeypatch.setattr(ca, "DEFAULT_CONNECTION_TIMEOUT", 0.25)
    assert compat._runtime.SETTINGS.DEFAULT_CONNECTION_TIMEOUT == 0.25
    from compat.ca import DEFAULT_CONNECTION_TIMEOUT

    assert DEFAULT_CONNECTION_TIMEOUT == 0.25
    assert ca._lock is RUNTIME.lock and ca._tls is RUNTIME.tls
    assert ca._cache is RUNTIME.ca_cache and ca._by_name is RUNTIME.by_name


def _fork_child(out: Any, parent_lock_id: int) -> None:
    try:
        tables = {n: len(getattr(RUNTIME, n)) for n in _state_names() if _is_table(getattr(RUNTIME, n))}
        out.put(
            {
                "engine": RUNTIME.engine_context is None,
                "libca": RUNTIME.libca is None,
                "initial": RUNTIME.initial_context is None,
                "tls": getattr(RUNTIME.tls, "context", None) is None,
                "new_lock": id(RUNTIME.lock) != parent_lock_id and not RUNTIME.lock.locked(),
                "tables": tables,
                "setting": compat.ca.AUTOMONITOR_MAXLENGTH,
            }
        )
    except BaseException as exc:
        out.put(repr(exc))


@pytest.mark.timeout(60)
def test_forked_child_starts_clean_and_parent_is_untouched(
    epics: Any, cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork")
    monkeypatch.setattr(epics.ca, "AUTOMONITOR_MAXLENGTH", 4321)
    _dirty_everything(epics, cioc)
    before = {
        n: (len(v) if _is_table(v) else v) for n in _state_names() if (v := getattr(RUNTIME, n)) is not RUNTIME.tls
    }
    mp = multiprocessing.get_context("fork")
    out = mp.Queue()
    # Hold the runtime lock across fork(): the child must not inherit it held.
    with RUNTIME.lock:
        proc = mp.Process(target=_fork_child, args=(out, id(RUNTIME.lock)))
        proc.start()
    got = out.get(timeout=30)
    proc.join(30)
    out.close()
    out.join_thread()
    assert proc.exitcode == 0
    assert isinstance(got, dict), got
    assert got.pop("setting") == 4321  # (settings are inherited, as module attributes are)
    tables = got.pop("tables")
    assert all(got.values()), got
    # The channel names stay (inherited chids bind by name in the child); everything else is empty.
    assert tables.pop("by_name") == tables.pop("chid_cache") == 1
    assert tables.pop("clear_cache_callbacks") == 1
    assert set(tables.values()) == {0}, tables
    after = {
        n: (len(v) if _is_table(v) else v) for n in _state_names() if (v := getattr(RUNTIME, n)) is not RUNTIME.tls
    }
    assert after == before
    assert epics.caget(cioc.pv("longin")) == 42


class _Part:
    """A part attached to the runtime that records which lifecycle calls it gets."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reset(self) -> None:
        self.calls.append("reset")

    def after_fork_in_child(self) -> None:
        self.calls.append("fork")

    def at_exit(self) -> None:
        self.calls.append("exit")


def _part_fork_child(out: Any, part: _Part) -> None:
    out.put(list(part.calls))


@pytest.mark.timeout(60)
def test_attached_part_follows_reset_and_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    part = _Part()
    monkeypatch.setattr(RUNTIME, "parts", [])
    RUNTIME.attach(part)
    RUNTIME.attach(part)  # (once)
    assert RUNTIME.parts == [part]
    RUNTIME.reset()
    assert part.calls == ["reset"]
    assert RUNTIME.parts == [part]  # (a reset keeps the attachments)
    if "fork" in multiprocessing.get_all_start_methods():
        mp = multiprocessing.get_context("fork")
        out = mp.Queue()
        proc = mp.Process(target=_part_fork_child, args=(out, part))
        proc.start()
        assert out.get(timeout=30) == ["reset", "fork"]
        proc.join(30)
        out.close()
        out.join_thread()
        assert proc.exitcode == 0
        assert part.calls == ["reset"]  # the parent's part saw no fork hook


HOOKS = """
import atexit, os, sys
seen = {"atexit": [], "fork": []}
real_atexit, real_fork = atexit.register, os.register_at_fork
def count_atexit(fn, *a, **k):
    seen["atexit"].append(getattr(fn, "__module__", "") or "")
    return real_atexit(fn, *a, **k)
def count_fork(**kw):
    seen["fork"].extend(getattr(f, "__module__", "") or "" for f in kw.values())
    return real_fork(**kw)
atexit.register, os.register_at_fork = count_atexit, count_fork
import compat, compat.ca, compat.pv, compat.multiproc, compat.motor, compat.alarm, compat.device, compat.devices
import asyncio, compat.aioca
async def touch_aioca():  # (makes compat.aioca's per-loop channel cache)
    try:
        await compat.aioca.caget("NOT:THERE", timeout=0.2)
    except compat.aioca.CANothing:
        pass
asyncio.run(touch_aioca())
from compat._runtime import RUNTIME
class Part:
    def reset(self): pass
    def after_fork_in_child(self): pass
    def at_exit(self): print("part closed at exit")
RUNTIME.attach(Part())
ctx = RUNTIME.context()
compat.ca.initialize_libca()
compat.ca.create_channel("NOT:THERE")
compat.ca.clear_cache()
compat.ca.finalize_libca()
compat.ca.initialize_libca()
mine = {k: [m for m in v if m.startswith("compat")] for k, v in seen.items()}
print(len(mine["atexit"]), len(mine["fork"]))
"""


@pytest.mark.timeout(60)
def test_one_atexit_and_one_fork_hook(cioc: IOCHandle) -> None:
    """However compat is used, it registers one atexit and one fork hook; exit is silent and closes the engine."""
    env = dict(os.environ, **cioc.env)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(HOOKS)], env=env, capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1 1", "part closed at exit"]
    assert proc.stderr == ""
