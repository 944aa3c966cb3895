"""Unit tests of the DBR codec (caclient._dbr), with caproto's ctypes structures as the oracle.

Pure: no network, no threads.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import caproto
import caproto._dbr as cadbr
import numpy as np
import pytest
from caproto._commands import read_from_bytestream
from hypothesis import given, settings
from hypothesis import strategies as st

from caclient import ChannelType, ProtocolError, ReadResponse, _dbr
from caclient._dbr import (
    EPICS_EPOCH_OFFSET,
    LAYOUTS,
    MAX_STRING_SIZE,
    decode_metadata,
    decode_value,
    encode_string,
    encode_values,
)

ENC = "latin-1"

#: plain field types: STRING, INT(SHORT), FLOAT, ENUM, CHAR, LONG, DOUBLE
FIELDS = range(7)
#: family name -> offset of its STRING member
FAMILIES = {"native": 0, "status": 7, "time": 14, "graphic": 21, "control": 28}
#: numpy dtype on the wire for each numeric field type
WIRE = {1: ">i2", 2: ">f4", 3: ">u2", 4: "u1", 5: ">i4", 6: ">f8"}
NATIVE = {1: "=i2", 2: "=f4", 3: "=u2", 4: "=u1", 5: "=i4", 6: "=f8"}
COUNTS = (1, 5, 0)

SECS = 1_000_000_000  # EPICS seconds (2021-09-09)
NSECS = 123_456_789
STATUS = 7  # HIHI
SEVERITY = 2  # MAJOR
UNITS = "\u00b5m"  # micro sign: one byte in latin-1
PRECISION = 3
ENUM_STRINGS = ("Off", "On", "\u00c9tat trois", "x" * 25)

# limits (upper_disp, lower_disp, upper_alarm, upper_warning, lower_warning, lower_alarm, upper_ctrl, lower_ctrl)
LIMIT_VALUES = {
    1: (100, -100, 90, 80, -80, -90, 95, -95),
    2: (100.5, -100.5, 90.25, 80.0, -80.0, -90.25, 95.5, -95.5),
    4: (200, 1, 190, 180, 20, 10, 195, 5),
    5: (100_000, -100_000, 90_000, 80_000, -80_000, -90_000, 95_000, -95_000),
    6: (1e10, -1e10, 9.5e9, 8.5e9, -8.5e9, -9.5e9, 9.75e9, -9.75e9),
}
LIMIT_NAMES = _dbr._LIMITS8


# ---------------------------------------------------------------- helpers
def ca_struct_size(t: int) -> int:
    return ctypes.sizeof(cadbr.DBR_TYPES[t])


def caproto_metadata(t: int, *, encoding: str = ENC) -> bytes:
    """The metadata block of DBR type *t* as caproto's ctypes struct packs it.

    CTRL_STRING is built the db_access.h way (status + severity only).
    """
    if t < 7:
        return b""
    if t in (21, 28):  # GR_STRING / CTRL_STRING: dbr_sts_string in db_access.h
        return bytes(cadbr.DBR_STS_STRING(status=STATUS, severity=SEVERITY))
    cls = cadbr.DBR_TYPES[t]
    field = t % 7
    kw: dict[str, Any] = {"status": STATUS, "severity": SEVERITY}
    if 14 <= t <= 20:
        kw["stamp"] = cadbr.TimeStamp(secondsSinceEpoch=SECS, nanoSeconds=NSECS)
    obj = cls(**kw)
    if t >= 21:
        if field == 3:
            obj.enum_strings = [s.encode(encoding) for s in ENUM_STRINGS]
        else:
            obj.units = UNITS.encode(encoding)
            if field in (2, 6):
                obj.precision = PRECISION
            n = 8 if t >= 28 else 6
            for name, value in zip(LIMIT_NAMES[:n], LIMIT_VALUES[field][:n], strict=True):
                setattr(obj, name, bytes([value]) if field == 4 else value)
    return bytes(obj)


def values_for(field: int, count: int) -> list[str] | np.ndarray:
    if field == 0:
        return [f"str{i}-\u00e9" for i in range(count)]
    base = np.arange(count)
    if field in (2, 6):
        return (base * 1.5 - 2.25).astype(NATIVE[field])
    if field in (3, 4):
        return (base * 7 + 3).astype(NATIVE[field])
    return (base * -1000 + 17).astype(NATIVE[field])


def value_bytes(field: int, values: Any, encoding: str = ENC) -> bytes:
    if field == 0:
        return b"".join(v.encode(encoding).ljust(MAX_STRING_SIZE, b"\0") for v in values)
    return np.asarray(values).astype(WIRE[field]).tobytes()


def pad8(b: bytes) -> bytes:
    return b.ljust((len(b) + 7) & ~7, b"\0")


def all_value_types() -> list[int]:
    return [off + f for off in FAMILIES.values() for f in FIELDS]


def check_metadata(t: int, md: _dbr.Metadata) -> None:
    field = t % 7
    family = LAYOUTS[t].family
    assert md.data_type == t
    if family == "native":
        assert md.status is None and md.severity is None and md.timestamp is None
        return
    assert md.status == STATUS
    assert md.severity == SEVERITY
    if family == "time":
        assert md.posixseconds == SECS + EPICS_EPOCH_OFFSET
        assert md.nanoseconds == NSECS
        assert md.timestamp == pytest.approx(SECS + EPICS_EPOCH_OFFSET + NSECS * 1e-9, abs=1e-6)
        # same instant as caproto computes it (caproto truncates to microseconds)
        assert md.timestamp == pytest.approx(cadbr.epics_timestamp_to_unix(SECS, NSECS), abs=1e-6)
    else:
        assert md.timestamp is None and md.posixseconds is None
    if family in ("graphic", "control") and field != 0:
        if field == 3:
            assert md.enum_strings == ENUM_STRINGS
            assert all(type(s) is str for s in md.enum_strings)
            assert md.units is None
        else:
            assert md.units == UNITS and type(md.units) is str
            n = 8 if family == "control" else 6
            for name, value in zip(LIMIT_NAMES[:n], LIMIT_VALUES[field][:n], strict=True):
                got = getattr(md, name)
                if field == 2:
                    assert got == pytest.approx(value, rel=1e-6), name
                else:
                    assert got == value, name
            for name in LIMIT_NAMES[n:]:
                assert getattr(md, name) is None
            if field in (2, 6):
                assert md.precision == PRECISION
            else:
                assert md.precision is None
    else:
        assert md.units is None and md.enum_strings is None and md.upper_disp_limit is None


def check_values(field: int, got: Any, expected: Any) -> None:
    if field == 0:
        assert isinstance(got, list)
        assert got == list(expected)
        assert all(type(s) is str for s in got)
        return
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.dtype(NATIVE[field])
    assert got.dtype.isnative
    assert got.flags.writeable
    assert got.shape == (len(expected),)
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- layouts
def test_channel_types_match_caproto() -> None:
    for member in caproto.ChannelType:
        assert ChannelType[member.name] == member.value
    assert sorted({int(t) for t in ChannelType}) == list(range(39))


@pytest.mark.parametrize("t", range(39), ids=lambda t: ChannelType(t).name)
def test_layout_sizes_match_caproto(t: int) -> None:
    ours = LAYOUTS[t].meta_size
    theirs = ca_struct_size(t)
    if t < 7:
        # caproto's native "structs" hold one value element; no metadata here
        assert ours == 0
        assert theirs == _dbr.ELEMENT_SIZE[t]
    elif t in (ChannelType.PUT_ACKT, ChannelType.PUT_ACKS):
        assert ours == 0
        assert theirs == 2  # the value (a ushort)
    elif t == ChannelType.CLASS_NAME:
        assert ours == 0
        assert theirs == MAX_STRING_SIZE  # the value (a string)
    elif t == ChannelType.STSACK_STRING:
        assert ours == 8
        assert theirs == 8 + MAX_STRING_SIZE  # caproto includes the value
    elif t == ChannelType.CTRL_STRING:
        assert ours == 4  # db_access.h: dbr_sts_string
        assert theirs == 12  # caproto: DBR_TIME_STRING (with a timestamp)
        assert cadbr.DBR_TYPES[t] is cadbr.DBR_TIME_STRING
    else:
        assert ours == theirs


@pytest.mark.parametrize("t", range(7, 35), ids=lambda t: ChannelType(t).name)
def test_layout_field_offsets_match_caproto(t: int) -> None:
    """Each named metadata field sits where caproto's struct puts it."""
    if t in (21, 28):
        return  # no caproto struct of their db_access.h layout
    layout = LAYOUTS[t]
    cls = cadbr.DBR_TYPES[t]
    # Fill every caproto field with a distinct value and decode it back.
    obj = cls()
    expected = {}
    for i, (name, ctype) in enumerate(cls._fields_):
        if name.startswith("RISC"):
            continue
        if name == "stamp":
            obj.stamp = cadbr.TimeStamp(secondsSinceEpoch=1000 + i, nanoSeconds=2000 + i)
            expected["posixseconds"] = 1000 + i + EPICS_EPOCH_OFFSET
            expected["nanoseconds"] = 2000 + i
        elif name == "units":
            obj.units = f"u{i}".encode()
            expected["units"] = f"u{i}"
        elif name == "no_str":
            continue
        elif name == "strs":
            obj.enum_strings = [f"s{k}".encode() for k in range(i)]
            expected["enum_strings"] = tuple(f"s{k}" for k in range(i))
        elif ctype is ctypes.c_char:
            setattr(obj, name, bytes([i + 1]))
            expected[name] = i + 1
        else:
            setattr(obj, name, i + 1)
            expected[name] = i + 1
    md = decode_metadata(layout, bytes(obj), ENC)
    for name, value in expected.items():
        assert getattr(md, name) == value, name


