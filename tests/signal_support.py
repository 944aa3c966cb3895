"""Signals that miss a blocking wait: a child-side helper and the parent's runner.

Python runs a signal's handler only when the main thread next runs bytecode, so a
signal that lands just before the main thread blocks (in ``select()``, on a lock)
leaves it blocked.  The tests here make that happen every time: a helper thread in
the child process takes the signal itself (``pthread_kill``) once the main thread
sleeps in the kernel, so the main thread's wait is not interrupted, and only what
the code under test does about it (a wake-up fd, a bounded wait) can end it.

The child imports this module (:func:`run_child` puts ``tests/`` on its path), so it
imports only the standard library.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Whether this kernel says where a thread sleeps (Linux's /proc/<pid>/task/<tid>/wchan).
HAS_WCHAN = Path(f"/proc/self/task/{threading.get_native_id()}/wchan").exists()


def signal_when_main_sleeps(
    sig: signal.Signals, wchan_prefix: str, first: Callable[[], bool] | None = None, timeout: float = 10.0
) -> threading.Thread:
    """(In the child) Start a thread that sends *sig* to itself once the main thread sleeps.

    Parameters
    ----------
    sig : signal.Signals
        The signal, taken by the helper thread, never by the main thread.
    wchan_prefix : str
        How the main thread's ``wchan`` starts while it sleeps in the wait under
        test: ``"poll_schedule_timeout"`` for ``select()``, ``"futex"`` for a lock.
    first : callable, optional
        Called first; a false result (it timed out) is reported on stderr.
    timeout : float
        Seconds to wait for the main thread to sleep; then the failure is reported
        on stderr and the signal is sent anyway.
    """
    main = threading.main_thread().native_id

    def _run() -> None:
        if first is not None and not first():
            sys.stderr.write("the helper's first step timed out\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(f"/proc/self/task/{main}/wchan") as f:
                if f.read().startswith(wchan_prefix):
                    break
            time.sleep(0.01)  # (polling another thread's kernel state: there is no event to wait on)
        else:
            sys.stderr.write(f"the main thread never slept in {wchan_prefix}\n")
        signal.pthread_kill(threading.get_ident(), sig)

    thread = threading.Thread(target=_run, name="signal-when-main-sleeps", daemon=True)
    thread.start()
    return thread


def run_child(code: str, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -c code args`` with the repository and ``tests/`` importable; kill it after *timeout*.

    Raises :class:`subprocess.TimeoutExpired` (after killing the child) when it
    does not end in time.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(TESTS), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
