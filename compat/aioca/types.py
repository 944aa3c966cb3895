"""The type aliases of aioca's ``aioca.types``: Timeout, Dbe, Dbr, Datatype, Format, Count, AugmentedValue.

For annotations only; nothing here has behaviour.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

#: ``None`` (never), an interval in seconds, or ``(deadline,)`` in ``time.time()`` terms.
Timeout = None | tuple[float] | float

#: A bitwise or of ``DBE_*`` codes, or None for the format's default.
Dbe = None | int

#: A DBR request code.
Dbr = Literal[0, 1, 2, 3, 4, 5, 6, 35, 36, 37, 38, 996, 997, 998, 999]

#: None (the channel's own type), a :data:`Dbr`, a Python type or a numpy dtype.
Datatype = None | Dbr | type

#: ``FORMAT_RAW``, ``FORMAT_TIME`` or ``FORMAT_CTRL``.
Format = Literal[0, 1, 2]

#: 0 (the server's current length), -1 (the full length) or a maximum.
Count = Literal[0, -1] | int


class AugmentedValue(Protocol):
    """A value from ``caget``/``camonitor``: a float, int, str, bytes or array with extra attributes.

    Every value has ``name`` and ``ok``; a successful one ``datatype`` and
    ``element_count``; FORMAT_TIME adds ``status``, ``severity``,
    ``timestamp``, ``raw_stamp`` (and ``datetime``); FORMAT_CTRL adds
    ``status``, ``severity`` and, by type, ``units``, the eight limits,
    ``precision`` or ``enums``.  A failure is a ``CANothing`` with ``ok``
    false and ``errorcode``.
    """

    name: str
    ok: bool
    errorcode: int
    datatype: int
    element_count: int
    severity: int
    status: int
    raw_stamp: tuple[int, int]
    timestamp: float
    datetime: datetime
    units: str
    upper_disp_limit: float
    lower_disp_limit: float
    upper_alarm_limit: float
    lower_alarm_limit: float
    upper_warning_limit: float
    lower_warning_limit: float
    upper_ctrl_limit: float
    lower_ctrl_limit: float
    precision: int
    enums: list[str]
    ackt: int
    acks: int

    def __len__(self) -> int: ...


__all__ = ["AugmentedValue", "Count", "Datatype", "Dbe", "Dbr", "Format", "Timeout"]