def test_layout_tables_consistent() -> None:
    for t in range(39):
        layout = LAYOUTS[t]
        assert layout.type == t
        assert _dbr.native_type(t) == (3 if t in (35, 36) else (0 if t in (37, 38) else t % 7))
        assert _dbr.payload_size(t, 3) == layout.meta_size + 3 * _dbr.ELEMENT_SIZE[_dbr.native_type(t)]
    for family, off in FAMILIES.items():
        for f in FIELDS:
            assert _dbr.promote(f, family) == off + f
            assert LAYOUTS[off + f].family == family


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("t", all_value_types(), ids=lambda t: ChannelType(t).name)
def test_round_trip(t: int, count: int) -> None:
    field = t % 7
    meta = caproto_metadata(t)
    assert len(meta) == LAYOUTS[t].meta_size
    values = values_for(field, count)
    payload = meta + value_bytes(field, values)

    md = decode_metadata(LAYOUTS[t], payload, ENC)
    check_metadata(t, md)
    check_values(field, decode_value(LAYOUTS[t], count, payload, ENC), values)

    # the same through ReadResponse, with the padding the wire adds
    resp = ReadResponse(t, count, 1, pad8(payload), ENC)
    assert resp.data_type == t and resp.data_count == count and resp.status == 1
    check_values(field, resp.data, values)
    check_metadata(t, resp.metadata)
    assert resp.data is resp.data  # decoded once
    assert bytes(resp) == pad8(payload)
    assert repr(resp).startswith(f"<ReadResponse {ChannelType(t).name}")


