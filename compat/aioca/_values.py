"""aioca's result types: augmented values, :class:`CANothing` and the errors it raises.

An *augmented value* is an instance of a subclass of ``float``, ``int``,
``str``, ``bytes`` or ``numpy.ndarray`` carrying extra attributes (``name``,
``ok``, ``datatype``, ``element_count`` and, depending on the format,
``status``, ``severity``, ``timestamp``, ``raw_stamp``, ``units``, limits,
``precision``, ``enums``), as aioca returns them.  The class names match
aioca's (``ca_float``, ``ca_int``, ``ca_str``, ``ca_bytes``, ``ca_array``).
Stateless: safe on any thread.
"""

from __future__ import annotations

import datetime as _datetime
from typing import Any

import numpy as np

from compat._ca_messages import message

from ._constants import ECA_NORMAL


def _as_datetime(value: Any) -> _datetime.datetime:
    """The value's ``timestamp`` as a local-time :class:`datetime.datetime`."""
    return _datetime.datetime.fromtimestamp(value.timestamp)


class ca_float(float):
    """A ``float`` from Channel Access, with its augmented attributes."""

    datetime = property(_as_datetime)


class ca_int(int):
    """An ``int`` from Channel Access, with its augmented attributes."""

    datetime = property(_as_datetime)


class ca_str(str):
    """A ``str`` from Channel Access, with its augmented attributes."""

    datetime = property(_as_datetime)

    def __pos__(self) -> str:
        """The plain ``str``, without the attributes."""
        return str(self)


class ca_bytes(bytes):
    """A ``bytes`` from Channel Access, with its augmented attributes."""

    datetime = property(_as_datetime)

    def __pos__(self) -> bytes:
        """The plain ``bytes``, without the attributes."""
        return bytes(self)


class ca_array(np.ndarray):
    """A numpy array from Channel Access, with its augmented attributes.

    Slices and arithmetic results are ``ca_array`` too but carry no
    attributes; ``+value`` gives a plain ``numpy.ndarray`` copy.
    """

    datetime = property(_as_datetime)
    __hash__ = None

    def __pos__(self) -> np.ndarray:  # type: ignore[override]
        """A plain ``numpy.ndarray`` copy of the data."""
        return np.array(self)


#: The class of a scalar value of each plain DBR type (strings are ca_str).
SCALAR_CLASS: dict[int, type] = {1: ca_int, 2: ca_float, 3: ca_int, 4: ca_int, 5: ca_int, 6: ca_float}


class CANothing(Exception):
    """No value: the result of a failed operation, or the success code of ``caput`` and ``connect``.

    Returned by ``caput``/``connect`` (with ``ok`` true) and, with
    ``throw=False``, by any call that failed; raised by a failed call
    otherwise.  False in a boolean context when it reports a failure.

    Parameters
    ----------
    name : str
        The PV (``'Multiple PVs'`` for a timeout of a list call).
    errorcode : int
        The ECA status code; ``ECA_NORMAL`` (1) means success.

    Attributes
    ----------
    name : str
    ok : bool
        ``errorcode == ECA_NORMAL``.
    errorcode : int
    """

    def __init__(self, name: str, errorcode: int = ECA_NORMAL) -> None:
        # (BaseException.__new__ has already kept the arguments in .args, as aioca's does.)
        self.name = name
        self.ok = errorcode == ECA_NORMAL
        self.errorcode = errorcode

    def __repr__(self) -> str:
        return f"CANothing({self.name!r}, {self.errorcode})"

    def __str__(self) -> str:
        return f"{self.name}: {message(self.errorcode)}"

    def __bool__(self) -> bool:
        return self.ok


class CAException(Exception):
    """A request refused before it was sent, as libca refuses it (no access, bad count ...).

    aioca raises ``epicscorelibs.ca.cadef.CAException`` in these cases (with
    ``throw=False`` it returns ``CANothing(pv, status)`` instead).

    Attributes
    ----------
    status : int
        The ECA status code.
    function : str
        The libca function aioca would have called (``'ca_array_put'`` ...).
    """

    def __init__(self, status: int, function: str) -> None:
        super().__init__(status, function)
        self.status = status
        self.function = function

    def __str__(self) -> str:
        return f"{message(self.status)} calling {self.function}"


class InvalidDatatype(Exception):
    """The requested datatype or format cannot be used with Channel Access."""
