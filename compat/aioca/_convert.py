"""Datatype and format handling: what to ask the server for, and how to turn the answer into an aioca value.

:func:`plan_read` maps aioca's ``datatype``/``format`` arguments and the
channel's native type to a DBR request code and a converter from caclient's
:class:`~caclient.ReadResponse` to an augmented value.  :func:`plan_write`
converts a value for ``caput`` with numpy, as aioca does, so that a value
that cannot be converted fails before anything is sent.  Pure functions.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._constants import (
    BASIC_DBR_TYPES,
    CHAR_AS_TEXT,
    CTRL_OFFSET,
    DBR_CHAR,
    DBR_CHAR_BYTES,
    DBR_CHAR_STR,
    DBR_CHAR_UNICODE,
    DBR_CLASS_NAME,
    DBR_DOUBLE,
    DBR_ENUM,
    DBR_ENUM_STR,
    DBR_FLOAT,
    DBR_LONG,
    DBR_PUT_ACKS,
    DBR_PUT_ACKT,
    DBR_SHORT,
    DBR_STRING,
    DBR_STSACK_STRING,
    DBR_TIME_STRING,
    FORMAT_CTRL,
    FORMAT_RAW,
    FORMAT_TIME,
    LIMIT_FIELDS,
    TIME_OFFSET,
)
from ._values import SCALAR_CLASS, InvalidDatatype, ca_array, ca_bytes, ca_str

#: numpy type characters accepted as a datatype, and the DBR type each means.
_NUMPY_CHAR_TO_DBR = {
    "b": DBR_CHAR,
    "h": DBR_SHORT,
    "i": DBR_LONG,
    "f": DBR_FLOAT,
    "d": DBR_DOUBLE,
    "S": DBR_STRING,
    "?": DBR_CHAR,
    "B": DBR_CHAR,
    "H": DBR_SHORT,
    "I": DBR_LONG,
    "U": DBR_STRING,
    "l": DBR_LONG,
    "L": DBR_LONG,
}

#: numpy dtype of the elements of each plain DBR type.
_DTYPES: dict[int, Any] = {
    DBR_STRING: np.dtype("S40"),
    DBR_SHORT: np.dtype(np.int16),
    DBR_FLOAT: np.dtype(np.float32),
    DBR_ENUM: np.dtype(np.uint16),
    DBR_CHAR: np.dtype(np.uint8),
    DBR_LONG: np.dtype(np.int32),
    DBR_DOUBLE: np.dtype(np.float64),
}


def dbr_of_python_type(datatype: Any) -> int:
    """The DBR type meant by a Python type or numpy dtype *datatype*.

    Raises
    ------
    InvalidDatatype
        If Channel Access has no such type.
    """
    try:
        return _NUMPY_CHAR_TO_DBR[np.dtype(datatype).char]
    except Exception as exc:
        raise InvalidDatatype(f'Datatype "{datatype}" not supported for channel access') from exc


def request_codes(datatype: Any, format: int) -> tuple[int, int]:
    """``(DBR code to request, plain DBR code it carries)`` for *datatype* and *format*."""
    if datatype not in BASIC_DBR_TYPES:
        if datatype in CHAR_AS_TEXT:
            datatype = DBR_CHAR
        elif datatype in (DBR_STSACK_STRING, DBR_CLASS_NAME):
            return datatype, datatype  # (these have no format variants)
        else:
            datatype = dbr_of_python_type(datatype)
    if format == FORMAT_RAW:
        return datatype, datatype
    if format == FORMAT_TIME:
        return datatype + TIME_OFFSET, datatype
    if format == FORMAT_CTRL:
        # There is no control form of a string: the time form is the richest.
        return (DBR_TIME_STRING if datatype == DBR_STRING else datatype + CTRL_OFFSET), datatype
    raise InvalidDatatype("Format not recognised")


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class ReadPlan:
    """How to read one channel: the DBR code to ask for and the converter of the answer."""

    dbrcode: int
    convert: Converter


def plan_read(name: str, native: int, element_count: int, datatype: Any, format: int) -> ReadPlan:
    """Work out the request for a caget or camonitor of *name*.

    Parameters
    ----------
    name : str
        The PV name (a name ending in ``$`` reads a CHAR array as a string).
    native : int
        The channel's native (plain) DBR type.
    element_count : int
        The channel's native element count: 1 gives scalars, more gives arrays.
    datatype, format
        aioca's arguments.
    """
    if datatype is None:
        datatype = native
        if native == DBR_CHAR and name.endswith("$"):
            datatype = DBR_CHAR_STR
    elif datatype == DBR_ENUM_STR:
        datatype = DBR_STRING if native == DBR_ENUM else native
    dbrcode, base = request_codes(datatype, format)
    field = _field_of(dbrcode)
    value_of: Callable[[Any], Any]
    if field == DBR_CHAR and datatype in CHAR_AS_TEXT:
        value_of = _data(_CHAR_TEXT[datatype])
    elif field == DBR_STRING:
        if isinstance(datatype, type) and issubclass(datatype, bytes):
            value_of = _raw_strings(dbrcode, _bytes_scalar if element_count == 1 else _bytes_array)
        elif isinstance(datatype, type) and issubclass(datatype, str):
            value_of = _raw_strings(dbrcode, _strict_scalar if element_count == 1 else _strict_array)
        else:
            value_of = _data(_str_scalar if element_count == 1 else _str_array)
    else:
        value_of = _data(_numeric_scalar(field) if element_count == 1 else _numeric_array(field))
    extras = _EXTRAS.get(dbrcode)

    def convert(response: Any) -> Any:
        value: Any = value_of(response)
        if extras is not None:
            extras(value, response.metadata)
        value.name = name
        value.ok = True
        value.element_count = element_count
        value.datatype = base
        return value

    return ReadPlan(dbrcode, convert)


def _field_of(dbrcode: int) -> int:
    if dbrcode in (DBR_STSACK_STRING, DBR_CLASS_NAME):
        return DBR_STRING
    if dbrcode >= CTRL_OFFSET:
        return dbrcode - CTRL_OFFSET
    if dbrcode >= TIME_OFFSET:
        return dbrcode - TIME_OFFSET
    return dbrcode


# -- value converters ------------------------------------------------------------------------------
def _char_bytes(data: Any) -> bytes:
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]


_CHAR_TEXT: dict[int, Callable[[Any], Any]] = {
    DBR_CHAR_STR: lambda data: ca_str(_char_bytes(data).decode("utf-8", "replace")),
    DBR_CHAR_BYTES: lambda data: ca_bytes(_char_bytes(data)),
    DBR_CHAR_UNICODE: lambda data: ca_str(_char_bytes(data).decode("utf-8")),
}


def _data(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A converter of the response's decoded ``.data``."""
    return lambda response: convert(response.data)


