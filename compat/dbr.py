"""DBR type codes and helpers, as ``epics.dbr`` names them.

Plain constants and pure functions only.  pyepics' ctypes structures
(``time_double``, ``ctrl_enum`` ...) describe libca's memory layout and have
no use without libca, so they are not provided; everything else in
``epics.dbr`` that a script reads is here with the same value.  The type
codes, subscription masks and control-limit names are taken from caclient's
public API (:class:`caclient.ChannelType`, ``caclient.DBE_*``,
:class:`caclient.Metadata`) rather than written out again.
"""

from __future__ import annotations

import enum
from typing import Any

# The subscription masks, re-exported as epics.dbr has them.
from caclient import DBE_ALARM as DBE_ALARM
from caclient import DBE_LOG as DBE_LOG
from caclient import DBE_PROPERTY as DBE_PROPERTY
from caclient import DBE_VALUE as DBE_VALUE
from caclient import ChannelType as _ChannelType
from caclient import Metadata as _Metadata

# -- status and state codes ---------------------------------------------------------
ECA_NORMAL = 1
ECA_TIMEOUT = 80
ECA_IODONE = 339
ECA_ISATTACHED = 424
ECA_BADCHID = 410

CS_CONN = 2
CS_NEVER_SEARCH = 4
OP_CONN_UP = 6
OP_CONN_DOWN = 7

# -- DBR type codes: caclient's ChannelType as plain ints ------------------------------
STRING = int(_ChannelType.STRING)
INT = int(_ChannelType.INT)
SHORT = int(_ChannelType.SHORT)
FLOAT = int(_ChannelType.FLOAT)
ENUM = int(_ChannelType.ENUM)
CHAR = int(_ChannelType.CHAR)
LONG = int(_ChannelType.LONG)
DOUBLE = int(_ChannelType.DOUBLE)

# Promoted types (there are no STS_* or GR_* names in pyepics).
TIME_STRING = int(_ChannelType.TIME_STRING)
TIME_INT = int(_ChannelType.TIME_INT)
TIME_SHORT = int(_ChannelType.TIME_SHORT)
TIME_FLOAT = int(_ChannelType.TIME_FLOAT)
TIME_ENUM = int(_ChannelType.TIME_ENUM)
TIME_CHAR = int(_ChannelType.TIME_CHAR)
TIME_LONG = int(_ChannelType.TIME_LONG)
TIME_DOUBLE = int(_ChannelType.TIME_DOUBLE)

CTRL_STRING = int(_ChannelType.CTRL_STRING)
CTRL_INT = int(_ChannelType.CTRL_INT)
CTRL_SHORT = int(_ChannelType.CTRL_SHORT)
CTRL_FLOAT = int(_ChannelType.CTRL_FLOAT)
CTRL_ENUM = int(_ChannelType.CTRL_ENUM)
CTRL_CHAR = int(_ChannelType.CTRL_CHAR)
CTRL_LONG = int(_ChannelType.CTRL_LONG)
CTRL_DOUBLE = int(_ChannelType.CTRL_DOUBLE)

PUT_ACKT = int(_ChannelType.PUT_ACKT)
PUT_ACKS = int(_ChannelType.PUT_ACKS)
STSACK_STRING = int(_ChannelType.STSACK_STRING)
CLASS_NAME = int(_ChannelType.CLASS_NAME)

# -- sizes ------------------------------------------------------------------------------
MAX_STRING_SIZE = 40
MAX_UNITS_SIZE = 8
MAX_ENUM_STRING_SIZE = 26
MAX_ENUMS = 16

#: Seconds from the POSIX epoch to the EPICS epoch (1990-01-01 UTC), as a float.
EPICS2UNIX_EPOCH = 631152000.0

#: The eight control limits, in the order db_access.h lays them out (as caclient's Metadata does).
ctrl_limits = tuple(name for name in _Metadata.__slots__ if name.endswith("_limit"))