@pytest.mark.parametrize("t", all_value_types(), ids=lambda t: ChannelType(t).name)
def test_round_trip_matches_caproto_parser(t: int) -> None:
    """caproto's own parser reads the same payload to the same values."""
    field = t % 7
    count = 5
    values = values_for(field, count)
    meta = caproto_metadata(t)
    if t == ChannelType.CTRL_STRING:  # caproto's own (timestamped) layout
        meta = bytes(cadbr.DBR_TIME_STRING(status=STATUS, severity=SEVERITY))
    payload = pad8(meta + value_bytes(field, values))
    msg = struct.pack(">HHHHII", 15, len(payload), t, count, 1, 1) + payload
    rest, resp, _ = read_from_bytestream(bytearray(msg), caproto.SERVER)
    assert not rest
    ours = ReadResponse(t, count, 1, payload, ENC)
    if field == 0:
        assert [v.decode(ENC) for v in resp.data] == ours.data
    else:
        np.testing.assert_array_equal(np.asarray(resp.data), ours.data)
    if 7 <= t <= 13 or 14 <= t <= 20:
        assert resp.metadata.status == ours.metadata.status
        assert resp.metadata.severity == ours.metadata.severity


def test_utf8_units_and_strings() -> None:
    t = ChannelType.CTRL_DOUBLE
    obj = cadbr.DBR_CTRL_DOUBLE(status=0, severity=0)
    obj.units = "\u00b5A".encode()
    payload = bytes(obj) + np.array([1.5], ">f8").tobytes()
    assert decode_metadata(LAYOUTS[t], payload, "utf-8").units == "\u00b5A"
    # undecodable bytes are replaced, never raised
    obj.units = b"\xff\xfe"
    md = decode_metadata(LAYOUTS[t], bytes(obj) + payload[-8:], "utf-8")
    assert isinstance(md.units, str)
    raw = "\u00e9t\u00e9".encode().ljust(40, b"\0")
    assert decode_value(LAYOUTS[0], 1, raw, "utf-8") == ["\u00e9t\u00e9"]