#: Bytes of metadata before the strings, in the DBR types that carry strings.
_STRING_OFFSETS = {DBR_STRING: 0, DBR_TIME_STRING: 12, DBR_STSACK_STRING: 8, DBR_CLASS_NAME: 0}


def _raw_strings(dbrcode: int, convert: Callable[[list[bytes]], Any]) -> Callable[[Any], Any]:
    """A converter of the response's strings as the server sent them (bytes up to each NUL)."""
    offset = _STRING_OFFSETS[dbrcode]

    def raw(response: Any) -> Any:
        payload = bytes(response)
        ends = range(offset, offset + 40 * response.data_count, 40)
        return convert([payload[i : i + 40].split(b"\0", 1)[0] for i in ends])

    return raw


def _str_scalar(data: Any) -> ca_str:
    return ca_str(data[0] if len(data) else "")


def _bytes_scalar(items: list[bytes]) -> ca_bytes:
    return ca_bytes(items[0] if items else b"")


def _strict_scalar(items: list[bytes]) -> ca_str:
    return ca_str(items[0].decode("utf-8") if items else "")


def _strict_array(items: list[bytes]) -> ca_array:
    return _text_array([s.decode("utf-8") for s in items], "U")


def _text_array(items: list[Any], kind: str) -> ca_array:
    # A dtype as wide as the longest item (numpy cannot make a zero-width one).
    width = max((len(s) for s in items), default=1) if items else 1
    out = np.empty((len(items),), dtype=f"{kind}{width}")
    for i, item in enumerate(items):
        out[i] = item
    return out.view(ca_array)


