"""A dead IOC does not look alive: pyepics's answers once a PV's server has gone.

The scenario kills its own IOC (each side gets one: pyepics in the oracle
child, compat in this process), waits for the disconnection through a
connection callback, then reads: ``PV.get()``, ``get_with_metadata()`` and
``caget`` return None (the last value is not handed out as if fresh) and
``caget`` prints ``cannot connect to NAME``, as pyepics does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from compat_oracle import execute
from compat_support import differences, run_pyepics, use_compat

from caclient.testing import EpicsIOC, IOCHandle

SCENARIO = """
import os, signal, time
conn_q = queue.Queue()
p = epics.PV(P + 'ao', connection_callback=lambda pvname=None, conn=None, **kw: conn_q.put(conn))
record('first', conn_q.get(timeout=10))
record('put', p.put(2.5, wait=True))
record('value', p.get(use_monitor=False))  # (pyepics's monitored get() may still hold the old value here)
record('caget', epics.caget(P + 'ao'))
os.kill(IOC_PID, signal.SIGKILL)
record('lost', conn_q.get(timeout=30))
# pyepics runs the connection callback before its PV stops saying it is
# connected (and get() may still hand out the cached value meanwhile): read
# once the PV itself says it is disconnected, on both sides.
settle = time.monotonic() + 10
while p.connected and time.monotonic() < settle:
    time.sleep(0.01)
record('connected', p.connected)
record('get', p.get(timeout=0.5))
record('get_with_metadata', p.get_with_metadata(timeout=0.5))
record('caget after', epics.caget(P + 'ao', timeout=0.5, connection_timeout=0.5))
record('caput after', epics.caput(P + 'ao', 1.0, connection_timeout=0.5))
record('repr', repr(p))
"""


@pytest.fixture
def doomed_iocs() -> Iterator[tuple[IOCHandle, IOCHandle]]:
    """Two IOCs, one for each side, each killed by its scenario."""
    with EpicsIOC() as theirs, EpicsIOC() as ours:
        yield theirs, ours


def _normalise(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = dict(result)
    out.pop("elapsed", None)
    out["stdout"] = result["stdout"].replace(prefix, "P:")
    out["records"] = [(k, v.replace(prefix, "P:") if isinstance(v, str) else v) for k, v in result["records"]]
    return out


@pytest.mark.timeout(120)
def test_dead_ioc_reads_none_as_pyepics(
    doomed_iocs: tuple[IOCHandle, IOCHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs_ioc, our_ioc = doomed_iocs
    theirs = run_pyepics(theirs_ioc, {"dead": SCENARIO.replace("IOC_PID", str(theirs_ioc.pid))})["dead"]
    code = SCENARIO.replace("IOC_PID", str(our_ioc.pid))
    for epics in use_compat(our_ioc, monkeypatch):
        ours = execute(code, epics, our_ioc.prefix)
    theirs, ours = _normalise(theirs, theirs_ioc.prefix), _normalise(ours, our_ioc.prefix)
    assert ours["error"] is None, ours
    rec = dict(ours["records"])
    assert rec["value"] == 2.5 and rec["lost"] is False
    assert rec["get"] is None and rec["get_with_metadata"] is None and rec["caget after"] is None
    assert re.search(r"cannot connect to P:ao", ours["stdout"])
    diff = differences(theirs, ours, "pyepics vs compat")
    assert not diff, "\n".join(diff)
