"""DBR types: identities, binary layouts, and the decode/encode codec.

Pure functions and immutable tables only; safe to call from any thread.

The layouts follow ``db_access.h`` (network byte order, the value after a
per-type metadata block with its padding).  They are written out here with
:mod:`struct` so that decoding a monitor update costs a few ``unpack_from``
calls; the unit tests check every layout against caproto's ctypes structures.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ._errors import ProtocolError

#: Seconds between the POSIX epoch and the EPICS epoch (1990-01-01 UTC).
EPICS_EPOCH_OFFSET = 631152000
#: Size of a DBR_STRING element, including its terminating NUL.
MAX_STRING_SIZE = 40
MAX_UNITS_SIZE = 8
MAX_ENUM_STRING_SIZE = 26
MAX_ENUM_STATES = 16


class ChannelType(IntEnum):
    """DBR type codes.  Member names match :class:`caproto.ChannelType`."""

    STRING = 0
    INT = 1
    SHORT = 1
    FLOAT = 2
    ENUM = 3
    CHAR = 4
    LONG = 5
    DOUBLE = 6
    STS_STRING = 7
    STS_INT = 8
    STS_SHORT = 8
    STS_FLOAT = 9
    STS_ENUM = 10
    STS_CHAR = 11
    STS_LONG = 12
    STS_DOUBLE = 13
    TIME_STRING = 14
    TIME_INT = 15
    TIME_SHORT = 15
    TIME_FLOAT = 16
    TIME_ENUM = 17
    TIME_CHAR = 18
    TIME_LONG = 19
    TIME_DOUBLE = 20
    GR_STRING = 21
    GR_INT = 22
    GR_SHORT = 22
    GR_FLOAT = 23
    GR_ENUM = 24
    GR_CHAR = 25
    GR_LONG = 26
    GR_DOUBLE = 27
    CTRL_STRING = 28
    CTRL_INT = 29
    CTRL_SHORT = 29
    CTRL_FLOAT = 30
    CTRL_ENUM = 31
    CTRL_CHAR = 32
    CTRL_LONG = 33
    CTRL_DOUBLE = 34
    PUT_ACKT = 35
    PUT_ACKS = 36
    STSACK_STRING = 37
    CLASS_NAME = 38


class AccessRights(IntEnum):
    """Channel access rights as sent by the server (bit 0 read, bit 1 write)."""

    NO_ACCESS = 0
    READ = 1
    WRITE = 2
    READ_WRITE = 3


#: data_type strings accepted by :meth:`PV.read` and :meth:`PV.subscribe`.
FAMILY_OFFSETS = {"native": 0, "status": 7, "time": 14, "graphic": 21, "control": 28}

_VALUE_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype(">i2"),
    2: np.dtype(">f4"),
    3: np.dtype(">u2"),
    4: np.dtype("u1"),
    5: np.dtype(">i4"),
    6: np.dtype(">f8"),
}
_NATIVE_DTYPES: dict[int, np.dtype[Any]] = {k: v.newbyteorder("=") for k, v in _VALUE_DTYPES.items()}
ELEMENT_SIZE = {0: MAX_STRING_SIZE, 1: 2, 2: 4, 3: 2, 4: 1, 5: 4, 6: 8}

_LIMITS6 = (
    "upper_disp_limit",
    "lower_disp_limit",
    "upper_alarm_limit",
    "upper_warning_limit",
    "lower_warning_limit",
    "lower_alarm_limit",
)
_LIMITS8 = _LIMITS6 + ("upper_ctrl_limit", "lower_ctrl_limit")


class Layout:
    """How one DBR type is laid out on the wire (immutable after creation)."""

    __slots__ = ("type", "field", "family", "meta", "meta_size", "fields", "scalar")

    def __init__(self, type_: int, field: int, family: str, meta: str, fields: tuple[str, ...]) -> None:
        self.type = type_
        self.field = field  # the value's field type, 0..6
        self.family = family
        self.meta = struct.Struct(meta) if meta else None
        self.meta_size = self.meta.size if self.meta else 0
        self.fields = fields
        # One numeric value right after the metadata, for the common scalar case.
        code = {1: "h", 2: "f", 3: "H", 4: "B", 5: "i", 6: "d"}.get(3 if type_ in (35, 36) else field)
        self.scalar = struct.Struct(f">{self.meta_size}x{code}") if code else None


def _build_layouts() -> dict[int, Layout]:
    out: dict[int, Layout] = {}
    sts = ("status", "severity")
    time_ = sts + ("_secs", "_nsecs")
    sts_pad = {0: "", 1: "", 2: "", 3: "", 4: "x", 5: "", 6: "4x"}
    time_pad = {0: "", 1: "2x", 2: "", 3: "2x", 4: "3x", 5: "", 6: "4x"}
    limit_code = {1: "h", 2: "f", 4: "B", 5: "i", 6: "d"}
    for f in range(7):
        out[f] = Layout(f, f, "native", "", ())
        out[7 + f] = Layout(7 + f, f, "status", ">hh" + sts_pad[f], sts)
        out[14 + f] = Layout(14 + f, f, "time", ">hhII" + time_pad[f], time_)
        for base, family, limits in ((21, "graphic", _LIMITS6), (28, "control", _LIMITS8)):
            n = len(limits)
            if f == 0:
                out[base] = Layout(base, 0, family, ">hh", sts)
            elif f == 3:
                out[base + 3] = Layout(base + 3, 3, family, ">hhh416s", sts + ("_no_str", "_strs"))
            elif f in (2, 6):  # float, double: precision + pad before units
                code = limit_code[f]
                out[base + f] = Layout(
                    base + f, f, family, f">hhh2x8s{n}{code}", sts + ("precision", "_units") + limits
                )
            else:
                pad = "x" if f == 4 else ""
                code = limit_code[f]
                out[base + f] = Layout(base + f, f, family, f">hh8s{n}{code}{pad}", sts + ("_units",) + limits)
    out[35] = Layout(35, 3, "native", "", ())
    out[36] = Layout(36, 3, "native", "", ())
    out[37] = Layout(37, 0, "stsack", ">hhHH", sts + ("ackt", "acks"))
    out[38] = Layout(38, 0, "native", "", ())
    return out


LAYOUTS: dict[int, Layout] = _build_layouts()


class Metadata:
    """Metadata that came with a value (alarm, timestamp, display/control info).

    Attributes that the requested DBR type does not carry are ``None``.
    ``timestamp`` is POSIX seconds (a float); ``units`` is a str and
    ``enum_strings`` a tuple of str.
    """

    __slots__ = (
        "data_type",
        "status",
        "severity",
        "posixseconds",
        "nanoseconds",
        "units",
        "precision",
        "enum_strings",
        "ackt",
        "acks",
        *_LIMITS8,
    )

    status: int | None
    severity: int | None
    posixseconds: int | None
    nanoseconds: int | None
    units: str | None
    precision: int | None
    enum_strings: tuple[str, ...] | None
    ackt: int | None
    acks: int | None
    upper_disp_limit: float | None
    lower_disp_limit: float | None
    upper_alarm_limit: float | None
    upper_warning_limit: float | None
    lower_warning_limit: float | None
    lower_alarm_limit: float | None
    upper_ctrl_limit: float | None
    lower_ctrl_limit: float | None

    def __init__(self, data_type: ChannelType) -> None:
        self.data_type = data_type
        for name in Metadata.__slots__[1:]:
            setattr(self, name, None)

    @property
    def timestamp(self) -> float | None:
        """POSIX timestamp of the value, or None for types without one."""
        if self.posixseconds is None:
            return None
        return float(self.posixseconds + (self.nanoseconds or 0) * 1e-9)

    def as_dict(self) -> dict[str, Any]:
        """The attributes that are set, as a dict (timestamp included)."""
        out = {k: getattr(self, k) for k in Metadata.__slots__[1:] if getattr(self, k) is not None}
        if self.posixseconds is not None:
            out["timestamp"] = self.timestamp
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"<Metadata {self.data_type.name} {inner}>"


def _cstr(raw: bytes, encoding: str) -> str:
    nul = raw.find(b"\0")
    if nul >= 0:
        raw = raw[:nul]
    return raw.decode(encoding, "replace")


def decode_metadata(layout: Layout, payload: bytes | bytearray | memoryview, encoding: str) -> Metadata:
    """Unpack the metadata block of *payload* laid out as *layout*."""
    md = Metadata(ChannelType(layout.type))
    if layout.meta is None:
        return md
    if len(payload) < layout.meta_size:
        raise ProtocolError(f"{md.data_type.name} payload of {len(payload)} bytes is shorter than its metadata")
    for name, value in zip(layout.fields, layout.meta.unpack_from(payload, 0), strict=True):
        if name == "_secs":
            md.posixseconds = value + EPICS_EPOCH_OFFSET
        elif name == "_nsecs":
            md.nanoseconds = value
        elif name == "_units":
            md.units = _cstr(value, encoding)
        elif name == "_no_str":
            nstr = max(0, min(int(value), MAX_ENUM_STATES))
        elif name == "_strs":
            size = MAX_ENUM_STRING_SIZE
            md.enum_strings = tuple(_cstr(value[i * size : (i + 1) * size], encoding) for i in range(nstr))
        else:
            setattr(md, name, value)
    return md


def decode_value(
    layout: Layout, count: int, payload: bytes | bytearray | memoryview, encoding: str, inplace: bool = False
) -> npt.NDArray[Any] | list[str]:
    """Decode *count* elements that follow the metadata block of *payload*.

    Numeric values come back as a numpy array in native byte order (a fresh,
    writable array); strings as a list of str.  With *inplace* (for a
    writable *payload* nobody else uses) the array is a view of *payload*,
    byte-swapped in place: no copy of a large array.
    """
    scalar = layout.scalar
    if count == 1 and scalar is not None:  # the common monitor case: cheaper than frombuffer + astype
        try:
            field = 3 if layout.type in (35, 36) else layout.field
            return np.array(scalar.unpack_from(payload), dtype=_NATIVE_DTYPES[field])
        except struct.error:
            name = ChannelType(layout.type).name
            raise ProtocolError(f"{name} payload of {len(payload)} bytes is too short") from None
    offset = layout.meta_size
    field = layout.field
    if layout.type in (35, 36):
        field = 3
    size = ELEMENT_SIZE[field] * count
    if len(payload) < offset + size:
        raise ProtocolError(
            f"{ChannelType(layout.type).name} payload of {len(payload)} bytes is too short for {count} elements"
        )
    if field == 0:
        raw = bytes(payload[offset : offset + size])
        return [_cstr(raw[i : i + MAX_STRING_SIZE], encoding) for i in range(0, size, MAX_STRING_SIZE)]
    arr = np.frombuffer(payload, dtype=_VALUE_DTYPES[field], count=count, offset=offset)
    if inplace and arr.flags.writeable:
        if not arr.dtype.isnative:
            arr.byteswap(inplace=True)
        return arr.view(_NATIVE_DTYPES[field])
    return arr.astype(_NATIVE_DTYPES[field])


def payload_size(data_type: int, count: int) -> int:
    """Unpadded size in bytes of *count* elements of *data_type* with metadata."""
    layout = LAYOUTS[data_type]
    field = 3 if data_type in (35, 36) else layout.field
    return layout.meta_size + ELEMENT_SIZE[field] * count


def native_type(data_type: int) -> int:
    """The plain field type (0..6) carried by *data_type*."""
    if data_type in (35, 36):
        return 3
    return LAYOUTS[data_type].field


def promote(native: int, family: str) -> ChannelType:
    """The DBR type of *family* (``'time'``, ``'control'`` ...) for a field type."""
    return ChannelType(FAMILY_OFFSETS[family] + native)


def encode_string(value: str | bytes, encoding: str) -> bytes:
    """Encode one DBR_STRING element (at most 39 bytes plus NUL), NUL padded."""
    raw = value.encode(encoding) if isinstance(value, str) else bytes(value)
    if len(raw) >= MAX_STRING_SIZE:
        raise ValueError(
            f"string of {len(raw)} bytes is too long for DBR_STRING (at most {MAX_STRING_SIZE - 1} bytes)"
        )
    return raw.ljust(MAX_STRING_SIZE, b"\0")


_DOUBLE = struct.Struct(">d")


def encode_values(field: int, data: Any, encoding: str) -> tuple[bytes | memoryview, int]:
    """Encode *data* as elements of plain field type *field* (0..6).

    Returns the unpadded bytes (a byte memoryview for arrays of 64 KiB or
    more, to save a copy) and the element count.

    Raises
    ------
    TypeError, ValueError
        If *data* cannot be represented as that type.
    """
    if field == 0:
        items: Sequence[Any]
        if isinstance(data, (str, bytes, bytearray)):
            items = [data]
        elif isinstance(data, np.ndarray) and data.ndim == 0:
            items = [str(data.item())]
        else:
            try:
                items = list(data)
            except TypeError:
                items = [data]
        parts = []
        for item in items:
            if not isinstance(item, (str, bytes, bytearray)):
                item = str(item.item() if isinstance(item, np.generic) else item)
            parts.append(encode_string(item, encoding))
        return b"".join(parts), len(parts)
    if field == 6 and (type(data) is float or type(data) is int):
        try:  # the scan loop's put of one number: no numpy round trip
            return _DOUBLE.pack(data), 1
        except (OverflowError, struct.error):
            pass  # (the general path says what is wrong)
    dtype = _VALUE_DTYPES[field]
    if field == 4 and isinstance(data, (str, bytes, bytearray)):
        raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
        if not raw.endswith(b"\0"):
            raw += b"\0"
        return raw, len(raw)
    if isinstance(data, (str, bytes)):
        try:
            data = float(data) if field in (2, 6) else int(data)
        except ValueError:
            raise ValueError(f"cannot write {data!r} to a {ChannelType(field).name} channel") from None
    try:
        arr = np.asarray(data)
        if arr.dtype.kind in "USO":
            arr = arr.astype(np.float64 if field in (2, 6) else np.int64)
        if arr.dtype.kind == "c":
            raise TypeError("complex values cannot be written")
        if arr.size and not np.can_cast(arr.dtype, dtype, "safe"):
            _check_range(field, arr)
        out = np.ascontiguousarray(arr.reshape(-1), dtype=dtype) if arr.dtype != dtype else arr.reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        cls = TypeError if isinstance(exc, TypeError) else ValueError
        raise cls(f"cannot write {data!r} to a {ChannelType(field).name} channel: {exc}") from None
    if out.nbytes >= 65536:
        # Large arrays: hand out a byte view of the (already converted) array
        # instead of copying it once more into a bytes object.
        return np.ascontiguousarray(out).data.cast("B"), int(out.size)
    return out.tobytes(), int(out.size)


#: Values accepted for the integer field types.  CHAR also takes -128..-1 (sent
#: as two's complement), since DBF_CHAR records are signed.
_INT_RANGES = {1: (-32768, 32767), 3: (0, 65535), 4: (-128, 255), 5: (-(2**31), 2**31 - 1)}


def _check_range(field: int, arr: npt.NDArray[Any]) -> None:
    """Raise ValueError if a narrowing cast of *arr* to *field* would change values."""
    if field in (2, 6):
        finite = arr[np.isfinite(arr)]
        if finite.size and np.abs(finite).max() > np.finfo(_VALUE_DTYPES[field]).max:
            raise ValueError(f"value out of range for {ChannelType(field).name}")
        return
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError("non-finite value for an integer channel")
    lo, hi = _INT_RANGES[field]
    if arr.min() < lo or arr.max() > hi:
        raise ValueError(f"value out of range {lo}..{hi}")