def _str_array(data: Any) -> ca_array:
    return _text_array(list(data), "U")


def _bytes_array(items: list[bytes]) -> ca_array:
    return _text_array(items, "S")


def _numeric_scalar(field: int) -> Callable[[Any], Any]:
    cls = SCALAR_CLASS[field]
    base = float if cls.__mro__[1] is float else int

    def convert(data: Any) -> Any:
        return cls(base(data[0]) if len(data) else 0)

    return convert


def _numeric_array(field: int) -> Callable[[Any], Any]:
    dtype = _DTYPES[field]

    def convert(data: Any) -> ca_array:
        return np.asarray(data, dtype=dtype).view(ca_array)

    return convert


# -- augmented attributes by DBR code --------------------------------------------------------------
def _alarm(value: Any, md: Any) -> None:
    value.status = md.status
    value.severity = md.severity


def _time(value: Any, md: Any) -> None:
    _alarm(value, md)
    secs, nsec = md.posixseconds, md.nanoseconds
    value.raw_stamp = (secs, nsec)
    value.timestamp = round(secs + nsec * 1e-9, 6)


def _ctrl(precision: bool) -> Callable[[Any, Any], None]:
    def extras(value: Any, md: Any) -> None:
        _alarm(value, md)
        value.units = md.units
        for limit in LIMIT_FIELDS:
            setattr(value, limit, getattr(md, limit))
        if precision:
            value.precision = md.precision

    return extras


def _ctrl_enum(value: Any, md: Any) -> None:
    _alarm(value, md)
    value.enums = list(md.enum_strings or ())


def _stsack(value: Any, md: Any) -> None:
    _alarm(value, md)
    value.ackt = md.ackt
    value.acks = md.acks


_EXTRAS: dict[int, Callable[[Any, Any], None]] = {
    **{code + TIME_OFFSET: _time for code in BASIC_DBR_TYPES},
    **{code + CTRL_OFFSET: _ctrl(code in (DBR_FLOAT, DBR_DOUBLE)) for code in BASIC_DBR_TYPES},
    DBR_ENUM + CTRL_OFFSET: _ctrl_enum,
    DBR_STSACK_STRING: _stsack,
}


# -- writes ----------------------------------------------------------------------------------------
def _require(value: Any, dtype: Any) -> Any:
    out = np.require(value, requirements="C", dtype=dtype)
    if out.shape == ():
        out = out.reshape((1,))
    if out.ndim != 1:
        raise AssertionError("Can't put multidimensional arrays!")
    return out


def plan_write(name: str, native: int, datatype: Any, value: Any) -> tuple[int, Any, int]:
    """Convert *value* for a caput to *name*: ``(DBR type, data for caclient, element count)``.

    Raises
    ------
    TypeError, ValueError, OverflowError, AssertionError, InvalidDatatype
        The value cannot be converted (nothing has been sent).
    """
    if datatype is None:
        if isinstance(value, (str, bytes)):
            datatype = DBR_STRING  # (the server converts text to the field's type)
        else:
            datatype = native
            if native == DBR_CHAR and name.endswith("$"):
                datatype = DBR_CHAR_STR
    if datatype == DBR_CHAR_STR:
        chars = np.frombuffer(value.encode(), dtype=np.uint8)
        return DBR_CHAR, chars, len(chars)
    if datatype in (DBR_PUT_ACKT, DBR_PUT_ACKS):
        return int(datatype), ctypes.c_int32(value).value, 1
    if datatype not in BASIC_DBR_TYPES:
        datatype = dbr_of_python_type(datatype)
    if datatype == DBR_STRING:
        try:
            strings = _require(value, _DTYPES[DBR_STRING])
        except UnicodeEncodeError:
            texts = _require(value, None)
            strings = np.empty(texts.shape, _DTYPES[DBR_STRING])
            for i, text in enumerate(texts):
                strings[i] = text.encode("UTF-8")
        return DBR_STRING, [bytes(s) for s in strings], len(strings)
    data = _require(value, _DTYPES[datatype])
    return int(datatype), data, len(data)
