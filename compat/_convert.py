"""Value conversions between caclient responses and pyepics' Python values.

Pure functions, safe on any thread.  Each one states the pyepics rule it
follows; where compat deliberately differs the docstring says so (see also
``docs/migrating-from-pyepics.rst``).
"""

from __future__ import annotations

import ctypes
import operator
import struct
import sys
import time
from collections.abc import Sequence
from math import log10
from typing import TYPE_CHECKING, Any

from . import dbr
from ._ca_messages import CASeverityException, ChannelAccessException, message, write
from ._runtime import SETTINGS

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where an array is built, not at import: a scalar caget
# or caput never needs it (see unpack_response).


def is_ndarray(val: Any) -> bool:
    """``isinstance(val, numpy.ndarray)``, without importing numpy (no array exists before it is)."""
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if getattr(np.__spec__, "_initializing", False):  # another thread is importing it: wait for it
        import numpy as np
    return isinstance(val, np.ndarray)


_INT_TYPES = (dbr.INT, dbr.ENUM, dbr.CHAR, dbr.LONG)
_FLOAT_TYPES = (dbr.FLOAT, dbr.DOUBLE)
_TIME_KEYS = ("status", "severity", "timestamp", "posixseconds", "nanoseconds")
_ARRAY_WARNING = "PyEpics Warning:\n     value put() to array PV must be an array or sequence"


#: DBR_TIME_* scalars laid out as (status, severity, seconds, nanoseconds, value),
#: so that a monitor update of a scalar is one unpack.
TIME_SCALARS = {
    dbr.TIME_SHORT: struct.Struct(">hhII2xh"),
    dbr.TIME_FLOAT: struct.Struct(">hhIIf"),
    dbr.TIME_ENUM: struct.Struct(">hhII2xH"),
    dbr.TIME_CHAR: struct.Struct(">hhII3xB"),
    dbr.TIME_LONG: struct.Struct(">hhIIi"),
    dbr.TIME_DOUBLE: struct.Struct(">hhII4xd"),
}


def promote(native: int, form: str) -> int:
    """The DBR type a PV of *form* ('native', 'time' or 'ctrl') reads.

    CTRL_STRING does not exist on the wire as pyepics uses it: a string
    channel read in 'ctrl' form is read as TIME_STRING.
    """
    if form == "ctrl":
        ftype = native + dbr.CTRL_STRING
        return dbr.TIME_STRING if ftype == dbr.CTRL_STRING else ftype
    if form == "time":
        return native + dbr.TIME_STRING
    return native


_TYPE_NAMES = {code: str(dbr.Name(code)).lower() for code in range(dbr.CTRL_DOUBLE + 1)}


def type_name(ftype: int | None) -> str:
    """``'time_double'`` for 20, ``'unknown'`` for None."""
    if ftype is None:
        return "unknown"
    return _TYPE_NAMES.get(ftype) or str(dbr.Name(ftype)).lower()


def unpack(data: Any, ntype: int, nelm: int, count: int | None, as_numpy: bool) -> Any:
    """The Python value of a response's data, as pyepics' ``ca`` layer gives it.

    Parameters
    ----------
    data : numpy.ndarray or list of str
        ``ReadResponse.data``.
    ntype : int
        Native field type (0..6).
    nelm : int
        The channel's element count.
    count : int or None
        Requested element count (None or 0: all that came).
    as_numpy : bool
        Arrays as numpy arrays, else as ctypes arrays (``c_double_Array_N``
        ...), as pyepics's ``ca`` layer gives them.

    Returns
    -------
    The value: a Python ``int``/``float`` for one element of a scalar
    channel, ``str`` for a scalar string channel, a list of str for a string
    array, a numpy array (or ctypes array) for numeric arrays.

    Notes
    -----
    Deliberate difference: a channel with more than one element always gives
    an array (pyepics gives a Python scalar when an array channel currently
    holds one element).
    """
    n = len(data)
    if count:
        n = min(n, count)
    if ntype == dbr.STRING:
        out = [s.rstrip() for s in data[:n]]
        if len(out) == 1 and nelm == 1:
            return out[0]
        return out
    if nelm <= 1 and n == 1:
        return data[0].item()
    arr = data[:n] if n != len(data) else data
    return arr if as_numpy else ctypes_array(arr, ntype)