def test_string_without_nul_and_garbage_after_nul() -> None:
    raw = b"A" * 40 + b"ab\0garbage".ljust(40, b"Z")
    assert decode_value(LAYOUTS[0], 2, raw, ENC) == ["A" * 40, "ab"]


def test_enum_string_count_clamped() -> None:
    t = ChannelType.GR_ENUM
    base = bytearray(caproto_metadata(t))
    for no_str, expect in ((-1, 0), (0, 0), (2, 2), (16, 16), (17, 16), (32767, 16)):
        struct.pack_into(">h", base, 4, no_str)
        md = decode_metadata(LAYOUTS[t], bytes(base) + b"\0\0", ENC)
        assert len(md.enum_strings) == expect
        assert md.enum_strings[:2] == ENUM_STRINGS[: min(expect, 2)]


def test_memoryview_and_bytearray_payloads() -> None:
    t = ChannelType.TIME_DOUBLE
    values = values_for(6, 5)
    payload = caproto_metadata(t) + value_bytes(6, values)
    for buf in (memoryview(payload), bytearray(payload)):
        check_metadata(t, decode_metadata(LAYOUTS[t], buf, ENC))
        out = decode_value(LAYOUTS[t], 5, buf, ENC)
        check_values(6, out, values)
        out[0] = 42.0  # writable, and not a view of the buffer
    assert bytes(payload) == caproto_metadata(t) + value_bytes(6, values)


def test_decoded_array_is_a_copy() -> None:
    payload = bytearray(value_bytes(5, np.arange(3)))
    arr = decode_value(LAYOUTS[5], 3, payload, ENC)
    payload[:4] = b"\xff\xff\xff\xff"
    assert arr[0] == 0


# ---------------------------------------------------------------- CTRL_STRING quirk
@pytest.mark.parametrize("count", COUNTS)
def test_ctrl_string_db_access_layout(count: int) -> None:
    values = values_for(0, count)
    payload = pad8(bytes(cadbr.DBR_STS_STRING(status=STATUS, severity=SEVERITY)) + value_bytes(0, values))
    resp = ReadResponse(ChannelType.CTRL_STRING, count, 1, payload, ENC)
    assert resp.data == values
    assert resp.metadata.data_type == ChannelType.CTRL_STRING
    assert (resp.metadata.status, resp.metadata.severity) == (STATUS, SEVERITY)
    assert resp.metadata.timestamp is None


@pytest.mark.parametrize("count", COUNTS)
def test_ctrl_string_caproto_layout(count: int) -> None:
    values = values_for(0, count)
    stamp = cadbr.TimeStamp(secondsSinceEpoch=SECS, nanoSeconds=NSECS)
    meta = bytes(cadbr.DBR_TIME_STRING(status=STATUS, severity=SEVERITY, stamp=stamp))
    payload = pad8(meta + value_bytes(0, values))
    resp = ReadResponse(ChannelType.CTRL_STRING, count, 1, payload, ENC)
    assert resp.data == values
    md = resp.metadata
    assert md.data_type == ChannelType.CTRL_STRING
    assert (md.status, md.severity) == (STATUS, SEVERITY)
    assert md.posixseconds == SECS + EPICS_EPOCH_OFFSET and md.nanoseconds == NSECS


