"""Run ophyd/bluesky scenarios in a child process, on compat or on real pyepics.

::

    python ophyd_child.py LAYER IN.pickle OUT.pickle

*LAYER* is ``compat`` (``compat.install()`` first, so that ophyd's
``import epics`` gives compat) or ``pyepics`` (the real one, loading libca).
``IN`` holds ``{"prefix": P, "motor": M, "scenarios": {id: code}}``; each
scenario is Python that uses ``ophyd``, ``bluesky``, ``P``/``M`` (the PV
prefixes of the C IOC and of the fake motor IOC) and ``record(label,
value)``.  ``OUT`` gets ``{id: {"records": [...], "error": ...}}`` plus
``"_layer"``: what ``epics`` was and whether libca was loaded.

ophyd is set to its pyepics control layer (``OPHYD_CONTROL_LAYER``) before
it is imported.  Scenarios run one after the other in one process, as a
session would.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
import traceback
from typing import Any

from compat_oracle import canon


def _libca_loaded() -> bool:
    try:
        with open(f"/proc/{os.getpid()}/maps", encoding="ascii", errors="replace") as fh:
            return any("libca." in line for line in fh)
    except OSError:
        return False


def main() -> None:
    layer, job, out = sys.argv[1:4]
    if layer == "compat":
        import compat

        compat.install()
    os.environ["OPHYD_CONTROL_LAYER"] = "pyepics"
    import bluesky
    import bluesky.plan_stubs as bps
    import bluesky.plans as bp
    import epics
    import numpy as np
    import ophyd
    from bluesky import RunEngine

    with open(job, "rb") as fh:
        spec = pickle.load(fh)
    results: dict[str, Any] = {}
    for sid, code in spec["scenarios"].items():
        records: list[tuple[str, Any]] = []

        def record(label: str, value: Any, _records: list[tuple[str, Any]] = records) -> None:
            _records.append((label, canon(value)))

        env = {
            "ophyd": ophyd,
            "bluesky": bluesky,
            "bp": bp,
            "bps": bps,
            "RunEngine": RunEngine,
            "np": np,
            "epics": epics,
            "P": spec["prefix"],
            "M": spec["motor"],
            "record": record,
            "threading": threading,
            "time": time,
        }
        error = None
        try:
            exec(compile(code, f"<scenario {sid}>", "exec"), env)
        except BaseException as exc:  # (recorded and compared, like a value)
            error = (type(exc).__name__, str(exc), traceback.format_exc())
        results[sid] = {"records": records, "error": error}
    results["_layer"] = {"epics": epics.__name__, "libca": _libca_loaded(), "cl": ophyd.get_cl().name}
    with open(out, "wb") as fh:
        pickle.dump(results, fh)
    sys.stdout.flush()
    os._exit(0)  # (pyepics's libca threads can hold up a normal exit)


if __name__ == "__main__":
    main()