#: The ctypes element type pyepics's ``ca`` layer gives arrays of each native type in.
CTYPES: dict[int, Any] = {
    dbr.INT: ctypes.c_short,
    dbr.FLOAT: ctypes.c_float,
    dbr.ENUM: ctypes.c_ushort,
    dbr.CHAR: ctypes.c_ubyte,
    dbr.LONG: ctypes.c_int,
    dbr.DOUBLE: ctypes.c_double,
}


def ctypes_array(arr: np.ndarray[Any, Any], ntype: int) -> Any:
    """*arr* as the ctypes array pyepics returns for ``as_numpy=False`` (e.g. ``c_double_Array_4``)."""
    import numpy as np

    ctype = CTYPES[ntype]
    native = np.ascontiguousarray(arr, dtype=np.dtype(ctype))
    return (ctype * len(native)).from_buffer_copy(native.tobytes())


def is_ctypes_array(value: Any) -> bool:
    """True for a ctypes array (what ``as_numpy=False`` reads give)."""
    return isinstance(value, ctypes.Array)


def unpack_response(resp: Any, ntype: int, nelm: int, count: int | None, as_numpy: bool) -> Any:
    """:func:`unpack` of a ``caclient.ReadResponse``; a scalar is decoded without numpy.

    Parameters are those of :func:`unpack`, with the response in place of its data.
    """
    if nelm <= 1 and resp.data_count == 1 and (not count or count >= 1) and ntype != dbr.STRING:
        return resp.tolist()[0]
    return unpack(resp.data, ntype, nelm, count, as_numpy)


def shape_for_get(val: Any, nelm: int, count: int | None, as_numpy: bool) -> Any:
    """What ``PV.get`` makes of a value: arrays as numpy (or list), cut to *count*.

    pyepics turns every array value into ``numpy.asarray(value)`` (so a
    string array becomes a numpy ``<U`` array, and an empty one a float64
    array) or, with ``as_numpy=False``, a numpy value into a list (a ctypes
    array from a read stays one, and cut to *count* becomes a list).
    """
    if nelm <= 1 or val is None:
        return val
    import numpy as np

    if not isinstance(val, (np.ndarray, list, tuple, ctypes.Array)):
        val = [val]
    if as_numpy and not isinstance(val, np.ndarray):
        val = np.asarray(val)
    elif not as_numpy and isinstance(val, np.ndarray):
        val = val.tolist()
    if count is not None and count < len(val):
        val = val[:count]
    return val


def metadata(md: Any, ftype: int) -> dict[str, Any]:
    """The metadata dict pyepics builds from a TIME or CTRL response.

    Parameters
    ----------
    md : caclient.Metadata
    ftype : int
        The DBR type that was read.
    """
    out: dict[str, Any] = {}
    if ftype >= dbr.CTRL_STRING:
        ntype = dbr.native_type(ftype)
        for key in dbr.ctrl_limits:
            value = getattr(md, key)
            if value is not None:
                if ntype == dbr.CHAR and value > 127:
                    value -= 256  # pyepics reads DBR_CTRL_CHAR limits as signed bytes
                out[key] = value
        if md.precision is not None:
            out["precision"] = md.precision
        if md.units is not None:
            out["units"] = md.units
        out["status"] = md.status
        out["severity"] = md.severity
        if md.enum_strings:
            out["enum_strs"] = md.enum_strings
    elif ftype >= dbr.TIME_STRING:
        secs = md.posixseconds
        nsec = md.nanoseconds
        out["status"] = md.status
        out["severity"] = md.severity
        out["timestamp"] = float(secs) + 1.0e-6 * int(1.0e-3 * nsec)
        out["posixseconds"] = float(secs)
        out["nanoseconds"] = nsec
    return out


