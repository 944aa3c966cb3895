"""The read-only attributes of :class:`compat.PV` (a mixin).

Each property returns a field of the PV's ``_args``.  As in pyepics, a field
that is still unknown is fetched first (a read, then the time or control
fields), so reading a property may wait on the network.  Most are made by
:func:`_field` (a field as is) and :func:`_alarm_name` (an alarm code's
name); the few with more to them are written out.  They run in the
caller's thread and take no lock.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from . import dbr
from ._fields import Fields


def _field(name: str, doc: str) -> property:
    """A read-only property giving the PV's field *name* (read from the server first while unknown)."""

    def get(self: PVAttributes) -> Any:
        return self._getarg(name)

    return property(get, doc=doc)


def _alarm_name(field: str, names: type[IntEnum], doc: str) -> property:
    """A read-only property giving the name, in the enum *names*, of the PV's property *field*."""

    def get(self: PVAttributes) -> str:
        return names(getattr(self, field)).name

    return property(get, doc=doc)


class PVAttributes:
    """Properties of a PV: value, alarm state, time stamp, control fields, access."""

    __slots__ = ()
    _args: Fields

    def _getarg(self, arg: str) -> Any:  # implemented by PV
        raise NotImplementedError

    def put(self, value: Any, wait: bool = False, timeout: float = 30.0) -> Any:  # implemented by PV
        raise NotImplementedError

    def _set_charval(self, val: Any, call_ca: bool = True, force_long_string: bool = False) -> Any:
        raise NotImplementedError

    def _refresh(self) -> None:
        raise NotImplementedError

    def _chan(self) -> Any:
        raise NotImplementedError

    @property
    def value(self) -> Any:
        """The value (a get); assigning to it puts."""
        return self._getarg("value")

    @value.setter
    def value(self, val: Any) -> None:
        self.put(val)

    @property
    def char_value(self) -> Any:
        """The value as a string: enum state, PREC-formatted number, CHAR array text..."""
        self._getarg("char_value")
        return self._set_charval(self._getarg("value"))

    status = _field("status", "Alarm status (``STAT``) of the last value.")

    char_status = _alarm_name("status", dbr.AlarmStatus, "Alarm status name, e.g. ``'NO_ALARM'``.")

    severity = _field("severity", "Alarm severity (``SEVR``) of the last value.")

    char_severity = _alarm_name("severity", dbr.AlarmSeverity, "Alarm severity name, e.g. ``'MAJOR'``.")

    @property
    def type(self) -> str:
        """The DBR type of reads, e.g. ``'time_double'``."""
        return self._args["type"]  # type: ignore[no-any-return]

    @property
    def typefull(self) -> str:
        """Same as :attr:`type`."""
        return self._args["typefull"]  # type: ignore[no-any-return]

    host = _field("host", "``'hostname:port'`` of the server.")

    @property
    def count(self) -> Any:
        """Element count of the last value (NORD for arrays), or the requested count."""
        self._refresh()
        if self._args["count"] is not None:
            return self._args["count"]
        return self._getarg("count")

    @property
    def nelm(self) -> int:
        """The channel's element count (NELM for arrays); 0 before the first connection."""
        return self._chan().native_data_count or 0

    read_access = _field("read_access", "Whether the PV can be read.")

    write_access = _field("write_access", "Whether the PV can be written.")

    access = _field("access", "``'read/write'``, ``'read-only'``, ``'write-only'`` or ``'no access'``.")

    monitor_delta = _field("monitor_delta", "The ``monitor_delta`` given to the constructor.")

    timestamp = _field("timestamp", "POSIX time of the last value (float).")

    posixseconds = _field("posixseconds", "Whole seconds of :attr:`timestamp`.")

    nanoseconds = _field("nanoseconds", "Nanoseconds of :attr:`timestamp`.")

    precision = _field("precision", "Display precision (PREC).")

    units = _field("units", "Engineering units (EGU).")

    enum_strs = _field("enum_strs", "Tuple of the enum state strings.")

    upper_disp_limit = _field("upper_disp_limit", "Upper display limit.")

    lower_disp_limit = _field("lower_disp_limit", "Lower display limit.")

    upper_alarm_limit = _field("upper_alarm_limit", "Upper alarm limit.")

    lower_alarm_limit = _field("lower_alarm_limit", "Lower alarm limit.")

    upper_warning_limit = _field("upper_warning_limit", "Upper warning limit.")

    lower_warning_limit = _field("lower_warning_limit", "Lower warning limit.")

    upper_ctrl_limit = _field("upper_ctrl_limit", "Upper control limit.")

    lower_ctrl_limit = _field("lower_ctrl_limit", "Lower control limit.")
