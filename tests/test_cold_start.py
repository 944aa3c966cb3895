"""Cold start: importing caclient or compat, and a scalar read or write, need neither numpy nor caproto.

A one-shot ``caget`` process pays for every import, and numpy alone costs
about as much as the rest of such a process (caproto nearly as much).  The
import checks run in a fresh child interpreter, so that what this test
process has already imported cannot hide a regression.  The codec checks
compare the numpy-free scalar paths with the numpy paths they stand in for.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caclient import ReadResponse, _dbr

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "caproto")


def _child_modules(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run *code* in a fresh interpreter; it prints a JSON object as its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


_REPORT = f"import json, sys; print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"


@pytest.mark.parametrize("module", ["caclient", "compat", "compat.ca", "compat.pv", "compat.dbr"])
def test_import_loads_neither_numpy_nor_caproto(module: str) -> None:
    loaded = _child_modules(f"import {module}\n{_REPORT}")
    assert loaded == dict.fromkeys(HEAVY, False), f"import {module} loaded {loaded}"


@pytest.mark.timeout(60)
def test_scalar_caget_and_caput_load_neither(epics_ioc: Any) -> None:
    """A one-shot session - scalar cagets and a caput with wait - in a fresh process."""
    code = (
        "import compat as epics\n"
        f"assert epics.caget({epics_ioc.pv('ai')!r}, timeout=10) is not None\n"
        f"v = epics.caget({epics_ioc.pv('ao')!r}, timeout=10)\n"  # (writes back what it holds)
        f"assert epics.caput({epics_ioc.pv('ao')!r}, v, wait=True, timeout=10) == 1\n"
        f"assert epics.caget({epics_ioc.pv('ao')!r}, timeout=10, use_monitor=False) == v\n"
        f"assert isinstance(epics.caget({epics_ioc.pv('longin')!r}, timeout=10), int)\n"
        f"{_REPORT}"
    )
    env = dict(epics_ioc.env, PYTHONPATH=str(ROOT))
    loaded = _child_modules(code, env)
    assert loaded == dict.fromkeys(HEAVY, False), loaded


def test_numpy_comes_when_an_array_needs_it() -> None:
    code = (
        "import struct, sys\n"
        "from caclient import ReadResponse\n"
        "r = ReadResponse(6, 3, 1, struct.pack('>3d', 1, 2, 3), 'latin-1')\n"
        "assert r.tolist() == [1.0, 2.0, 3.0] and 'numpy' not in sys.modules\n"
        "assert r.data.tolist() == [1.0, 2.0, 3.0]\n"
        f"{_REPORT}"
    )
    assert _child_modules(code)["numpy"] is True


# A finder that holds numpy's import half-way (its module already in
# sys.modules, its __init__ not run) until the test opens the gate.
_HALF_IMPORTED_NUMPY = """
import importlib.util, json, sys, threading
inside, gate = threading.Event(), threading.Event()

class HoldNumpy:
    def find_spec(self, name, path=None, target=None):
        if name != "numpy":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("numpy")
        run = spec.loader.exec_module
        def exec_module(module):
            inside.set()
            gate.wait(30)
            run(module)
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, HoldNumpy())
import struct
from caclient import ReadResponse
from compat import _convert
importer = threading.Thread(target=__import__, args=("numpy",))
importer.start()
assert inside.wait(30)
seen = {}
def use(key, call):
    try:
        seen[key] = repr(call())
    except Exception as exc:
        seen[key] = "failed: %r" % exc
users = [
    threading.Thread(target=use, args=("data", lambda: ReadResponse(6, 1, 1, struct.pack(">d", 2.5), "latin-1").data)),
    threading.Thread(target=use, args=("is_ndarray", lambda: _convert.is_ndarray(1.0))),
]
for t in users:
    t.start()
for t in users:
    t.join(0.5)  # (they cannot finish before the gate opens; this only gives them time to run)
gate.set()
for t in [importer, *users]:
    t.join(30)
