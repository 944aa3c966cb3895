"""DBR types: identities, binary layouts, and the decode/encode codec.

Pure functions and immutable tables only; safe to call from any thread.

The layouts follow ``db_access.h`` (network byte order, the value after a
per-type metadata block with its padding).  They are written out here with
:mod:`struct` so that decoding a monitor update costs a few ``unpack_from``
calls; the unit tests check every layout against caproto's ctypes structures.
"""

from __future__ import annotations

import datetime
import struct
import sys
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final

from ._errors import ProtocolError
from ._lazy import imported

if TYPE_CHECKING:
    import numpy.typing as npt

# numpy is imported inside the functions that build arrays, not here: a
# one-shot scalar read or write never needs it (see caclient._lazy).

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

#: numpy dtype strings of the numeric field types: on the wire, and in native byte order.
_VALUE_DTYPES = {1: ">i2", 2: ">f4", 3: ">u2", 4: "u1", 5: ">i4", 6: ">f8"}
_NATIVE_DTYPES = {1: "i2", 2: "f4", 3: "u2", 4: "u1", 5: "i4", 6: "f8"}
#: numpy scalar type names of the numeric field types (``getattr(numpy, name)``: faster than a dtype string).
_NATIVE_SCALARS = {1: "int16", 2: "float32", 3: "uint16", 4: "uint8", 5: "int32", 6: "float64"}
#: struct format letters of the numeric field types.
_STRUCT_CODES = {1: "h", 2: "f", 3: "H", 4: "B", 5: "i", 6: "d"}
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
        code = _STRUCT_CODES.get(3 if type_ in (35, 36) else field)
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

    @property
    def stamp(self) -> TimeStamp | None:
        """The time stamp as caproto shows it (``.as_datetime()``), or None for types without one."""
        if self.posixseconds is None:
            return None
        return TimeStamp(self.posixseconds - EPICS_EPOCH, self.nanoseconds or 0)

    def as_dict(self) -> dict[str, Any]:
        """The attributes that are set, as a dict (timestamp included)."""
        out = {k: getattr(self, k) for k in Metadata.__slots__[1:] if getattr(self, k) is not None}
        if self.posixseconds is not None:
            out["timestamp"] = self.timestamp
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"<Metadata {self.data_type.name} {inner}>"


#: POSIX time of the EPICS epoch (1990-01-01 00:00 UTC).
EPICS_EPOCH = 631152000