def char_text(val: Any) -> str:
    """The text a CHAR value holds: its bytes up to the first NUL, as latin-1 (pyepics' rule).

    *val* is a numpy array, a ctypes ``c_ubyte`` array (from an
    ``as_numpy=False`` read), a list or tuple of ints, or one int.  The one
    place compat turns CHAR data into text (:func:`char_value` and
    :func:`string_for_many` strip it their own way).

    Raises
    ------
    ValueError, TypeError
        An element that is not a byte.
    """
    if is_ndarray(val):
        raw: bytes = val.astype("u1", copy=False).tobytes()
    elif isinstance(val, (ctypes.Array, list, tuple)):
        raw = bytes(val)
    else:
        raw = bytes((val,))
    nul = raw.find(b"\0")
    return (raw[:nul] if nul >= 0 else raw).decode("latin-1")


def char_value(
    val: Any,
    ntype: int,
    ftype: int | None,
    count: int | None,
    precision: Any,
    enum_strs: Any,
    force_long_string: bool = False,
) -> Any:
    """pyepics' string form of a value (``PV.char_value``).

    * STRING: the value itself (a list for string arrays);
    * CHAR arrays: text up to the first NUL, right-stripped (only below
      ``ca.AUTOMONITOR_MAXLENGTH`` elements unless *force_long_string*);
    * more than one element: ``'<array size=N, type=time_double>'``;
    * FLOAT/DOUBLE: ``'%.{PREC}f'``, or ``'%.{PREC}g'`` when
      ``|log10(|v|)| > 4``; ``str(v)`` when that fails (no precision yet);
    * ENUM: the state string, else ``str(v)``;
    * anything else: ``repr(v)``.
    """
    if val is None:
        return "None"
    if ntype == dbr.STRING:
        return val
    n = count if count is not None else 1
    if ntype == dbr.CHAR and (n < SETTINGS.AUTOMONITOR_MAXLENGTH or force_long_string):
        try:
            return char_text(val).rstrip()
        except (ValueError, TypeError):
            return ""
    if is_ndarray(val) and val.size == 1 and n <= 1:
        val = val[0].item()
    if n > 1:
        try:
            length = len(val)
        except TypeError:
            length = 1
        return f"<array size={length}, type={type_name(ftype)}>"
    if ntype in _FLOAT_TYPES:
        if precision is None:
            return str(val)  # (what the formatting below gives, without raising first)
        try:
            fmt = "%%.%dg" if 4 < abs(int(log10(abs(val + 1.0e-9)))) else "%%.%df"
            return (fmt % precision) % val
        except (ValueError, TypeError, ArithmeticError):
            return str(val)
    if ntype == dbr.ENUM:
        try:
            return enum_strs[val]
        except (TypeError, KeyError, IndexError):
            return str(val)
    return repr(val)


def string_for_many(val: Any, ntype: int, nelm: int, enum_strs: Sequence[str] | None) -> Any:
    """The ``as_string`` form :func:`compat.caget_many` gives (pyepics' ``ca`` rule).

    CHAR arrays as stripped text, an enum's state string, ``'<array
    count=NELM, type=NATIVE>'`` for other arrays, ``str(v)`` otherwise (no
    precision formatting).  An enum value without a state string gives
    ``str(v)`` (pyepics raises IndexError).
    """
    if ntype == dbr.CHAR and nelm < SETTINGS.AUTOMONITOR_MAXLENGTH:
        return char_text(val).strip()
    if ntype == dbr.ENUM and nelm == 1:
        try:
            return str(enum_strs[val])  # type: ignore[index]
        except (TypeError, IndexError):
            return str(val)
    if nelm > 1:
        return f"<array count={nelm}, type={ntype}>"
    return str(val)