print(json.dumps(seen))
"""


def test_a_thread_never_sees_a_half_imported_numpy() -> None:
    """The first scalar ``.data`` in one thread while another thread is importing numpy.

    numpy is in ``sys.modules`` from the start of its import; a thread that took
    it from there got a module without ``array`` (8 threads reading their first
    values at once failed this way).  Now such a thread waits for the import.
    """
    seen = _child_modules(_HALF_IMPORTED_NUMPY)
    assert seen == {"data": "array([2.5])", "is_ndarray": "False"}


# ---------------------------------------------------------------- decode: tolist() == data.tolist()
_NUMERIC_TYPES = [off + f for off in (0, 7, 14, 21, 28) for f in (1, 2, 3, 4, 5, 6)] + [35, 36]


@settings(max_examples=300, deadline=None)
@given(t=st.sampled_from(_NUMERIC_TYPES + [0, 7, 14]), count=st.integers(0, 6), payload=st.binary(max_size=400))
def test_tolist_equals_data_tolist(t: int, count: int, payload: bytes) -> None:
    fresh = ReadResponse(t, count, 1, payload, "latin-1")
    try:
        expected = ReadResponse(t, count, 1, payload, "latin-1").data
    except _dbr.ProtocolError:
        with pytest.raises(_dbr.ProtocolError):
            fresh.tolist()
        return
    expected_list = list(expected) if isinstance(expected, list) else expected.tolist()
    got = fresh.tolist()
    assert [type(v) for v in got] == [type(v) for v in expected_list]
    assert got == expected_list or all(
        (a == b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
        for a, b in zip(got, expected_list, strict=True)
    )
    assert fresh.tolist() == got or any(isinstance(v, float) and math.isnan(v) for v in got)


def test_tolist_of_a_large_payload_decoded_in_place() -> None:
    values = np.arange(10_000, dtype=">f8")
    buf = np.empty(values.nbytes, dtype=np.uint8).data
    buf[:] = values.tobytes()
    resp = ReadResponse(6, values.size, 1, buf, "latin-1")
    assert resp.tolist() == values.tolist()  # (decodes in place first, then lists)
    assert resp.data.tolist() == values.tolist()
    assert resp.tolist() == values.tolist()


# ---------------------------------------------------------------- encode: the struct path == the numpy path
def _encode_or_error(field: int, data: Any) -> bytes | memoryview | type[BaseException]:
    try:
        return _dbr.encode_values(field, data, "latin-1")[0]
    except (TypeError, ValueError) as exc:
        return type(exc)


_EDGES = [
    0,
    1,
    -1,
    True,
    False,
    127,
    128,
    255,
    256,
    -128,
    -129,
    32767,
    32768,
    -32768,
    -32769,
    65535,
    65536,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**53,
    2**53 + 1,
    2**63 - 1,
    0.0,
    -0.0,
    0.5,
    -0.5,
    1.5,
    -1.5,
    255.9,
    -128.9,
    32767.5,
    3.4028234663852886e38,
    3.5e38,
    -3.5e38,
    1e300,
    math.inf,
    -math.inf,
    math.nan,
    0.1,
    1 / 3,
]


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("value", _EDGES, ids=repr)
def test_scalar_encoding_matches_numpy_path(field: int, value: Any) -> None:
    ours = _encode_or_error(field, value)
    theirs = _encode_or_error(field, np.asarray(value))  # a 0-d array always takes the numpy path
    assert ours == theirs
    assert _encode_or_error(field, [value]) == theirs


@settings(max_examples=500, deadline=None)
@given(
    field=st.integers(1, 6),
    value=st.integers(-(2**40), 2**40) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans(),
)
def test_scalar_encoding_matches_numpy_path_fuzz(field: int, value: Any) -> None:
    ours = _encode_or_error(field, value)
    theirs = _encode_or_error(field, np.asarray(value))
    if isinstance(ours, bytes) and isinstance(theirs, bytes) and field in (2, 6):
        # NaN payload bits may differ; compare as numbers
        fmt = ">f" if field == 2 else ">d"
        (a,), (b,) = struct.unpack(fmt, ours), struct.unpack(fmt, theirs)
        assert a == b or (math.isnan(a) and math.isnan(b))
    else:
        assert ours == theirs


def test_string_writes_need_no_numpy() -> None:
    code = (
        "from caclient import _dbr\n"
        "assert _dbr.encode_values(0, 'abc', 'latin-1') == (b'abc'.ljust(40, b'\\0'), 1)\n"
        "assert _dbr.encode_values(6, 2.5, 'latin-1') == (b'@\\x04' + bytes(6), 1)\n"
        "assert _dbr.encode_values(5, [7], 'latin-1') == (b'\\0\\0\\0\\x07', 1)\n"
        "assert _dbr.encode_values(6, '1.5', 'latin-1')[1] == 1\n"
        "assert _dbr.encode_values(0, ['a', b'b'], 'latin-1') == (b'a'.ljust(40, b'\\0') + b'b'.ljust(40, b'\\0'), 2)\n"
        f"{_REPORT}"
    )
    assert _child_modules(code, dict(os.environ))["numpy"] is False


@pytest.mark.timeout(60)
def test_command_line_tools_on_scalars_load_neither(epics_ioc: Any) -> None:
    """caget, caput (plain, -S and enum) and cainfo of scalars in one fresh process print base's
    lines without numpy or caproto: a one-shot command pays for neither import."""
    names = {k: epics_ioc.pv(k) for k in ("ai", "ao", "longin", "mbbo", "stringin")}
    code = (
        "import sys\n"
        "from caclient.cli import caget, caput, cainfo\n"
        f"names = {names!r}\n"
        "rcs = [caget.main(['-w', '10', names['ai'], names['longin'], names['stringin']]),\n"
        "       caget.main(['-w', '10', '-d', 'DBR_CTRL_DOUBLE', names['ai']]),\n"
        "       caput.main(['-w', '10', names['ao'], '2.5']),\n"
        "       caput.main(['-w', '10', '-t', names['mbbo'], '1']),\n"
        "       cainfo.main(['-w', '10', names['ao']])]\n"
        "sys.stdout.flush()\n"
        "assert rcs == [0] * 5, rcs\n"
        f"{_REPORT}"
    )
    env = dict(epics_ioc.env, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = proc.stdout.strip().splitlines()
    assert f"New : {names['ao']:<30} 2.5" in printed, printed
    assert json.loads(printed[-1]) == dict.fromkeys(HEAVY, False), printed