def __getattr__(name: str) -> Any:
    # NP_Map (numpy's scalar type of each numeric native type) is built on
    # first use, so that importing compat does not import numpy.
    if name == "NP_Map":
        import numpy as np

        return {INT: np.int16, FLOAT: np.float32, ENUM: np.uint16, CHAR: np.uint8, LONG: np.int32, DOUBLE: np.float64}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_NAMES = {
    STRING: "STRING",
    INT: "INT",
    FLOAT: "FLOAT",
    ENUM: "ENUM",
    CHAR: "CHAR",
    LONG: "LONG",
    DOUBLE: "DOUBLE",
    TIME_STRING: "TIME_STRING",
    TIME_SHORT: "TIME_SHORT",
    TIME_FLOAT: "TIME_FLOAT",
    TIME_ENUM: "TIME_ENUM",
    TIME_CHAR: "TIME_CHAR",
    TIME_LONG: "TIME_LONG",
    TIME_DOUBLE: "TIME_DOUBLE",
    CTRL_STRING: "CTRL_STRING",
    CTRL_SHORT: "CTRL_SHORT",
    CTRL_FLOAT: "CTRL_FLOAT",
    CTRL_ENUM: "CTRL_ENUM",
    CTRL_CHAR: "CTRL_CHAR",
    CTRL_LONG: "CTRL_LONG",
    CTRL_DOUBLE: "CTRL_DOUBLE",
}
_CODES = {name: code for code, name in _NAMES.items()}


def native_type(ftype: int) -> int:
    """Return the plain field type (0..6) of a native, TIME or CTRL type code.

    Parameters
    ----------
    ftype : int
        A DBR type code.

    Returns
    -------
    int
    """
    if ftype == CTRL_STRING:
        return STRING
    if ftype > CTRL_STRING:
        return ftype - CTRL_STRING
    if ftype >= TIME_STRING:
        return ftype - TIME_STRING
    return ftype


def Name(ftype: int | str, reverse: bool = False) -> int | str:
    """Return the name of a DBR type code, or with *reverse* the code of a name.

    Parameters
    ----------
    ftype : int or str
        A type code such as ``20``, or with *reverse* a name such as
        ``'time_double'`` (any case).
    reverse : bool
        Look a name up instead of a code.

    Returns
    -------
    str or int
        ``'TIME_DOUBLE'`` for 20; ``'unknown'`` for a code without a name.
        With *reverse*, the code, or ``'unknown'``.
    """
    if reverse:
        code = _CODES.get(str(ftype).upper())
        if code is not None:
            return code
    return _NAMES.get(ftype, "unknown") if isinstance(ftype, int) else "unknown"


def make_unixtime(stamp: object) -> float:
    """POSIX time of an EPICS time stamp (an object with ``secs`` and ``nsec``).

    Microseconds are kept and the rest dropped, as pyepics does.
    """
    secs = float(stamp.secs)  # type: ignore[attr-defined]
    nsec = float(stamp.nsec)  # type: ignore[attr-defined]
    return EPICS2UNIX_EPOCH + secs + 1.0e-6 * int(1.0e-3 * nsec)


class _DefaultIntEnum(enum.IntEnum):
    """An IntEnum that maps unknown values to a member named ``'UNKNOWN'``."""

    @classmethod
    def _missing_(cls, value: object) -> _DefaultIntEnum:
        unknown = int.__new__(cls, value)  # type: ignore[call-overload]
        unknown._name_ = "UNKNOWN"
        unknown._value_ = value
        return unknown  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return self.name


class AlarmStatus(_DefaultIntEnum):
    """Alarm status codes (``STAT``)."""

    NO_ALARM = 0
    READ = 1
    WRITE = 2
    HIHI = 3
    HIGH = 4
    LOLO = 5
    LOW = 6
    STATE = 7
    COS = 8
    COMM = 9
    TIMEOUT = 10
    HW_LIMIT = 11
    CALC = 12
    SCAN = 13
    LINK = 14
    SOFT = 15
    BAD_SUB = 16
    UDF = 17
    DISABLE = 18
    SIMM = 19
    READ_ACCESS = 20
    WRITE_ACCESS = 21


class AlarmSeverity(_DefaultIntEnum):
    """Alarm severities (``SEVR``)."""

    NO_ALARM = 0
    MINOR = 1
    MAJOR = 2
    INVALID = 3
