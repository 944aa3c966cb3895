"""Targets run in child processes by ``test_compat_processes`` (importable under spawn and forkserver).

Every target takes the IOC's environment and applies it before any CA use:
a forkserver child inherits the environment of the fork server, not of
the test, and the loopback-only rule must hold in every process.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: Seconds each read_write call waits at its end.
HOLD = 0.3


def _use(env: dict[str, str]) -> Any:
    os.environ.update(env)
    import compat

    return compat


def read_write(env: dict[str, str], prefix: str, i: int) -> tuple[int, Any, Any, Any, int]:
    """Read ``ai``, write *i* to ``cb`` and read it back (PV and caget); returns what was seen."""
    epics = _use(env)
    ai = epics.caget(prefix + "ai", timeout=10, connection_timeout=10)
    put = epics.caput(prefix + "cb", float(i), wait=True, connection_timeout=10)
    back = epics.PV(prefix + "cb", auto_monitor=False)
    back.wait_for_connection(timeout=10)
    chid = epics.ca.create_channel(prefix + "longin", connect=True)
    longin = epics.ca.get(chid)
    time.sleep(HOLD)  # (long enough for the parent's 10 Hz monitor to deliver meanwhile)
    return (os.getpid(), ai, put, (back.get(timeout=10), longin), i)


def pool_init(env: dict[str, str]) -> None:
    """Pool initializer: the IOC's environment for every worker."""
    _use(env)


def read_many(prefix: str, names: list[str]) -> tuple[int, int]:
    """caget every name (the environment set by :func:`pool_init`); (pid, number of good values)."""
    import compat as epics

    values = epics.caget_many([prefix + n for n in names], connection_timeout=10)
    return os.getpid(), sum(v is not None for v in values)


def to_queue(env: dict[str, str], prefix: str, i: int, out: Any) -> None:
    """:func:`read_write`, result (or the error) put on *out*."""
    try:
        out.put(read_write(env, prefix, i))
    except BaseException as exc:  # reported to the parent
        out.put(("error", repr(exc)))
