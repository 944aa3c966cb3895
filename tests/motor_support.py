"""The record IOC of the Motor and devices tests: simulated motor records, caproto's fake motor, device fields.

One caproto server (:mod:`caclient.testing._record_ioc`) per test session,
started on first use: motors ``m1`` .. ``m9`` (the simulation in
:class:`caclient.testing._record_ioc.SimMotor`), caproto's fake motors
``mtr1`` .. ``mtr3``, and the fields of :data:`DEVICE_FIELDS` (the device
classes' records, which no test server has).
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compat_support import use_compat

from caclient.testing import CaprotoIOC, IOCHandle

MOTORS = [f"m{i}" for i in range(1, 10)]

_lock = threading.Lock()
_ioc: IOCHandle | None = None


def device_fields() -> dict[str, Any]:
    """The PVs (name -> initial value) the device tests use, beyond the motors."""
    from device_fields import FIELDS

    return FIELDS


def record_ioc(config: pytest.Config) -> IOCHandle:
    """The record IOC, started on first use and stopped when pytest ends."""
    global _ioc
    with _lock:
        if _ioc is None:
            path = Path(tempfile.mkdtemp(prefix="record-ioc-")) / "fields.json"
            # (cleanups run last-in first-out: this one after the IOC's stop below)
            config.add_cleanup(functools.partial(shutil.rmtree, path.parent, ignore_errors=True))
            path.write_text(json.dumps(device_fields()), encoding="utf-8")
            args = ["--fake-motor", "--fields", str(path)]
            for name in MOTORS:
                args += ["--motor", name]
            handle = CaprotoIOC(module="caclient.testing._record_ioc", extra_args=args).start()
            config.add_cleanup(handle.stop)
            _ioc = handle
        return _ioc


@pytest.fixture(name="rioc")
def rioc_fixture(request: pytest.FixtureRequest) -> IOCHandle:
    """The record IOC (see :func:`record_ioc`)."""
    return record_ioc(request.config)


@pytest.fixture(name="repics")
def repics_fixture(rioc: IOCHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """compat pointed at the record IOC, with a fresh runtime for the test."""
    yield from use_compat(rioc, monkeypatch)


#: Scenario prologue: motor ``NAME`` back at 0 in Use mode, offset 0, default limits.
RESET = """
def reset(name):
    m = epics.Motor(P + name)
    m.put('SET', 0, wait=True)
    m.put('OFF', 0, wait=True)
    m.put('DHLM', 100, wait=True)
    m.put('DLLM', -100, wait=True)
    m.put('TWV', 1.0, wait=True)
    m.move(0, wait=True)
    return m
"""