# ---------------------------------------------------------------- special types
def test_stsack_string() -> None:
    obj = cadbr.DBR_STSACK_STRING(status=3, severity=1, ackt=1, acks=2, value=b"hello")
    payload = bytes(obj)
    assert len(payload) == 48
    layout = LAYOUTS[ChannelType.STSACK_STRING]
    md = decode_metadata(layout, payload, ENC)
    assert (md.status, md.severity, md.ackt, md.acks) == (3, 1, 1, 2)
    assert md.timestamp is None and md.units is None
    assert decode_value(layout, 1, payload, ENC) == ["hello"]
    resp = ReadResponse(ChannelType.STSACK_STRING, 1, 1, payload, ENC)
    assert resp.data == ["hello"]
    assert resp.metadata.as_dict() == {"status": 3, "severity": 1, "ackt": 1, "acks": 2}


def test_class_name() -> None:
    payload = bytes(cadbr.DBR_CLASS_NAME(value=b"ai"))
    resp = ReadResponse(ChannelType.CLASS_NAME, 1, 1, payload, ENC)
    assert resp.data == ["ai"]
    assert resp.metadata.as_dict() == {}


@pytest.mark.parametrize("t", [ChannelType.PUT_ACKT, ChannelType.PUT_ACKS])
def test_put_ack(t: ChannelType) -> None:
    payload = pad8(bytes(cadbr.DBR_TYPES[t](value=1)))
    resp = ReadResponse(t, 1, 1, payload, ENC)
    check_values(3, resp.data, np.array([1], "=u2"))
    assert resp.metadata.as_dict() == {}
    assert _dbr.payload_size(t, 1) == 2


def test_metadata_repr_and_dict() -> None:
    t = ChannelType.TIME_LONG
    md = decode_metadata(LAYOUTS[t], caproto_metadata(t) + b"\0" * 4, ENC)
    d = md.as_dict()
    assert d["status"] == STATUS and d["severity"] == SEVERITY
    assert d["timestamp"] == md.timestamp
    assert "TIME_LONG" in repr(md)


# ---------------------------------------------------------------- truncation
@pytest.mark.parametrize("t", range(39), ids=lambda t: ChannelType(t).name)
@pytest.mark.parametrize("count", [1, 5])
def test_truncated_payload_raises_protocol_error(t: int, count: int) -> None:
    layout = LAYOUTS[t]
    full = _dbr.payload_size(t, count)
    payload = bytes(range(256)) * (full // 256 + 1)
    lengths = {0, 1, max(0, layout.meta_size - 1), layout.meta_size, full - 1}
    for n in sorted(x for x in lengths if x < full):
        short = payload[:n]
        if n < layout.meta_size:
            with pytest.raises(ProtocolError):
                decode_metadata(layout, short, ENC)
        with pytest.raises(ProtocolError):
            decode_value(layout, count, short, ENC)
        resp = ReadResponse(t, count, 1, short, ENC)
        with pytest.raises(ProtocolError):
            resp.data  # noqa: B018
    # the full length decodes
    decode_metadata(layout, payload[:full], ENC)
    decode_value(layout, count, payload[:full], ENC)


@settings(max_examples=400, deadline=None)
@given(
    t=st.integers(0, 38),
    count=st.integers(0, 100),
    payload=st.binary(max_size=600) | st.binary(min_size=400, max_size=5000),
    encoding=st.sampled_from(["latin-1", "utf-8", "ascii"]),
)
def test_fuzz_decode(t: int, count: int, payload: bytes, encoding: str) -> None:
    layout = LAYOUTS[t]
    try:
        md = decode_metadata(layout, payload, encoding)
    except ProtocolError:
        pass
    else:
        md.as_dict()
        repr(md)
    try:
        decode_value(layout, count, payload, encoding)
    except ProtocolError:
        pass
    resp = ReadResponse(t, count, 1, payload, encoding)
    for attr in ("data", "metadata"):
        try:
            getattr(resp, attr)
        except ProtocolError:
            pass
    try:
        repr(resp)
    except ProtocolError:
        pass


# ---------------------------------------------------------------- encoding
@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize(
    "data",
    [
        0,
        1,
        7,
        3.0,
        [1, 2, 3],
        (4, 5),
        np.array([1, 2, 3], "i8"),
        np.array([[1, 2], [3, 4]]),
        np.float32(2),
        np.arange(0),
    ],
    ids=repr,
)
def test_encode_numeric(field: int, data: Any) -> None:
    raw, count = encode_values(field, data, ENC)
    expected = np.asarray(data).reshape(-1).astype(WIRE[field])
    assert count == expected.size
    assert raw == expected.tobytes()
    assert isinstance(raw, bytes)


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6])
def test_encode_numeric_matches_caproto(field: int) -> None:
    data = [0, 1, 2, 100]
    raw, count = encode_values(field, data, ENC)
    req = caproto.WriteRequest(np.array(data, NATIVE[field]), field, count, 1, 2)
    assert bytes(req)[16:] == pad8(raw)


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6])
def test_encode_every_dtype_same_and_other_byte_order(field: int) -> None:
    vals = np.array([1, 2, 3])
    for dt in (WIRE[field], NATIVE[field], "<f8", ">i4", "u1", "<i8"):
        raw, count = encode_values(field, vals.astype(dt), ENC)
        assert count == 3
        assert raw == vals.astype(WIRE[field]).tobytes()


