"""Run the same asyncio scenario against real aioca or compat.aioca and record what it sees.

A *scenario* is the body of a coroutine that uses ``aioca`` (real aioca in
the oracle process, :mod:`compat.aioca` in the test process), the PV prefix
``P``, ``record(label, value)`` and ``asyncio``/``np``.  :func:`execute`
runs one in a fresh event loop (``asyncio.run``), purges the channel caches
afterwards, and returns what was recorded, printed (stdout and stderr) and
warned, and the exception it ended with.  Values become picklable data by
:func:`canon`, which keeps exact Python/numpy types, the augmented
attributes of aioca values and the contents of ``CANothing``.

As a script (the aioca side, run with the IOC's environment)::

    python aioca_oracle.py IN.pickle OUT.pickle

reads ``{"prefix": P, "scenarios": {id: code}}`` and writes ``{id: result}``.
aioca loads libca, which reads ``EPICS_CA_*`` once per process: that is why
it runs in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import pickle
import sys
import textwrap
import time
import types
import warnings
from typing import Any

import numpy as np


def canon(value: Any) -> Any:
    """A picklable copy of *value* keeping exact types, augmented attributes and CANothing contents."""
    if type(value).__name__ == "CANothing":
        return ("CANothing", value.name, value.ok, value.errorcode, str(value), repr(value), bool(value))
    if type(value).__name__ in ("ca_float", "ca_int", "ca_str", "ca_bytes", "ca_array"):
        plain: Any = np.asarray(value) if isinstance(value, np.ndarray) else type(value).__mro__[1](value)
        attrs = {k: canon(v) for k, v in sorted(vars(value).items())}
        if "timestamp" in attrs:
            attrs["datetime"] = canon(value.datetime)
        return ("augmented", type(value).__name__, canon(plain), attrs)
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return value
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
    if type(value).__name__ == "datetime":
        return ("datetime", value.isoformat())
    return ("object", type(value).__name__, repr(value))


_TIMES = ("timestamp", "raw_stamp", "datetime")


def _without_times(kept: Any) -> Any:
    if isinstance(kept, tuple) and len(kept) == 4 and kept[0] == "augmented":
        return (*kept[:3], {k: v for k, v in kept[3].items() if k not in _TIMES})
    if isinstance(kept, list):
        return [_without_times(v) for v in kept]
    if isinstance(kept, tuple) and not (kept and kept[0] in ("CANothing", "exception")):
        return tuple(_without_times(v) for v in kept)
    return kept


def execute(code: str, aioca: Any, prefix: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one scenario in a fresh event loop; return its records, output, warnings and final exception.

    *extra* adds names (helpers such as ``stop_ioc``) to the scenario's namespace.
    """
    records: list[tuple[str, Any]] = []

    def record(label: str, value: Any, times: bool = True) -> None:
        """Keep *value* under *label*; ``times=False`` leaves out its time stamp (for written records)."""
        kept = canon(value)
        if not times:
            kept = _without_times(kept)
        records.append((label, kept))

    env: dict[str, Any] = {"aioca": aioca, "P": prefix, "record": record, "np": np, "asyncio": asyncio, "time": time}
    env.update(extra or {})
    source = "async def __scenario__():\n" + textwrap.indent(code.strip("\n") or "pass", "    ") + "\n"
    exec(compile(source, "<scenario>", "exec"), env)

    async def main() -> None:
        try:
            await env["__scenario__"]()
        finally:
            aioca.purge_channel_caches()

    out, err = io.StringIO(), io.StringIO()
    error = None
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                asyncio.run(main())
            except Exception as exc:
                error = canon(exc)
    return {
        "records": records,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught if w.category is not ResourceWarning],
        "error": error,
        "elapsed": time.monotonic() - start,
    }


def restart_helpers(ioc: Any) -> dict[str, Any]:
    """``stop_ioc()`` and ``start_ioc()`` coroutines for a scenario: stop *ioc*, start it again on its port."""
    port = ioc.port

    async def stop_ioc() -> None:
        await asyncio.get_running_loop().run_in_executor(None, ioc.stop)

    async def start_ioc() -> None:
        await asyncio.get_running_loop().run_in_executor(None, lambda: ioc.start(port=port))

    return {"stop_ioc": stop_ioc, "start_ioc": start_ioc}


def with_own_ioc(job: dict[str, Any]) -> dict[str, Any]:
    """Run *job*'s scenarios in aioca against an EPICS C IOC of this process (which they may restart)."""
    import os

    from caclient.testing import EpicsIOC

    with EpicsIOC() as ioc:
        os.environ.update(ioc.env)  # (before libca's context exists: it reads them once)
        import aioca

        return {key: execute(code, aioca, ioc.prefix, restart_helpers(ioc)) for key, code in job["scenarios"].items()}


def main(argv: list[str]) -> int:
    with open(argv[1], "rb") as fh:
        job = pickle.load(fh)
    if job.get("own_ioc"):
        results = with_own_ioc(job)
    else:
        import aioca

        results = {key: execute(code, aioca, job["prefix"]) for key, code in job["scenarios"].items()}
    with open(argv[2], "wb") as fh:
        pickle.dump(results, fh)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
