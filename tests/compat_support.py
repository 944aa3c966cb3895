"""Helpers shared by the compat tests: their IOC, the pyepics oracle, strict comparison.

The compat tests use one EPICS C IOC of their own (the test database plus a
few extra records below), started on first use and stopped at the end of
the session, so that their writes never meet other tests' expectations.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import compat
from caclient import Context
from caclient.testing import TEST_DB_PATH, EpicsIOC, IOCHandle

HERE = Path(__file__).resolve().parent
ORACLE = HERE / "compat_oracle.py"

EXTRA_DB = """
record(calc, "$(P)calc") {
    field(CALC, "A*2")
    field(INPA, "21")
    field(PINI, "YES")
    field(PREC, "1")
    field(EGU,  "x")
}
record(ai, "$(P)big") {
    field(INP,  "123456.789")
    field(PINI, "YES")
    field(PREC, "2")
}
record(ai, "$(P)small") {
    field(INP,  "0.000012345")
    field(PINI, "YES")
    field(PREC, "3")
}
record(ai, "$(P)zero") {
    field(INP,  "0")
    field(PINI, "YES")
    field(PREC, "3")
}
record(ai, "$(P)alarm") {
    field(INP,  "9")
    field(PINI, "YES")
    field(PREC, "1")
    field(HIHI, "8")
    field(HHSV, "MAJOR")
}
record(ao, "$(P)noprec") {
    field(DOL,  "2.5")
    field(PINI, "YES")
}
record(mbbi, "$(P)nostr") {
    field(INP,  "1")
    field(PINI, "YES")
}
record(waveform, "$(P)bigchwf") {
    field(FTVL, "CHAR")
    field(NELM, "70000")
}
record(longout, "$(P)lo") {
    field(DOL,  "5")
    field(PINI, "YES")
}
record(waveform, "$(P)emptywf") {
    field(FTVL, "DOUBLE")
    field(NELM, "10")
}
record(waveform, "$(P)emptystr") {
    field(FTVL, "STRING")
    field(NELM, "4")
}
record(ao, "$(P)cb") {
    field(PREC, "2")
    field(EGU,  "mm")
}
"""

_lock = threading.Lock()
_ioc: IOCHandle | None = None


def compat_ioc(config: pytest.Config) -> IOCHandle:
    """The compat tests' IOC, started on first use and stopped when pytest ends."""
    global _ioc
    with _lock:
        if _ioc is None:
            path = Path(tempfile.mkdtemp(prefix="compat-db-")) / "extra.db"
            # (cleanups run last-in first-out: this one after the IOC's stop below)
            config.add_cleanup(functools.partial(shutil.rmtree, path.parent, ignore_errors=True))
            path.write_text(EXTRA_DB, encoding="ascii")
            handle = EpicsIOC([(TEST_DB_PATH, None), (str(path), None)]).start()
            config.add_cleanup(handle.stop)
            _ioc = handle
        return _ioc


@pytest.fixture(name="cioc")
def cioc_fixture(request: pytest.FixtureRequest) -> IOCHandle:
    """The compat tests' IOC (see :func:`compat_ioc`)."""
    return compat_ioc(request.config)


def use_compat(ioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point compat at *ioc* through os.environ, with a fresh runtime closed afterwards."""
    for key, value in ioc.env.items():
        monkeypatch.setenv(key, value)
    compat._runtime._reset()
    try:
        yield compat
    finally:
        compat._runtime._reset()  # (closes its Context and threads before the leak check)


@pytest.fixture(name="epics")
def epics_fixture(cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """compat, pointed at the compat IOC, with a fresh runtime for the test."""
    yield from use_compat(cioc, monkeypatch)


@pytest.fixture(name="epics")
def epics_fresh_ca_fixture(cioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """As :func:`epics_fixture`, with ``compat.ca`` as before first use (no context, no channel) and reset after."""
    compat.ca._reset()
    try:
        yield from use_compat(cioc, monkeypatch)
    finally:
        compat.ca._reset()


#: The writable PVs of the shared caproto IOC; other tests expect their first values.
CAPROTO_WRITABLE = ("ao", "long", "str", "enum", "wf", "chwf", "slow")


@contextlib.contextmanager
def restored(ioc: IOCHandle, names: tuple[str, ...] = CAPROTO_WRITABLE) -> Iterator[None]:
    """Put the values of *names* back as they were once the block is done."""
    with Context(env=ioc.env, timeout=5.0) as ctx:
        saved = ctx.read_many([ioc.pv(n) for n in names])
    try:
        yield
    finally:
        with Context(env=ioc.env, timeout=5.0) as ctx:
            for name, value in zip(names, saved, strict=True):
                # (caproto's server cannot take an empty CHAR array: such a PV stays as it is)
                if not isinstance(value, Exception) and len(value.data):
                    ctx.get_pvs(ioc.pv(name))[0].write(value.data, wait=True)


@pytest.fixture(name="epics_cp")
def epics_caproto_fixture(caproto_ioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """compat, pointed at the session's caproto IOC (values restored after), with a fresh runtime."""
    with restored(caproto_ioc):
        yield from use_compat(caproto_ioc, monkeypatch)


def run_pyepics(ioc: IOCHandle, scenarios: dict[str, str], timeout: float = 300.0) -> dict[str, Any]:
    """Run every scenario through real pyepics in one child process."""
    with tempfile.TemporaryDirectory(prefix="compat-oracle-") as tmp:
        job, out = os.path.join(tmp, "in.pickle"), os.path.join(tmp, "out.pickle")
        with open(job, "wb") as fh:
            pickle.dump({"prefix": ioc.prefix, "scenarios": scenarios}, fh)
        env = ioc.env
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        proc = subprocess.run(
            [sys.executable, str(ORACLE), job, out], env=env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pyepics oracle failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        with open(out, "rb") as fh:
            results: dict[str, Any] = pickle.load(fh)
    return results


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where *a* and *b* differ, strictly (types, dtypes, NaN == NaN)."""
    if type(a) is not type(b):
        return [f"{path}: type {type(a).__name__} != {type(b).__name__} ({a!r} vs {b!r})"]
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{path}: array {a.dtype}{a.shape} != {b.dtype}{b.shape}"]
        equal = np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        return [] if equal else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, float):
        if a == b or (math.isnan(a) and math.isnan(b)):
            return []
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'first' if key in a else 'second'}")
            else:
                out.extend(differences(a[key], b[key], f"{path}.{key}"))
        return out
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)} ({a!r} vs {b!r})"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(differences(x, y, f"{path}[{i}]"))
        return out
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