def test_encode_float_precision() -> None:
    raw, _ = encode_values(6, [0.1, -1e300, np.inf, np.nan], ENC)
    np.testing.assert_array_equal(np.frombuffer(raw, ">f8"), [0.1, -1e300, np.inf, np.nan])
    raw, _ = encode_values(2, [0.1, np.inf, -np.inf, np.nan], ENC)
    np.testing.assert_array_equal(np.frombuffer(raw, ">f4"), np.array([0.1, np.inf, -np.inf, np.nan], "f4"))


@pytest.mark.parametrize("field", [1, 2, 3, 5, 6])
def test_encode_numeric_string(field: int) -> None:
    raw, count = encode_values(field, "12", ENC)
    assert (raw, count) == (np.array([12], WIRE[field]).tobytes(), 1)
    raw, count = encode_values(field, ["1", "2"], ENC)
    assert (raw, count) == (np.array([1, 2], WIRE[field]).tobytes(), 2)


def test_encode_float_string() -> None:
    assert encode_values(6, "1.5e3", ENC) == (np.array([1500.0], ">f8").tobytes(), 1)
    assert encode_values(2, " -2.5 ", ENC) == (np.array([-2.5], ">f4").tobytes(), 1)


@pytest.mark.parametrize("field", [1, 2, 3, 5, 6])
@pytest.mark.parametrize("bad", ["abc", "", "1,5"])
def test_encode_non_numeric_string_raises(field: int, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        encode_values(field, bad, ENC)
    assert repr(bad) in str(info.value)
    assert ChannelType(field).name in str(info.value)


def test_encode_non_numeric_string_in_list_raises() -> None:
    with pytest.raises(ValueError, match="abc"):
        encode_values(6, ["1.0", "abc"], ENC)


@pytest.mark.parametrize("field", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("data", [1j, [1.0, 2 + 3j], np.array([1j], "c8")], ids=repr)
def test_encode_complex_raises_type_error(field: int, data: Any) -> None:
    with pytest.raises(TypeError, match="complex"):
        encode_values(field, data, ENC)


@pytest.mark.parametrize("field", [1, 3, 4, 5])
@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -np.inf, [1.0, np.nan], np.array([np.inf], "f4")], ids=repr
)
def test_encode_non_finite_to_int_raises(field: int, bad: Any) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        encode_values(field, bad, ENC)


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        (1, [-32768, 32767], [32768, -32769, 70000]),
        (3, [0, 65535], [-1, 65536]),
        (4, [-128, 0, 255], [-129, 256, 300]),
        (5, [-(2**31), 2**31 - 1], [2**31, -(2**31) - 1, 1e10, 2**70, 2**64 - 1]),
    ],
)
def test_encode_int_range(field: int, good: list[int], bad: list[Any]) -> None:
    """Out-of-range values raise instead of silently wrapping around."""
    raw, count = encode_values(field, good, ENC)
    assert count == len(good)
    assert raw == np.array(good, "i8").astype(WIRE[field]).tobytes()
    for value in bad:
        for data in (value, [value], np.array([0, value]) if abs(value) < 2**63 else [0, value]):
            with pytest.raises(ValueError, match="cannot write"):
                encode_values(field, data, ENC)


def test_encode_float32_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_values(2, 1e300, ENC)
    with pytest.raises(ValueError, match="out of range"):
        encode_values(2, [1.0, -1e39], ENC)
    assert encode_values(2, 3e38, ENC)[1] == 1
    assert encode_values(6, 1e300, ENC)[1] == 1


