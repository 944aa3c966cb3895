"""The read-only attributes of :class:`compat.PV` (a mixin).

Each property returns a field of the PV's ``_args``.  As in pyepics, a field
that is still unknown is fetched first (a read, then the time or control
fields), so reading a property may wait on the network.
"""

from __future__ import annotations

from typing import Any

from . import dbr
from ._fields import Fields


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

    @property
    def status(self) -> Any:
        """Alarm status (``STAT``) of the last value."""
        return self._getarg("status")

    @property
    def char_status(self) -> str:
        """Alarm status name, e.g. ``'NO_ALARM'``."""
        return dbr.AlarmStatus(self.status).name

    @property
    def severity(self) -> Any:
        """Alarm severity (``SEVR``) of the last value."""
        return self._getarg("severity")

    @property
    def char_severity(self) -> str:
        """Alarm severity name, e.g. ``'MAJOR'``."""
        return dbr.AlarmSeverity(self.severity).name

    @property
    def type(self) -> str:
        """The DBR type of reads, e.g. ``'time_double'``."""
        return self._args["type"]  # type: ignore[no-any-return]

    @property
    def typefull(self) -> str:
        """Same as :attr:`type`."""
        return self._args["typefull"]  # type: ignore[no-any-return]

    @property
    def host(self) -> Any:
        """``'hostname:port'`` of the server."""
        return self._getarg("host")

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

    @property
    def read_access(self) -> Any:
        """Whether the PV can be read."""
        return self._getarg("read_access")

    @property
    def write_access(self) -> Any:
        """Whether the PV can be written."""
        return self._getarg("write_access")

    @property
    def access(self) -> Any:
        """``'read/write'``, ``'read-only'``, ``'write-only'`` or ``'no access'``."""
        return self._getarg("access")

    @property
    def monitor_delta(self) -> Any:
        """The ``monitor_delta`` given to the constructor."""
        return self._getarg("monitor_delta")

    @property
    def timestamp(self) -> Any:
        """POSIX time of the last value (float)."""
        return self._getarg("timestamp")

    @property
    def posixseconds(self) -> Any:
        """Whole seconds of :attr:`timestamp`."""
        return self._getarg("posixseconds")

    @property
    def nanoseconds(self) -> Any:
        """Nanoseconds of :attr:`timestamp`."""
        return self._getarg("nanoseconds")

    @property
    def precision(self) -> Any:
        """Display precision (PREC)."""
        return self._getarg("precision")

    @property
    def units(self) -> Any:
        """Engineering units (EGU)."""
        return self._getarg("units")

    @property
    def enum_strs(self) -> Any:
        """Tuple of the enum state strings."""
        return self._getarg("enum_strs")

    @property
    def upper_disp_limit(self) -> Any:
        """Upper display limit."""
        return self._getarg("upper_disp_limit")

    @property
    def lower_disp_limit(self) -> Any:
        """Lower display limit."""
        return self._getarg("lower_disp_limit")

    @property
    def upper_alarm_limit(self) -> Any:
        """Upper alarm limit."""
        return self._getarg("upper_alarm_limit")

    @property
    def lower_alarm_limit(self) -> Any:
        """Lower alarm limit."""
        return self._getarg("lower_alarm_limit")

    @property
    def upper_warning_limit(self) -> Any:
        """Upper warning limit."""
        return self._getarg("upper_warning_limit")

    @property
    def lower_warning_limit(self) -> Any:
        """Lower warning limit."""
        return self._getarg("lower_warning_limit")

    @property
    def upper_ctrl_limit(self) -> Any:
        """Upper control limit."""
        return self._getarg("upper_ctrl_limit")

    @property
    def lower_ctrl_limit(self) -> Any:
        """Lower control limit."""
        return self._getarg("lower_ctrl_limit")