def encode_put(value: Any, ntype: int, nelm: int, encoding: str) -> tuple[Any, int]:
    """Convert a value for a put the way pyepics' ``ca.put`` does.

    Returns
    -------
    (data, count)
        Data for ``caclient.PV.write(data, data_type=ntype)`` and the number
        of elements to send.

    Raises
    ------
    TypeError, ValueError
        As pyepics: a non-numeric string for a number, a scalar for an array,
        a string of more than 40 bytes...
    CASeverityException
        A string of exactly 40 bytes (libca's 'Invalid string').
    ChannelAccessException
        Array data that cannot be converted.

    Notes
    -----
    Deliberate differences: an integer outside the field's range raises
    ValueError (pyepics silently writes the wrapped-around value); text for
    a CHAR array is sent as its encoded bytes plus a NUL (pyepics replaces
    non-ASCII characters).
    """
    count = nelm
    if isinstance(value, str):
        value = value.encode(encoding)
    if nelm > 1:
        if ntype == dbr.STRING and isinstance(value, bytes):
            count = 1
        else:
            try:
                count = min(len(value), nelm) or nelm
            except TypeError:
                write(_ARRAY_WARNING)
        if ntype == dbr.CHAR and isinstance(value, bytes):
            count = min(count + 1, nelm)

    if ntype == dbr.STRING:
        items: list[bytes]
        if isinstance(value, bytes):
            items = [value]
        else:
            items = [str(value[i]).encode(encoding) for i in range(min(count, len(value)))]
        for item in items:
            if len(item) > dbr.MAX_STRING_SIZE:
                raise ValueError("byte string too long")
            if len(item) == dbr.MAX_STRING_SIZE:
                raise CASeverityException("put", message(186))
        items.extend([b""] * (count - len(items)))
        return items, count

    if nelm == 1:
        if ntype == dbr.CHAR and isinstance(value, bytes):
            return [value[0] if value else 0], 1
        return [_scalar(value, ntype)], 1

    if isinstance(value, bytes):
        # text to a CHAR array goes with its NUL; bytes to a number array
        # are taken as small numbers (as pyepics does)
        value = [*value, 0] if ntype == dbr.CHAR else list(value)
    try:
        nuser = len(value)
    except TypeError:
        raise TypeError(f"object of type '{type(value).__name__}' has no len()") from None
    import numpy as np

    dtype = dbr.NP_Map[ntype]
    if nuser == 0:
        return np.zeros(count, dtype=dtype), count
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, IndexError):
        raise ChannelAccessException(f"cannot put array data to PV of type '{value!r}'") from None
    arr = arr.reshape(-1)[:count]
    kind = arr.dtype.kind
    if ntype in _FLOAT_TYPES:
        if kind not in "biuf":
            raise TypeError(f"must be real number, not {_elem_type(arr)}")
    elif kind == "f":
        raise TypeError("'float' object cannot be interpreted as an integer")
    elif kind not in "biu":
        raise TypeError(f"an integer is required (got type {_elem_type(arr)})")
    return arr, len(arr)


def _elem_type(arr: np.ndarray[Any, Any]) -> str:
    kind = arr.dtype.kind
    return {"U": "str", "S": "bytes", "O": "object", "c": "complex"}.get(kind, str(arr.dtype))


def _scalar(value: Any, ntype: int) -> Any:
    if ntype in _FLOAT_TYPES:
        return float(value)
    if isinstance(value, bytes):
        return int(value, base=0)
    try:
        return operator.index(value)
    except TypeError:
        return int(value)


def fmt_time(tstamp: float | None = None) -> str:
    """Format a POSIX time (default: now) as local ``'YYYY-mm-dd HH:MM:SS.fffff'``."""
    if tstamp is None:
        tstamp = time.time()
    whole, frac = divmod(tstamp, 1)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(whole))}.{round(1.0e5 * frac):05d}"
