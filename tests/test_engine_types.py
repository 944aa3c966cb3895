"""Every native type x every DBR family, checked against libca (through pyepics).

The same PV is read through caclient and through pyepics's ``ca.get_with_metadata``
from the EPICS C IOC; values and metadata must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from caclient import ChannelType, Context
from caclient.testing import EpicsIOC, IOCHandle

RECORDS = {
    "ai": ChannelType.DOUBLE,
    "str": ChannelType.STRING,
    "mbbi": ChannelType.ENUM,
    "ucharwf": ChannelType.CHAR,
    "shortwf": ChannelType.INT,
    "longin": ChannelType.LONG,
    "floatwf": ChannelType.FLOAT,
}
FAMILIES = ["native", "status", "time", "graphic", "control"]


@pytest.fixture(scope="module")
def epics_ioc() -> Iterator[IOCHandle]:
    """A C IOC of this module's own: values written by other tests cannot race the oracle."""
    with EpicsIOC() as ioc:
        yield ioc


@pytest.fixture(scope="module")
def ectx(epics_ioc: IOCHandle) -> Iterator[Context]:
    with Context(env=epics_ioc.env, timeout=10.0) as c:
        pvs = c.get_pvs(*(epics_ioc.pv(r) for r in RECORDS))
        for pv, native in zip(pvs, RECORDS.values(), strict=True):
            pv.wait_for_connection()
            if native in (ChannelType.CHAR, ChannelType.INT, ChannelType.FLOAT):
                pv.write(np.arange(1, 6), wait=True)
        yield c


_ORACLE = r"""
import json, sys
from epics import ca
out = {}
ca.initialize_libca()
for name in sys.argv[1:]:
    chid = ca.create_channel(name, connect=True)
    native = ca.field_type(chid)
    for fam, off in (("native", 0), ("time", 14), ("control", 28)):  # what pyepics decodes
        r = ca.get_with_metadata(chid, ftype=native + off, as_numpy=False, timeout=10)
        value = r.pop("value")
        if isinstance(value, str) or not hasattr(value, "__len__"):
            value = [value]
        value = [v.decode() if isinstance(v, bytes) else v for v in value]
        md = {k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()
              if isinstance(v, (int, float, str, tuple, list))}
        out[name + "|" + fam] = {"type": native + off, "data": list(value), "md": md}
print(json.dumps(out, default=list))
ca.finalize_libca()
"""


@pytest.fixture(scope="module")
def oracle(ectx: Context, epics_ioc: IOCHandle) -> dict[str, Any]:
    """What pyepics (libca) reads, in a child process so its libca stays out of ours."""
    names = [epics_ioc.pv(r) for r in RECORDS]
    proc = subprocess.run(
        [sys.executable, "-c", _ORACLE, *names],
        env=epics_ioc.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("record", list(RECORDS))
def test_type_matrix_agrees_with_libca(
    ectx: Context, epics_ioc: IOCHandle, oracle: dict[str, Any], record: str, family: str
) -> None:
    (pv,) = ectx.get_pvs(epics_ioc.pv(record))
    native = RECORDS[record]
    assert pv.native_data_type == native
    ours = pv.read(data_type=family)
    assert int(ours.data_type) == {"native": 0, "status": 7, "time": 14, "graphic": 21, "control": 28}[family] + native
    # pyepics decodes only the native, time and control families; the status
    # and graphic ones carry a subset of what time and control carry.
    theirs = oracle[pv.name + "|" + {"status": "time", "graphic": "control"}.get(family, family)]
    tdata = theirs["data"]
    if native == ChannelType.STRING:
        assert ours.data == tdata
    else:
        np.testing.assert_array_equal(ours.data, np.asarray(tdata)[: len(ours.data)])
        assert ours.data.dtype.isnative
    if family == "native":
        return
    md, tmd = ours.metadata, theirs["md"]
    assert md.status == tmd["status"] and md.severity == tmd["severity"]
    if family == "time":
        assert theirs["type"] == int(ours.data_type)
        # pyepics truncates the time stamp to whole microseconds; ours keeps the
        # nanoseconds, so they differ by up to 1 µs (plus float rounding).
        assert md.timestamp == pytest.approx(tmd["timestamp"], abs=1.5e-6)
        assert md.timestamp >= tmd["timestamp"] - 1e-7
    if family in ("graphic", "control") and native != ChannelType.STRING:
        if native == ChannelType.ENUM:
            assert md.enum_strings == tuple(tmd["enum_strs"])
            assert md.enum_strings[:3] == ("zero", "one", "two")
        else:
            assert md.units == tmd["units"]
            names = [
                "upper_disp_limit",
                "lower_disp_limit",
                "upper_alarm_limit",
                "upper_warning_limit",
                "lower_warning_limit",
                "lower_alarm_limit",
            ]
            if family == "control":
                names += ["upper_ctrl_limit", "lower_ctrl_limit"]
            for name in names:
                assert getattr(md, name) == pytest.approx(tmd[name], nan_ok=True), name
            if native in (ChannelType.DOUBLE, ChannelType.FLOAT):
                assert md.precision == tmd["precision"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (20, 20),
        (ChannelType.TIME_DOUBLE, 20),
        (np.int32(34), 34),
        (True, 1),
        ("time", 20),
        ("control", 34),
        (None, 6),
    ],
)
def test_data_type_forms(given: Any, expected: int) -> None:
    """Every form a caller may pass resolves to the same wire type (6 = native DOUBLE here)."""
    from caclient._requests import resolve_type

    assert resolve_type(given, 6)[0] == expected
    assert type(resolve_type(given, 6)[0]) is int


@pytest.mark.parametrize("given", [39, -1, 7.5, "tiem", object()])
def test_unknown_data_type_is_refused(given: Any) -> None:
    from caclient._requests import resolve_type

    with pytest.raises(ValueError, match="data_type"):
        resolve_type(given, 6)
