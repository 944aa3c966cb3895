"""Run the same scenario code against pyepics or compat and record what it sees.

A *scenario* is a snippet of Python that uses ``epics`` (pyepics in the
oracle process, compat in the test process), the PV prefix ``P`` and
``record(label, value)``.  :func:`execute` runs one and returns what was
recorded, printed and warned, and the exception it ended with.  Values are
turned into plain picklable data by :func:`canon`, keeping their exact
Python/numpy types so that the two sides can be compared strictly.

As a script (the pyepics side, run with the IOC's environment)::

    python compat_oracle.py IN.pickle OUT.pickle

reads ``{"prefix": P, "scenarios": {id: code}}`` and writes ``{id: result}``.
libca reads ``EPICS_CA_*`` once per process and its threads are never
stopped, which is why pyepics runs in a child process.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import pickle
import queue
import sys
import threading
import time
import types
import warnings
from typing import Any

import numpy as np


def canon(value: Any) -> Any:
    """A picklable copy of *value* that keeps the exact types of what matters."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return value
    if isinstance(value, ctypes.Array):  # (pyepics's as_numpy=False arrays: element type and items)
        return ("ctypes", type(value)._type_.__name__, len(value), list(value))
    if isinstance(value, list):
        return [canon(v) for v in value]
    if isinstance(value, tuple):
        return tuple(canon(v) for v in value)
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    if isinstance(value, types.SimpleNamespace):
        return ("namespace", canon(vars(value)))
    if isinstance(value, BaseException):
        return ("exception", type(value).__name__, str(value))
    if isinstance(value, type):
        return ("type", value.__name__)
    return ("object", type(value).__name__, repr(value))


def execute(code: str, epics: Any, prefix: str) -> dict[str, Any]:
    """Run one scenario; return its records, stdout, warnings and final exception."""
    records: list[tuple[str, Any]] = []

    def record(label: str, value: Any) -> None:
        records.append((label, canon(value)))

    def no_times(text: str) -> str:
        """*text* without the lines that show time stamps."""
        keep = [ln for ln in text.splitlines() if not any(k in ln for k in ("timestamp", "posixseconds", "nanosec"))]
        return "\n".join(keep)

    def without(mapping: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
        """A copy of *mapping* without *keys*."""
        if mapping is None:
            return None
        return {k: v for k, v in mapping.items() if k not in keys}

    def back(name: str) -> Any:
        """Read *name* again from the server, through an unmonitored PV."""
        p = epics.PV(prefix + name, auto_monitor=False)
        p.wait_for_connection()
        return p.get()

    def write(name: str, value: Any) -> Any:
        """Put *value* to *name* and wait, through an unmonitored PV (not the caget cache)."""
        p = epics.PV(prefix + name, auto_monitor=False)
        p.wait_for_connection()
        return p.put(value, wait=True)

    def settle_slow() -> None:
        """Wait until the 'slow' record's 0.5 s delay is over (its seq record is idle).

        Only reads: a put made during the delay would start it again.
        """
        busy = epics.PV(prefix + "slow:delay.PACT", auto_monitor=False)
        busy.wait_for_connection()
        deadline = time.monotonic() + 5.0
        while busy.get() and time.monotonic() < deadline:
            pass

    def monitored(name: str, **kw: Any) -> Any:
        """A PV of *name* that has seen its first monitor update."""
        got: queue.Queue[int] = queue.Queue()
        p = epics.PV(prefix + name, callback=lambda **k: got.put(1), **kw)
        got.get(timeout=5)
        p.clear_callbacks()
        return p

    env = {
        "epics": epics,
        "no_times": no_times,
        "without": without,
        "back": back,
        "write": write,
        "settle_slow": settle_slow,
        "monitored": monitored,
        "P": prefix,
        "record": record,
        "np": np,
        "queue": queue,
        "threading": threading,
        "time": time,
    }
    out = io.StringIO()
    error = None
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(code, "<scenario>", "exec"), env)
            except Exception as exc:
                error = canon(exc)
    return {
        "records": records,
        "stdout": out.getvalue(),
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught if w.category is not DeprecationWarning],
        "error": error,
        "elapsed": time.monotonic() - start,
    }


def main(argv: list[str]) -> int:
    with open(argv[1], "rb") as fh:
        job = pickle.load(fh)
    import epics  # pyepics

    results = {}
    for key, code in job["scenarios"].items():
        results[key] = execute(code, epics, job["prefix"])
        for name in list(epics._PVmonitors_):
            epics.camonitor_clear(name)
        epics.pv.clear_pvcache()
    with open(argv[2], "wb") as fh:
        pickle.dump(results, fh)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
