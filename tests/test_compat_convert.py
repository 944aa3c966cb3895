"""Unit tests of compat's pure parts: value conversions, dbr, utils, ca helpers."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat import _convert, ca, dbr, utils
from compat.pv import fmt_time


def test_promote_and_type_names() -> None:
    assert _convert.promote(dbr.DOUBLE, "time") == dbr.TIME_DOUBLE
    assert _convert.promote(dbr.DOUBLE, "ctrl") == dbr.CTRL_DOUBLE
    assert _convert.promote(dbr.STRING, "ctrl") == dbr.TIME_STRING  # no CTRL_STRING on the wire
    assert _convert.promote(dbr.ENUM, "native") == dbr.ENUM
    assert _convert.promote(dbr.ENUM, "anything") == dbr.ENUM
    assert _convert.type_name(20) == "time_double"
    assert _convert.type_name(None) == "unknown"


def test_unpack_shapes() -> None:
    one = np.array([2.5])
    assert _convert.unpack(one, dbr.DOUBLE, 1, None, True) == 2.5
    assert type(_convert.unpack(one, dbr.DOUBLE, 1, None, True)) is float
    assert type(_convert.unpack(np.array([3], np.uint16), dbr.ENUM, 1, None, True)) is int
    arr = _convert.unpack(np.array([1, 2, 3], np.int16), dbr.INT, 10, None, True)
    assert arr.dtype == np.int16 and list(arr) == [1, 2, 3]
    cut = _convert.unpack(np.array([1, 2, 3], np.int16), dbr.INT, 10, 2, False)
    assert type(cut).__name__ == "c_short_Array_2" and list(cut) == [1, 2]  # as pyepics: ctypes
    for ntype, name in ((dbr.FLOAT, "c_float"), (dbr.ENUM, "c_ushort"), (dbr.CHAR, "c_ubyte"),
                        (dbr.LONG, "c_int"), (dbr.DOUBLE, "c_double")):  # fmt: skip
        got = _convert.unpack(np.array([1, 2], np.dtype(">f8")), ntype, 10, None, False)
        assert type(got).__name__ == f"{name}_Array_2" and list(got) == [1, 2]
    single = _convert.unpack(np.array([7], np.int16), dbr.INT, 10, None, True)
    assert isinstance(single, np.ndarray) and single.dtype == np.int16  # deliberate: still an array
    assert _convert.unpack(["abc  ", "d"], dbr.STRING, 8, None, True) == ["abc", "d"]
    assert _convert.unpack(["abc  "], dbr.STRING, 1, None, True) == "abc"
    assert _convert.unpack(["x"], dbr.STRING, 4, None, True) == ["x"]
    chars = _convert.unpack(np.array([104, 105, 0], np.uint8), dbr.CHAR, 256, None, True)
    assert chars.dtype == np.uint8 and list(chars) == [104, 105, 0]


def test_shape_for_get() -> None:
    assert _convert.shape_for_get(1.5, 1, None, True) == 1.5
    assert _convert.shape_for_get(None, 10, None, True) is None
    got = _convert.shape_for_get(["a", "bb"], 8, None, True)
    assert isinstance(got, np.ndarray) and got.dtype.kind == "U"  # as pyepics: numpy strings
    assert _convert.shape_for_get(np.arange(5.0), 10, 2, False) == [0.0, 1.0]
    assert _convert.shape_for_get([], 10, None, True).dtype == np.float64


def _md(**kw: Any) -> SimpleNamespace:
    fields = dict.fromkeys(
        ("status", "severity", "posixseconds", "nanoseconds", "units", "precision", "enum_strings", *dbr.ctrl_limits)
    )
    fields.update(kw)
    return SimpleNamespace(**fields)


def test_metadata_time_and_ctrl() -> None:
    md = _md(status=0, severity=1, posixseconds=1_700_000_000, nanoseconds=123_456_789)
    out = _convert.metadata(md, dbr.TIME_DOUBLE)
    assert out == {
        "status": 0,
        "severity": 1,
        "timestamp": 1_700_000_000.0 + 1e-6 * 123_456,
        "posixseconds": 1_700_000_000.0,
        "nanoseconds": 123_456_789,
    }
    assert type(out["posixseconds"]) is float
    ctrl = _convert.metadata(_md(status=0, severity=0, precision=3, units="mm", upper_disp_limit=10.0), 34)
    assert ctrl == {"upper_disp_limit": 10.0, "precision": 3, "units": "mm", "status": 0, "severity": 0}
    enum = _convert.metadata(_md(status=0, severity=0, enum_strings=("a", "b")), dbr.CTRL_ENUM)
    assert enum == {"status": 0, "severity": 0, "enum_strs": ("a", "b")}
    assert _convert.metadata(_md(status=0, severity=0, enum_strings=()), dbr.CTRL_ENUM) == {"status": 0, "severity": 0}
    signed = _convert.metadata(_md(status=0, severity=0, upper_disp_limit=255), dbr.CTRL_CHAR)
    assert signed["upper_disp_limit"] == -1
    assert _convert.metadata(_md(), dbr.DOUBLE) == {}


@pytest.mark.parametrize(
    ("value", "precision", "expected"),
    [
        (3.5, 3, "3.500"),
        (0.0, 3, "0"),  # |log10(1e-9)| > 4: %g
        (123456.789, 2, "1.2e+05"),
        (0.000012345, 3, "0.000"),  # int(log10) is -4: still %f
        (0.0000012345, 3, "1.23e-06"),
        (2.5, 0, "2"),
        (2.5, None, "2.5"),
        (float("nan"), 2, "nan"),
        (float("inf"), 2, "inf"),
        (-1e-9, 3, "-1e-09"),
    ],
)
def test_char_value_of_floats(value: float, precision: Any, expected: str) -> None:
    assert _convert.char_value(value, dbr.DOUBLE, dbr.TIME_DOUBLE, 1, precision, None) == expected


def test_char_value_of_other_types() -> None:
    assert _convert.char_value(None, dbr.DOUBLE, 20, 1, 3, None) == "None"
    assert _convert.char_value(2, dbr.ENUM, 17, 1, None, ("a", "b", "c")) == "c"
    assert _convert.char_value(9, dbr.ENUM, 17, 1, None, ("a",)) == "9"
    assert _convert.char_value(9, dbr.ENUM, 17, 1, None, None) == "9"
    assert _convert.char_value(42, dbr.LONG, 19, 1, None, None) == "42"
    assert _convert.char_value("text", dbr.STRING, 14, 1, None, None) == "text"
    assert _convert.char_value(["a", "b"], dbr.STRING, 14, 2, None, None) == ["a", "b"]
    text = np.array([104, 105, 32, 0, 65], np.uint8)
    assert _convert.char_value(text, dbr.CHAR, 18, 5, None, None) == "hi"
    assert _convert.char_value([200, 3], dbr.CHAR, 18, 2, None, None) == "\xc8\x03"
    assert _convert.char_value(65, dbr.CHAR, 18, 1, None, None) == "A"
    big = np.full(70_000, 65, np.uint8)
    assert _convert.char_value(big, dbr.CHAR, 18, 70_000, None, None) == "<array size=70000, type=time_char>"
    assert _convert.char_value(big, dbr.CHAR, 18, 70_000, None, None, force_long_string=True) == "A" * 70_000
    assert _convert.char_value(np.arange(3.0), dbr.DOUBLE, 20, 3, 2, None) == "<array size=3, type=time_double>"
    assert _convert.char_value(np.array([1.25]), dbr.DOUBLE, 20, 1, 2, None) == "1.25"
    assert _convert.char_value(np.array([]), dbr.DOUBLE, 20, 0, 2, None) == "[]"


def test_string_for_many() -> None:
    assert _convert.string_for_many(np.array([32, 104, 105, 0], np.uint8), dbr.CHAR, 256, None) == "hi"
    assert _convert.string_for_many(1, dbr.ENUM, 1, ("off", "on")) == "on"
    assert _convert.string_for_many(5, dbr.ENUM, 1, ("off", "on")) == "5"
    assert _convert.string_for_many(np.arange(3.0), dbr.DOUBLE, 1000, None) == "<array count=1000, type=6>"
    assert _convert.string_for_many(3.14159, dbr.DOUBLE, 1, None) == "3.14159"


def test_encode_put_scalars() -> None:
    assert _convert.encode_put(1.5, dbr.DOUBLE, 1, "utf-8") == ([1.5], 1)
    assert _convert.encode_put("2.5", dbr.DOUBLE, 1, "utf-8") == ([2.5], 1)
    assert _convert.encode_put("0x10", dbr.LONG, 1, "utf-8") == ([16], 1)
    assert _convert.encode_put(2.7, dbr.LONG, 1, "utf-8") == ([2], 1)
    assert _convert.encode_put(np.int64(4), dbr.INT, 1, "utf-8") == ([4], 1)
    assert _convert.encode_put(True, dbr.DOUBLE, 1, "utf-8") == ([1.0], 1)
    assert _convert.encode_put("ok", dbr.STRING, 1, "utf-8") == ([b"ok"], 1)
    with pytest.raises(ValueError, match="could not convert string to float: b'abc'"):
        _convert.encode_put("abc", dbr.DOUBLE, 1, "utf-8")
    with pytest.raises(ValueError, match="invalid literal for int"):
        _convert.encode_put("abc", dbr.LONG, 1, "utf-8")
    with pytest.raises(TypeError):
        _convert.encode_put(None, dbr.DOUBLE, 1, "utf-8")
    with pytest.raises(TypeError, match="has no len"):
        _convert.encode_put(5.5, dbr.STRING, 1, "utf-8")
    with pytest.raises(ValueError, match="byte string too long"):
        _convert.encode_put("x" * 41, dbr.STRING, 1, "utf-8")
    with pytest.raises(ca.CASeverityException, match="Invalid string"):
        _convert.encode_put("x" * 40, dbr.STRING, 1, "utf-8")


def test_encode_put_arrays(capsys: pytest.CaptureFixture[str]) -> None:
    data, count = _convert.encode_put("abc", dbr.CHAR, 256, "utf-8")
    assert count == 4 and list(data) == [97, 98, 99, 0]
    data, count = _convert.encode_put("é", dbr.CHAR, 256, "utf-8")  # UTF-8 bytes and a NUL
    assert count == 3 and list(data) == [0xC3, 0xA9, 0]
    data, count = _convert.encode_put("x" * 300, dbr.CHAR, 256, "utf-8")
    assert count == 256 and len(data) == 256
    data, count = _convert.encode_put([], dbr.DOUBLE, 10, "utf-8")
    assert count == 10 and not data.any()
    data, count = _convert.encode_put(range(20), dbr.DOUBLE, 10, "utf-8")
    assert count == 10 and list(data) == list(range(10))
    assert _convert.encode_put(["a", 2], dbr.STRING, 8, "utf-8") == ([b"a", b"2"], 2)
    assert _convert.encode_put("one", dbr.STRING, 8, "utf-8") == ([b"one"], 1)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        _convert.encode_put([1.5, 2.5], dbr.LONG, 10, "utf-8")
    with pytest.raises(TypeError, match="must be real number, not str"):
        _convert.encode_put(["a"], dbr.DOUBLE, 10, "utf-8")
    with pytest.raises(TypeError, match="object of type 'float' has no len"):
        _convert.encode_put(5.0, dbr.DOUBLE, 10, "utf-8")
    assert "value put() to array PV must be an array or sequence" in capsys.readouterr().out
    with pytest.raises(ca.ChannelAccessException):
        _convert.encode_put([[1.0], [1.0, 2.0]], dbr.DOUBLE, 10, "utf-8")


@given(st.lists(st.integers(min_value=-32768, max_value=32767), min_size=1, max_size=40))
def test_encode_put_keeps_integer_arrays(values: list[int]) -> None:
    data, count = _convert.encode_put(values, dbr.INT, 40, "utf-8")
    assert count == len(values)
    assert np.array_equal(np.asarray(data, dtype=np.int16), np.asarray(values, dtype=np.int16))


@given(st.lists(st.floats(allow_nan=False, width=64), min_size=2, max_size=30))
def test_encode_put_keeps_float_arrays(values: list[float]) -> None:
    data, count = _convert.encode_put(values, dbr.DOUBLE, 30, "utf-8")
    assert count == len(values) and list(data) == values


def test_dbr_helpers() -> None:
    assert dbr.Name(20) == "TIME_DOUBLE"
    assert dbr.Name(99) == "unknown"
    assert dbr.Name("time_double", reverse=True) == 20
    assert dbr.Name("nonsense", reverse=True) == "unknown"
    assert [dbr.native_type(t) for t in (0, 6, 14, 20, 28, 34)] == [0, 6, 0, 6, 0, 6]
    assert dbr.AlarmStatus(3).name == "HIHI"
    assert dbr.AlarmStatus(99).name == "UNKNOWN" and int(dbr.AlarmStatus(99)) == 99
    assert repr(dbr.AlarmSeverity(2)) == "MAJOR"
    assert dbr.make_unixtime(SimpleNamespace(secs=10, nsec=2_500_000)) == dbr.EPICS2UNIX_EPOCH + 10 + 0.0025


def test_utils_and_ca_helpers() -> None:
    assert utils.str2bytes("é") == "é".encode(utils.wire_encoding())
    assert utils.bytes2str(b"abc") == "abc" and utils.bytes2str(5) == "5"
    assert utils.strjoin("", [b"a", b"b", b"\x00", b"c"]) == "ab"
    assert utils.strjoin(b"-", ["a", "b"]) == "a-b"
    assert ca.poll() == 1 and ca.pend_io() == 1 and ca.pend_event(0) == dbr.ECA_TIMEOUT
    assert str(ca.CASeverityException("put", "Write access denied")) == " put returned 'Write access denied'"
    assert ca.message(376) == "Write access denied"
    assert ca.message(192) == "Virtual circuit disconnect"


def test_fmt_time() -> None:
    stamp = 1_000_000_000.123456
    text = fmt_time(stamp)
    assert text.startswith(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(math.floor(stamp))))
    assert text.endswith(".12346")
    assert len(fmt_time()) == len("2001-09-09 01:46:40.12346")
