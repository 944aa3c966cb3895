"""Helpers of the compat.aioca tests: their IOC, the aioca oracle, and running scenarios through compat.aioca.

The aioca tests use an EPICS C IOC of their own (the test database plus the
compat tests' extra records), started on first use and stopped at the end of
the session, so that their writes never meet other tests' expectations.
Real aioca loads libca, so it runs only in child processes
(``aioca_oracle.py``).
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from compat_support import EXTRA_DB

from caclient.testing import TEST_DB_PATH, EpicsIOC, IOCHandle

HERE = Path(__file__).resolve().parent
ORACLE = HERE / "aioca_oracle.py"

_lock = threading.Lock()
_ioc: IOCHandle | None = None


def aioca_ioc(config: pytest.Config) -> IOCHandle:
    """The aioca tests' IOC, started on first use and stopped when pytest ends."""
    global _ioc
    with _lock:
        if _ioc is None:
            path = Path(tempfile.mkdtemp(prefix="aioca-db-")) / "extra.db"
            # (cleanups run last-in first-out: this one after the IOC's stop below)
            config.add_cleanup(functools.partial(shutil.rmtree, path.parent, ignore_errors=True))
            path.write_text(EXTRA_DB, encoding="ascii")
            handle = EpicsIOC([(TEST_DB_PATH, None), (str(path), None)]).start()
            config.add_cleanup(handle.stop)
            _ioc = handle
        return _ioc


def run_aioca(ioc: IOCHandle | None, scenarios: dict[str, str], timeout: float = 300.0) -> dict[str, Any]:
    """Run every scenario through real aioca in one child process.

    With an *ioc*, against it (with its environment); with None, against an
    EPICS C IOC the child starts itself, which the scenarios may stop and
    start again (``stop_ioc()``, ``start_ioc()``).
    """
    results = _run_oracle(ioc, scenarios, timeout)
    if ioc is not None:
        # On a loaded machine real aioca's 5 s default timeout can expire on a
        # scenario that does not time out otherwise (seen once in a full run
        # beside other test sessions): run those once more, alone.
        again = {name: scenarios[name] for name, result in results.items() if _timed_out(result)}
        if again:
            results.update(_run_oracle(ioc, again, timeout))
    return results


#: libca's status for a timed-out request (aioca's ``CANothing.errorcode``).
ECA_TIMEOUT = 80


def _timed_out(result: dict[str, Any]) -> bool:
    error = result.get("error")
    return isinstance(error, tuple) and error[:1] == ("CANothing",) and error[3] == ECA_TIMEOUT


def _run_oracle(ioc: IOCHandle | None, scenarios: dict[str, str], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aioca-oracle-") as tmp:
        job, out = os.path.join(tmp, "in.pickle"), os.path.join(tmp, "out.pickle")
        with open(job, "wb") as fh:
            pickle.dump({"prefix": ioc.prefix if ioc else "", "scenarios": scenarios, "own_ioc": ioc is None}, fh)
        env = ioc.env if ioc else dict(os.environ)
        path = (str(HERE), str(HERE.parent), env.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        proc = subprocess.run(
            [sys.executable, str(ORACLE), job, out], env=env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"aioca oracle failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        with open(out, "rb") as fh:
            results: dict[str, Any] = pickle.load(fh)
    return results


def point_at(ioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make engines created from now on (compat.aioca makes one per event loop) talk to *ioc*."""
    for key, value in ioc.env.items():
        monkeypatch.setenv(key, value)