class TimeStamp:
    """An EPICS time stamp: seconds since 1990 and nanoseconds (caproto's ``metadata.stamp``)."""

    __slots__ = ("secondsSinceEpoch", "nanoSeconds")

    def __init__(self, seconds: int, nanoseconds: int) -> None:
        self.secondsSinceEpoch = seconds
        self.nanoSeconds = nanoseconds

    @property
    def timestamp(self) -> float:
        """POSIX seconds."""
        return self.secondsSinceEpoch + EPICS_EPOCH + self.nanoSeconds * 1e-9

    def as_datetime(self) -> datetime.datetime:
        """The time stamp as a local-time ``datetime`` (as caproto gives it)."""
        return datetime.datetime.fromtimestamp(self.timestamp)

    def __iter__(self) -> Iterator[int]:
        return iter((self.secondsSinceEpoch, self.nanoSeconds))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (TimeStamp, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"TimeStamp(secondsSinceEpoch={self.secondsSinceEpoch}, nanoSeconds={self.nanoSeconds})"


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
        nmp: Any = imported("numpy")  # (never a half-imported numpy: see caclient._lazy)
        try:
            field = 3 if layout.type in (35, 36) else layout.field
            one: npt.NDArray[Any] = nmp.array(scalar.unpack_from(payload), dtype=getattr(nmp, _NATIVE_SCALARS[field]))
            return one
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
    import numpy as np

    if type(payload) is memoryview and payload.format == NATIVE_ORDER_FORMAT:
        return np.frombuffer(payload, dtype=_NATIVE_DTYPES[field], count=count, offset=offset)  # (swapped already)
    arr = np.frombuffer(payload, dtype=_VALUE_DTYPES[field], count=count, offset=offset)
    if inplace and arr.flags.writeable:
        native = arr.view(_NATIVE_DTYPES[field])
        if not arr.dtype.isnative:
            native[...] = arr  # swapped where it is (see CircuitProtocol._swap_received)
        return native
    return arr.astype(_NATIVE_DTYPES[field])


#: The memoryview format of a large payload whose values are already in native byte
#: order: :class:`~caclient._protocol.CircuitProtocol` swaps them as they arrive
#: (while the rest is still on the wire, and while the bytes are in the CPU's
#: cache) and hands the payload over as ``memoryview.cast(NATIVE_ORDER_FORMAT)``
#: instead of the plain ``'B'`` bytes, so the decoder does not swap them again.
NATIVE_ORDER_FORMAT: Final = "c"


def swap_plan(data_type: int, count: int, size: int) -> tuple[int, int] | None:
    """Where the values of a *size*-byte payload start and their item size, if they need a byte swap.

    None for strings and chars (no byte order), for a big-endian host
    (network order is native), for fewer than two elements, and for a
    payload too short for *count* elements (the decoder reports that).
    """
    layout = LAYOUTS.get(data_type)
    if layout is None or sys.byteorder == "big":
        return None
    field = 3 if data_type in (35, 36) else layout.field
    itemsize = ELEMENT_SIZE.get(field, 1)
    if field in (0, 4) or itemsize < 2 or count < 2 or layout.meta_size + itemsize * count > size:
        return None
    return layout.meta_size, itemsize


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


def decode_list(layout: Layout, count: int, payload: bytes | bytearray | memoryview, encoding: str) -> list[Any]:
    """Decode *count* elements of *payload* as a list of Python ``int``/``float``/``str``.

    Like :func:`decode_value` (same checks, same values) but with
    :mod:`struct` only: no numpy import and no array object, which is what a
    one-shot scalar read wants.
    """
    scalar = layout.scalar
    if count == 1 and scalar is not None:
        try:
            return list(scalar.unpack_from(payload))
        except struct.error:
            name = ChannelType(layout.type).name
            raise ProtocolError(f"{name} payload of {len(payload)} bytes is too short") from None
    field = 3 if layout.type in (35, 36) else layout.field
    if field == 0:
        return decode_value(layout, count, payload, encoding)  # type: ignore[return-value]
    if type(payload) is memoryview and payload.format == NATIVE_ORDER_FORMAT:
        values: list[Any] = decode_value(layout, count, payload, encoding).tolist()  # type: ignore[union-attr]
        return values
    offset = layout.meta_size
    if len(payload) < offset + ELEMENT_SIZE[field] * count:
        raise ProtocolError(
            f"{ChannelType(layout.type).name} payload of {len(payload)} bytes is too short for {count} elements"
        )
    return list(struct.unpack_from(f">{count}{_STRUCT_CODES[field]}", payload, offset))


def encode_string(value: str | bytes | bytearray, encoding: str) -> bytes:
    """Encode one DBR_STRING element (at most 39 bytes plus NUL), NUL padded."""
    raw = value.encode(encoding) if isinstance(value, str) else bytes(value)
    if len(raw) >= MAX_STRING_SIZE:
        raise ValueError(f"string of {len(raw)} bytes is too long for DBR_STRING (at most {MAX_STRING_SIZE - 1} bytes)")
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
            return encode_string(data, encoding), 1
        if type(data) in (list, tuple) and all(isinstance(item, (str, bytes, bytearray)) for item in data):
            return b"".join([encode_string(item, encoding) for item in data]), len(data)  # (no numpy import)
        import numpy as np

        if isinstance(data, np.ndarray) and data.ndim == 0:
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
    one = data[0] if type(data) in (list, tuple) and len(data) == 1 else data
    if type(one) in (float, int, bool):
        packed = _pack_scalar(field, one)
        if packed is not None:
            return packed, 1
    import numpy as np

    dtype = _VALUE_DTYPES[field]
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


def _pack_scalar(field: int, value: float) -> bytes | None:
    """One Python number (int, float or bool) packed as *field* (1..6) with :mod:`struct`, or None.

    None means "not certainly representable": the caller then takes the numpy
    path, which raises the error (out of range, not finite) or handles the
    edge case.  Where this returns bytes they equal what the numpy path
    gives (the unit tests compare both): floats are truncated towards zero
    for integer fields, ints are rounded to nearest for FLOAT.
    """
    if type(value) is float:
        if field in (2, 6):
            if field == 2 and abs(value) > _FLOAT32_MAX and value == value and abs(value) != _INF:
                return None
            return _SCALAR_PACK[field].pack(value)
        if not (value == value and abs(value) != _INF):
            return None
        lo, hi = _INT_RANGES[field]
        if not (lo <= value <= hi) or (field == 4 and value < 0):
            return None
        return _SCALAR_PACK[field].pack(int(value))
    ivalue = int(value)
    if field in (2, 6):
        if abs(ivalue) > 2**53:
            return None
        return _SCALAR_PACK[field].pack(float(ivalue))
    lo, hi = _INT_RANGES[field]
    if not lo <= ivalue <= hi:
        return None
    return _SCALAR_PACK[field].pack(ivalue & 0xFF if field == 4 else ivalue)


_SCALAR_PACK = {f: struct.Struct(c) for f, c in ((1, ">h"), (2, ">f"), (3, ">H"), (4, "B"), (5, ">i"), (6, ">d"))}
_FLOAT32_MAX = 3.4028234663852886e38
_INF = float("inf")


def _check_range(field: int, arr: npt.NDArray[Any]) -> None:
    """Raise ValueError if a narrowing cast of *arr* to *field* would change values."""
    import numpy as np

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