def test_encode_char_signed_bytes() -> None:
    assert encode_values(4, [-1, -128, 127], ENC) == (b"\xff\x80\x7f", 3)
    assert encode_values(4, np.array([-1, 5], "i1"), ENC) == (b"\xff\x05", 2)


def test_encode_bool() -> None:
    assert encode_values(1, [True, False], ENC) == (b"\x00\x01\x00\x00", 2)


def test_encode_none_to_int_raises() -> None:
    with pytest.raises(TypeError, match="LONG"):
        encode_values(5, [1, None], ENC)


@pytest.mark.parametrize(
    ("data", "expected"),
    [("abc", b"abc\0"), ("", b"\0"), ("ab\0", b"ab\0"), (b"\x01\x02", b"\x01\x02\0"), (bytearray(b"x"), b"x\0")],
)
def test_encode_string_to_char(data: Any, expected: bytes) -> None:
    assert encode_values(4, data, ENC) == (expected, len(expected))


def test_encode_string_to_char_encoding() -> None:
    assert encode_values(4, "\u00e9", "utf-8") == (b"\xc3\xa9\0", 3)
    assert encode_values(4, "\u00e9", "latin-1") == (b"\xe9\0", 2)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("abc", ["abc"]),
        (b"abc", ["abc"]),
        (["a", "bc", ""], ["a", "bc", ""]),
        (("x",), ["x"]),
        (np.array(["p", "q"]), ["p", "q"]),
        (np.array("zz"), ["zz"]),
        (5, ["5"]),
        (1.5, ["1.5"]),
        (np.float64(2.5), ["2.5"]),
        ([1, 2], ["1", "2"]),
        ("x" * 39, ["x" * 39]),
        ([], []),
    ],
    ids=repr,
)
def test_encode_string_field(data: Any, expected: list[str]) -> None:
    raw, count = encode_values(0, data, ENC)
    assert count == len(expected)
    assert raw == b"".join(s.encode(ENC).ljust(40, b"\0") for s in expected)
    assert len(raw) == 40 * count
    if expected:  # the same bytes caproto would put on the wire
        req = caproto.WriteRequest([s.encode(ENC) for s in expected], 0, count, 1, 2)
        assert bytes(req)[16:] == raw


@pytest.mark.parametrize("data", ["x" * 40, b"y" * 41, ["ok", "z" * 100], "\u00e9" * 20], ids=repr)
def test_encode_string_too_long(data: Any) -> None:
    with pytest.raises(ValueError, match=r"too long for DBR_STRING \(at most 39 bytes\)"):
        encode_values(0, data, "utf-8")


def test_encode_string_helper() -> None:
    assert encode_string("abc", ENC) == b"abc".ljust(40, b"\0")
    assert encode_string(b"", ENC) == b"\0" * 40
    with pytest.raises(ValueError, match="40 bytes"):
        encode_string("a" * 40, ENC)


def test_encode_string_unencodable() -> None:
    with pytest.raises(ValueError):  # UnicodeEncodeError is a ValueError
        encode_values(0, "\u20ac", "latin-1")


@pytest.mark.parametrize("data_type", [1, 2, 5, 6, 20, 16, 15], ids=lambda t: ChannelType(t).name)
def test_decode_in_place_swaps_the_payload_itself(data_type: int) -> None:
    """``inplace=True`` gives native values that are a view of the (writable) payload, swapped once."""
    layout = _dbr.LAYOUTS[data_type]
    wire = np.dtype(_dbr._VALUE_DTYPES[layout.field])
    values = (np.arange(1001) * 7 - 500).astype(wire)
    payload = bytearray(bytes(range(layout.meta_size)) + values.tobytes())
    out = _dbr.decode_value(layout, len(values), memoryview(payload), "latin-1", inplace=True)
    assert isinstance(out, np.ndarray) and out.dtype.isnative
    assert np.array_equal(out, values)
    assert np.shares_memory(out, np.frombuffer(payload, np.uint8))  # no copy
    assert payload[: layout.meta_size] == bytes(range(layout.meta_size))  # metadata untouched
    assert payload[layout.meta_size :] == values.astype(wire.newbyteorder("=")).tobytes()  # swapped where it was
